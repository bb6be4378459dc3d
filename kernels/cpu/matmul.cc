// The matmul's dispatch: per Highway target (foreach_target.h re-includes
// this file with HWY_TARGET set to each), the kernel file of each weight
// type, and the run-time pick of the best target this CPU runs. The
// kernels are split by instruction set:
//   matmul_generic.cc  every target: float weights, scalar integer kernels
//   matmul_avx2.cc     x86 AVX2 / AVX-512: 256-bit u8 x i8 kernels
//   matmul_vnni.cc     x86 AVX-512 with VNNI (checked at run time)
//   matmul_kquant.cc   the K-quants, every target
// with what they share in matmul_kernels-inl.h.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/matmul.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
// Must follow foreach_target.h.
#include <hwy/highway.h>

#include <cstddef>
#include <cstdint>

#include "common/ggml_blocks.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/matmul_kernels-inl.h"
#include "kernels/cpu/matmul_kquant.h"
#include "kernels/reference_ops.h"

HWY_BEFORE_NAMESPACE();
namespace tpserve::cpu {
namespace HWY_NAMESPACE {

// The legacy block formats: the x86 integer kernels where this target has
// them, else the scalar ones.
void LegacyMatMulRows(const MatMulArgs& a, int64_t r0, int64_t r1) {
#if TPSERVE_X86_INT8
  X86LegacyMatMulRows(a, r0, r1);
#else
  ScalarLegacyMatMulRows(a, r0, r1);
#endif
}

void MatMulRowsImpl(const MatMulArgs& a, int64_t r0, int64_t r1) {
  switch (a.w.type) {
    case GgmlType::kF32:
    case GgmlType::kF16:
    case GgmlType::kBF16:
      return FloatMatMulRows(a, r0, r1);
    case GgmlType::kQ8_0:
    case GgmlType::kQ4_1:
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
      if (VnniMatMulRows(a, r0, r1)) return;
#endif
      return LegacyMatMulRows(a, r0, r1);
    case GgmlType::kQ4_0:
    case GgmlType::kQ5_0:
    case GgmlType::kQ5_1:
      return LegacyMatMulRows(a, r0, r1);
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
    case GgmlType::kQ6_K:
      return KQuantMatMulRows(a, r0, r1);  // matmul_kquant.cc
    default:
      return;  // Refused by ValidateWeightMatrix before we get here.
  }
}

const char* TargetNameImpl() { return hwy::TargetName(HWY_TARGET); }

bool FollowsGgmlOrderImpl() { return TPSERVE_X86_INT8 != 0; }

}  // namespace HWY_NAMESPACE
}  // namespace tpserve::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tpserve::cpu {

HWY_EXPORT(MatMulRowsImpl);
HWY_EXPORT(TargetNameImpl);
HWY_EXPORT(FollowsGgmlOrderImpl);

bool UsesQuantizedActs(GgmlType type) {
  return type != GgmlType::kF32 && type != GgmlType::kF16 &&
         type != GgmlType::kBF16;
}

void QuantizeActRows(GgmlType type, const float* x, int64_t cols, int64_t i0,
                     int64_t i1, int8_t* q, float* d, int16_t* sums,
                     float* dsum) {
  if (IsKQuant(type)) return QuantizeActRowsQ8K(x, cols, i0, i1, q, d, sums);
  const bool q8_1 = type == GgmlType::kQ4_1 || type == GgmlType::kQ5_1;
  const int64_t nb = cols / kActBlock;
  for (int64_t i = i0; i < i1; ++i) {
    for (int64_t b = 0; b < nb; ++b) {
      const size_t blk = static_cast<size_t>(i) * nb + b;
      int8_t* qb = q + blk * kActBlock;
      QuantizeActivationBlock(x + blk * kActBlock, qb, d + blk,
                              q8_1 ? dsum + blk : nullptr);
      int s0 = 0, s1 = 0;
      for (int k = 0; k < 16; ++k) {
        s0 += qb[k];
        s1 += qb[k + 16];
      }
      sums[2 * blk] = static_cast<int16_t>(s0);
      sums[2 * blk + 1] = static_cast<int16_t>(s1);
      // Exact: an fp16 scale (11 bits) times |sum| <= 4064 (12 bits).
      if (!q8_1) dsum[blk] = d[blk] * static_cast<float>(s0 + s1);
    }
  }
}

void MatMulRows(const MatMulArgs& args, int64_t r0, int64_t r1) {
  HWY_DYNAMIC_DISPATCH(MatMulRowsImpl)(args, r0, r1);
}

const char* MatMulTargetName() {
  return HWY_DYNAMIC_DISPATCH(TargetNameImpl)();
}

bool MatMulFollowsGgmlOrder() {
  return HWY_DYNAMIC_DISPATCH(FollowsGgmlOrderImpl)();
}

}  // namespace tpserve::cpu
#endif  // HWY_ONCE
