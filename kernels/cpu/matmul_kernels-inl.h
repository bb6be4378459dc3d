// Per-target pieces shared by the matmul kernel files (matmul_generic.cc,
// matmul_avx2.cc, matmul_vnni.cc) and their dispatch (matmul.cc): included
// once per Highway target by each of them (foreach_target.h), like
// Highway's own -inl.h headers, so everything here is per target.
//
// Exactness of the integer path: weights are unpacked to small integers (u8
// in [0, 63] or i8), activations are i8 with |a| <= 127, so a u8 x i8 pair
// in [0, 63] or i8), activations are i8 with |a| <= 127, so a u8 x i8 pair
// sum is at most 2 * 63 * 127 = 16002 (2 * 128 * 127 for Q8_0's |w| via the
// sign trick) and vpmaddubsw never saturates; every per-block dot product is
// an exact int32. The only roundings are the float products of the scales
// and the float accumulation across blocks.

// Per-target include guard (Highway's toggle idiom).
#if defined(TPSERVE_KERNELS_CPU_MATMUL_KERNELS_INL_H_) == \
    defined(HWY_TARGET_TOGGLE)
#ifdef TPSERVE_KERNELS_CPU_MATMUL_KERNELS_INL_H_
#undef TPSERVE_KERNELS_CPU_MATMUL_KERNELS_INL_H_
#else
#define TPSERVE_KERNELS_CPU_MATMUL_KERNELS_INL_H_
#endif

#include <hwy/highway.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "common/ggml_blocks.h"
#include "kernels/cpu/matmul.h"
#include "kernels/reference_ops.h"

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace tpserve::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// x86 targets with 256-bit integer SIMD: the u8 x i8 kernels below. Highway
// 1.0.3 has no SatWidenMulPairwiseAdd (vpmaddubsw), so they use intrinsics
// on the .raw of 256-bit Highway vectors (valid on AVX2 and AVX-512).
#undef TPSERVE_X86_INT8
#if HWY_ARCH_X86 && (HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || \
                     HWY_TARGET == HWY_AVX3_DL)
#define TPSERVE_X86_INT8 1
#else
#define TPSERVE_X86_INT8 0
#endif

// Every loop over the NR activation rows is fully unrolled so that the
// per-row accumulators live in registers, not in memory (GCC does not
// unroll them on its own at -O2).
#ifndef TPSERVE_UNROLL
#define TPSERVE_UNROLL _Pragma("GCC unroll 8")
#endif

// Activation rows processed together against one weight row: each weight
// block is unpacked once and used kMaxRows times from registers.
constexpr int kMaxRows = 4;

HWY_INLINE float HalfToFloat(GgmlHalf h) {
#if TPSERVE_X86_INT8
  return _cvtsh_ss(h);  // F16C (part of these targets); exact like Fp16ToFp32.
#else
  return Fp16ToFp32(h);
#endif
}

// For rows [r0, r1) and every activation row: activation rows in groups of
// kMaxRows (outer), weight rows inner, so a row chunk's weights stay in L1/L2
// while the groups of a long prefill batch pass over them.
template <class K>
void Drive(const MatMulArgs& a, int64_t r0, int64_t r1) {
  const size_t rows = static_cast<size_t>(a.w.rows);
  for (int64_t i0 = 0; i0 < a.n; i0 += kMaxRows) {
    const int nr = static_cast<int>(std::min<int64_t>(kMaxRows, a.n - i0));
    for (int64_t r = r0; r < r1; ++r) {
      // size_t: a big matrix's byte offset exceeds 2^31.
      const uint8_t* wrow = a.w.data + static_cast<size_t>(r) * a.w.row_stride;
      float out[kMaxRows];
      switch (nr) {
        case 4:
          K::template Dot<4>(a, wrow, i0, out);
          break;
        case 3:
          K::template Dot<3>(a, wrow, i0, out);
          break;
        case 2:
          K::template Dot<2>(a, wrow, i0, out);
          break;
        default:
          K::template Dot<1>(a, wrow, i0, out);
          break;
      }
      for (int j = 0; j < nr; ++j) {
        a.y[static_cast<size_t>(i0 + j) * rows + static_cast<size_t>(r)] =
            out[j];
      }
    }
  }
}

// The kernel files' entry points for rows [r0, r1) of `a` (MatMulRows).
// matmul_generic.cc, every target: F32/F16/BF16 weights (Highway float ops).
void FloatMatMulRows(const MatMulArgs& a, int64_t r0, int64_t r1);
// matmul_generic.cc, every target: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 by scalar
// integer dot products (what targets without the x86 kernels run).
void ScalarLegacyMatMulRows(const MatMulArgs& a, int64_t r0, int64_t r1);
#if TPSERVE_X86_INT8
// matmul_avx2.cc, x86 targets with AVX2 or AVX-512: the same types with
// u8 x i8 multiply-adds on 256-bit vectors, in ggml's order.
void X86LegacyMatMulRows(const MatMulArgs& a, int64_t r0, int64_t r1);
#endif
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
// matmul_vnni.cc, the AVX-512 targets: Q8_0 and Q4_1 with AVX512-VNNI when
// the CPU has it. False (nothing computed) for other types or CPUs.
bool VnniMatMulRows(const MatMulArgs& a, int64_t r0, int64_t r1);
#endif

}  // namespace HWY_NAMESPACE
}  // namespace tpserve::cpu
HWY_AFTER_NAMESPACE();

#endif  // TPSERVE_KERNELS_CPU_MATMUL_KERNELS_INL_H_
