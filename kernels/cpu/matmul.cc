// Matmul kernels, compiled once per Highway target (foreach_target.h
// re-includes this file with HWY_TARGET set to each) and picked at run time.
//
// Exactness of the integer path: weights are unpacked to small integers (u8
// in [0, 63] or i8), activations are i8 with |a| <= 127, so a u8 x i8 pair
// sum is at most 2 * 63 * 127 = 16002 (2 * 128 * 127 for Q8_0's |w| via the
// sign trick) and vpmaddubsw never saturates; every per-block dot product is
// an exact int32. The only roundings are the float products of the scales
// and the float accumulation across blocks.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/matmul.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
// Must follow foreach_target.h.
#include <hwy/highway.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "common/ggml_blocks.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/matmul_kquant.h"
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
#undef TPSERVE_VNNI_DECODE
#undef TPSERVE_VNNI_FN
#undef TPSERVE_VNNI_INLINE
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

// ---- Scalar integer kernels (targets without the x86 kernels below) -------
//
// Unpack one block's quants to integers (offset removed where the format
// has one), then integer dot products per 32 (or 16) elements.

inline int32_t DotInt(const int8_t* w, const int8_t* a, int len) {
  int32_t s = 0;
  for (int i = 0; i < len; ++i) s += int32_t{w[i]} * a[i];
  return s;
}

// Legacy 32-element formats: q[i] with x = d * q + m (m = 0 for Q*_0 whose
// offset is folded into q). Returns the block's d and m.
template <GgmlType kType>
void UnpackLegacy(const uint8_t* src, int8_t* q, float* d, float* m) {
  if constexpr (kType == GgmlType::kQ8_0) {
    const auto* b = reinterpret_cast<const BlockQ8_0*>(src);
    std::memcpy(q, b->qs, 32);
    *d = HalfToFloat(b->d);
    *m = 0;
  } else if constexpr (kType == GgmlType::kQ4_0) {
    const auto* b = reinterpret_cast<const BlockQ4_0*>(src);
    for (int j = 0; j < 16; ++j) {
      q[j] = static_cast<int8_t>((b->qs[j] & 0xF) - 8);
      q[j + 16] = static_cast<int8_t>((b->qs[j] >> 4) - 8);
    }
    *d = HalfToFloat(b->d);
    *m = 0;
  } else if constexpr (kType == GgmlType::kQ4_1) {
    const auto* b = reinterpret_cast<const BlockQ4_1*>(src);
    for (int j = 0; j < 16; ++j) {
      q[j] = static_cast<int8_t>(b->qs[j] & 0xF);
      q[j + 16] = static_cast<int8_t>(b->qs[j] >> 4);
    }
    *d = HalfToFloat(b->d);
    *m = HalfToFloat(b->m);
  } else if constexpr (kType == GgmlType::kQ5_0 || kType == GgmlType::kQ5_1) {
    using Block =
        std::conditional_t<kType == GgmlType::kQ5_0, BlockQ5_0, BlockQ5_1>;
    const auto* b = reinterpret_cast<const Block*>(src);
    uint32_t qh;
    std::memcpy(&qh, b->qh, 4);  // Little-endian host (ggml_blocks.h).
    const int offset = kType == GgmlType::kQ5_0 ? 16 : 0;
    for (int j = 0; j < 16; ++j) {
      const int h0 = static_cast<int>((qh >> j) & 1) << 4;
      const int h1 = static_cast<int>((qh >> (j + 16)) & 1) << 4;
      q[j] = static_cast<int8_t>(((b->qs[j] & 0xF) | h0) - offset);
      q[j + 16] = static_cast<int8_t>(((b->qs[j] >> 4) | h1) - offset);
    }
    *d = HalfToFloat(b->d);
    if constexpr (kType == GgmlType::kQ5_1) {
      *m = HalfToFloat(b->m);
    } else {
      *m = 0;
    }
  }
}

template <GgmlType kType>
float ScalarDotLegacy(const MatMulArgs& a, const uint8_t* wrow, int64_t i) {
  constexpr size_t kBytes = kType == GgmlType::kQ8_0   ? sizeof(BlockQ8_0)
                            : kType == GgmlType::kQ4_0 ? sizeof(BlockQ4_0)
                            : kType == GgmlType::kQ4_1 ? sizeof(BlockQ4_1)
                            : kType == GgmlType::kQ5_0 ? sizeof(BlockQ5_0)
                                                       : sizeof(BlockQ5_1);
  const int64_t nb = a.w.cols / 32;
  const size_t base = static_cast<size_t>(i) * nb;
  const int8_t* aq = a.acts.q + base * 32;
  float acc = 0;
  for (int64_t b = 0; b < nb; ++b) {
    int8_t q[32];
    float d, m;
    UnpackLegacy<kType>(wrow + b * kBytes, q, &d, &m);
    const float da = a.acts.d[base + b];
    acc += d * da * static_cast<float>(DotInt(q, aq + b * 32, 32));
    if (m != 0) acc += m * a.acts.dsum[base + b];
  }
  return acc;
}

template <GgmlType kType>
struct ScalarKernel {
  template <int NR>
  static void Dot(const MatMulArgs& a, const uint8_t* wrow, int64_t i0,
                  float* out) {
    for (int j = 0; j < NR; ++j) {
      out[j] = ScalarDotLegacy<kType>(a, wrow, i0 + j);
    }
  }
};

// ---- Float weights (Highway, every target) ---------------------------------

template <GgmlType kType>
struct FloatKernel {
  template <int NR>
  static void Dot(const MatMulArgs& a, const uint8_t* wrow, int64_t i0,
                  float* out) {
    const hn::ScalableTag<float> df;
    const size_t lanes = hn::Lanes(df);
    const int64_t cols = a.w.cols;
    const float* x = a.x + static_cast<size_t>(i0) * cols;
    decltype(hn::Zero(df)) acc[NR];
    TPSERVE_UNROLL
    for (int j = 0; j < NR; ++j) acc[j] = hn::Zero(df);
    int64_t c = 0;
    for (; c + static_cast<int64_t>(lanes) <= cols; c += lanes) {
      const auto w = LoadWeights(df, wrow, c);
      TPSERVE_UNROLL
      for (int j = 0; j < NR; ++j) {
        acc[j] = hn::MulAdd(w, hn::LoadU(df, x + j * cols + c), acc[j]);
      }
    }
    TPSERVE_UNROLL
    for (int j = 0; j < NR; ++j) {
      float s = hn::GetLane(hn::SumOfLanes(df, acc[j]));
      for (int64_t t = c; t < cols; ++t)
        s += ScalarWeight(wrow, t) * x[j * cols + t];
      out[j] = s;
    }
  }

  template <class D>
  static HWY_INLINE hn::Vec<D> LoadWeights(D df, const uint8_t* wrow,
                                           int64_t c) {
    if constexpr (kType == GgmlType::kF32) {
      return hn::LoadU(df, reinterpret_cast<const float*>(wrow) + c);
    } else if constexpr (kType == GgmlType::kF16) {
      const hn::Rebind<hwy::float16_t, D> dh;
      return hn::PromoteTo(
          df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(wrow) + c));
    } else {
      const hn::Rebind<hwy::bfloat16_t, D> dh;
      return hn::PromoteTo(
          df,
          hn::LoadU(dh, reinterpret_cast<const hwy::bfloat16_t*>(wrow) + c));
    }
  }

  // memcpy: rows are only guaranteed 2-byte aligned (a column slice's
  // stride), so an F32 row may start off a 4-byte boundary.
  static float ScalarWeight(const uint8_t* wrow, int64_t c) {
    if constexpr (kType == GgmlType::kF32) {
      float f;
      std::memcpy(&f, wrow + 4 * c, 4);
      return f;
    } else {
      uint16_t h;
      std::memcpy(&h, wrow + 2 * c, 2);
      return kType == GgmlType::kF16 ? Fp16ToFp32(h) : Bf16ToFp32(h);
    }
  }
};

#if TPSERVE_X86_INT8
// ---- x86 integer SIMD kernels (256-bit vectors) -----------------------------

using DU8 = hn::Full256<uint8_t>;
using DI8 = hn::Full256<int8_t>;
using DF = hn::Full256<float>;
using VU8 = hn::Vec256<uint8_t>;
using VI8 = hn::Vec256<int8_t>;
using VI32 = hn::Vec256<int32_t>;
using VF = hn::Vec256<float>;

// Sum of u[4k..4k+3] * s[4k..4k+3] per int32 lane; exact given the ranges
// in the file comment (no int16 saturation).
HWY_INLINE VI32 DotU8I8(VU8 u, VI8 s) {
  const __m256i p16 = _mm256_maddubs_epi16(u.raw, s.raw);
  return VI32{_mm256_madd_epi16(p16, _mm256_set1_epi16(1))};
}

// ggml's hsum_float_8: ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)).
HWY_INLINE float HsumGgml(VF v) {
  __m128 r = _mm_add_ps(_mm256_extractf128_ps(v.raw, 1),
                        _mm256_castps256_ps128(v.raw));
  r = _mm_add_ps(r, _mm_movehl_ps(r, r));
  r = _mm_add_ss(r, _mm_movehdup_ps(r));
  return _mm_cvtss_f32(r);
}

// The two nibble halves of 16 bytes as one 32-byte vector in the legacy
// order: bytes [0, 16) the low nibbles (x[0..16)), [16, 32) the high ones.
HWY_INLINE VU8 UnpackNibbles16(const uint8_t* qs) {
  const hn::Full128<uint8_t> d16;
  const auto v = hn::LoadU(d16, qs);
  return hn::Combine(DU8(), hn::ShiftRight<4>(v),
                     hn::And(v, hn::Set(d16, 0xF)));
}

// Legacy formats Q8_0, Q4_0, Q4_1.
template <GgmlType kType>
struct SimdLegacyKernel {
  static constexpr size_t kBytes =
      kType == GgmlType::kQ8_0   ? sizeof(BlockQ8_0)
      : kType == GgmlType::kQ4_0 ? sizeof(BlockQ4_0)
      : kType == GgmlType::kQ4_1 ? sizeof(BlockQ4_1)
      : kType == GgmlType::kQ5_0 ? sizeof(BlockQ5_0)
                                 : sizeof(BlockQ5_1);
  static constexpr bool kSigned =
      kType == GgmlType::kQ8_0 || kType == GgmlType::kQ5_0;

  // The 32 quants of a Q5_0/Q5_1 block in element order: nibbles with bit
  // 4 from qh (Q5_0 less its 16 offset, so signed).
  template <class Block>
  static HWY_INLINE VI8 UnpackQ5(const Block* bq) {
    uint32_t qh;
    std::memcpy(&qh, bq->qh, 4);
    // Byte i of the vector takes byte i / 8 of qh, then its bit i % 8.
    const __m256i bytes = _mm256_shuffle_epi8(
        _mm256_set1_epi32(static_cast<int>(qh)),
        _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2,
                         2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
    __m256i q = _mm256_or_si256(UnpackNibbles16(bq->qs).raw,
                                _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
    if constexpr (kType == GgmlType::kQ5_0) {
      q = _mm256_sub_epi8(q, _mm256_set1_epi8(16));
    }
    return VI8{q};
  }

  // Block b of the weight row against NR activation rows: acc += block dot
  // products (scaled), corr += offset/min terms.
  template <int NR>
  static HWY_INLINE void Block(const uint8_t* wrow, int64_t b,
                               const int8_t* const* aq, const float* const* ad,
                               const float* const* ads, VF* acc, float* corr) {
    const DF df;
    const uint8_t* blk = wrow + b * kBytes;
    if constexpr (kSigned) {
      // Q8_0 and Q5_0: one signed quant per element, no min.
      float dw;
      VI8 w;
      if constexpr (kType == GgmlType::kQ8_0) {
        const auto* bq = reinterpret_cast<const BlockQ8_0*>(blk);
        dw = HalfToFloat(bq->d);
        w = hn::LoadU(DI8(), bq->qs);
      } else {
        const auto* bq = reinterpret_cast<const BlockQ5_0*>(blk);
        dw = HalfToFloat(bq->d);
        w = UnpackQ5(bq);
      }
      const VU8 wabs = hn::BitCast(DU8(), hn::Abs(w));
      TPSERVE_UNROLL
      for (int j = 0; j < NR; ++j) {
        const VI8 av = hn::LoadU(DI8(), aq[j] + b * 32);
        // a * sign(w), so |w| (as u8, 128 for -128) times it is w * a.
        const VI8 signed_a{_mm256_sign_epi8(av.raw, w.raw)};
        const VI32 p = DotU8I8(wabs, signed_a);
        acc[j] = hn::MulAdd(hn::ConvertTo(df, p), hn::Set(df, dw * ad[j][b]),
                            acc[j]);
      }
    } else {
      using Block = std::conditional_t<
          kType == GgmlType::kQ4_0, BlockQ4_0,
          std::conditional_t<kType == GgmlType::kQ4_1, BlockQ4_1, BlockQ5_1>>;
      const auto* bq = reinterpret_cast<const Block*>(blk);
      const float dw = HalfToFloat(bq->d);
      VU8 w;
      if constexpr (kType == GgmlType::kQ5_1) {
        w = hn::BitCast(DU8(), UnpackQ5(bq));
      } else {
        w = UnpackNibbles16(bq->qs);
      }
      // Q4_0: x = d (q - 8) -> -8 d da sum(a); Q4_1, Q5_1: x = d q + m.
      float mw;
      if constexpr (kType == GgmlType::kQ4_0) {
        mw = -8 * dw;
      } else {
        mw = HalfToFloat(bq->m);
      }
      TPSERVE_UNROLL
      for (int j = 0; j < NR; ++j) {
        const VI8 av = hn::LoadU(DI8(), aq[j] + b * 32);
        const VI32 p = DotU8I8(w, av);
        acc[j] = hn::MulAdd(hn::ConvertTo(df, p), hn::Set(df, dw * ad[j][b]),
                            acc[j]);
        corr[j] = std::fma(mw, ads[j][b], corr[j]);
      }
    }
  }

  // In ggml's order for Q8_0, Q4_1, Q5_0 and Q5_1 (ggml_vec_dot_q5_0_q8_0
  // and q5_1_q8_1 like q8_0 and q4_1; llamafile's tinyBLAS, which takes
  // Q8_0 and Q5_0 batches, sums the same way; as VnniKernel, which this
  // machine may lack): one 8-lane FMA chain per activation row over the blocks
  // in order, the min/offset terms in a scalar FMA chain, then ggml's
  // hsum_float_8 plus those. (One chain makes decode, NR = 1, wait on FMA
  // latency; exactness is worth it on this fallback path.)
  template <int NR>
  static void Dot(const MatMulArgs& a, const uint8_t* wrow, int64_t i0,
                  float* out) {
    const DF df;
    const int64_t nb = a.w.cols / 32;
    VF acc[NR];
    float corr[NR];
    const int8_t* aq[NR];
    const float* ad[NR];
    const float* ads[NR];
    TPSERVE_UNROLL
    for (int j = 0; j < NR; ++j) {
      acc[j] = hn::Zero(df);
      corr[j] = 0;
      const size_t base = static_cast<size_t>(i0 + j) * nb;
      aq[j] = a.acts.q + base * 32;
      ad[j] = a.acts.d + base;
      ads[j] = a.acts.dsum + base;
    }
    for (int64_t b = 0; b < nb; ++b) {
      // Software prefetch along the weights (into the next rows): without
      // it decode waits on memory (as VnniKernel::kPrefetchBytes).
      _mm_prefetch(reinterpret_cast<const char*>(wrow + b * kBytes) + 3072,
                   _MM_HINT_T0);
      Block<NR>(wrow, b, aq, ad, ads, acc, corr);
    }
    TPSERVE_UNROLL
    for (int j = 0; j < NR; ++j) out[j] = HsumGgml(acc[j]) + corr[j];
  }
};

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
// ---- AVX512-VNNI kernels (Q4_1 and Q8_0) -----------------------------------
//
// Highway 1.0.3's AVX3 target does not include VNNI, so these functions carry
// their own target attribute and are only called when the CPU reports
// avx512vnni.
//
// Order of operations: exactly ggml's x86 ggml_vec_dot_q4_1_q8_1 and
// ggml_vec_dot_q8_0_q8_0 (the AVX2 code llama.cpp runs on these CPUs, for
// prompt and decode alike), so every output is bit for bit llama.cpp's:
// eight float lanes per (weight row, activation row), lane j holding the
// exact int32 sum of elements 4j..4j+3 of a block; per block
// lane_j = fma(dw * da, lane_sum_j, lane_j) in block order; Q4_1's min term
// summed separately as summs = fma(mw, s_a, summs) in block order; then
// ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)) (+ summs). A 512-bit
// vector carries block b of two weight rows (lanes 0-7 and 8-15) against
// the same activation block; P such pairs run side by side so the
// one-FMA-per-block chains do not make decode latency-bound. The result
// does not depend on P, NA, the row range or the thread count.
#define TPSERVE_VNNI_DECODE 1
#define TPSERVE_VNNI_FN                                       \
  __attribute__((                                             \
      target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni," \
             "avx2,fma,f16c,bmi2")))
#define TPSERVE_VNNI_INLINE \
  TPSERVE_VNNI_FN inline __attribute__((always_inline))

inline bool CpuHasAvx512Vnni() {
  static const bool has = __builtin_cpu_supports("avx512vnni");
  return has;
}

template <GgmlType kType>
struct VnniKernel {
  static constexpr bool kQ8 = kType == GgmlType::kQ8_0;
  static constexpr size_t kBytes = kQ8 ? sizeof(BlockQ8_0) : sizeof(BlockQ4_1);
  // Software prefetch distance along the weights (rows are contiguous, so
  // this runs into the next rows): the hardware prefetcher alone leaves
  // decode waiting on memory. Tuned on Sapphire Rapids with the SmolLM2
  // shapes. A prefetch past the end of the matrix does not fault.
  static constexpr size_t kPrefetchBytes = 3072;

  // Block b of the weight-row pairs wrows[2p], wrows[2p + 1] (p < P; the
  // second row of the last pair repeats the first when kOdd, and its lanes
  // are ignored) against NA activation rows i0 + j: acc[p * NA + j] and,
  // for Q4_1, the min sums in lanes 1 and 3 of sum[p * NA + j].
  template <int NA, int P, bool kOdd>
  static TPSERVE_VNNI_INLINE void Step(const MatMulArgs& a, int64_t i0,
                                       const uint8_t* const* wrows, int64_t b,
                                       __m512* acc, __m128* sum) {
    const int64_t nb = a.w.cols / 32;
    __m512i av[NA];
    __m128 as[NA];
    TPSERVE_UNROLL
    for (int j = 0; j < NA; ++j) {
      const size_t ab = static_cast<size_t>(i0 + j) * nb + b;
      // The activation block in both halves.
      av[j] = _mm512_maskz_broadcast_i64x4(
          0xFF, _mm256_loadu_si256(
                    reinterpret_cast<const __m256i*>(a.acts.q + ab * 32)));
      const __m128 ad = _mm_set1_ps(a.acts.d[ab]);
      if constexpr (kQ8) {
        as[j] = ad;
        av[j] = _mm512_xor_si512(av[j], _mm512_set1_epi8(-128));  // a + 128
      } else {
        // [da, sa, da, sa] against the weights' [d0, m0, d1, m1].
        as[j] = _mm_unpacklo_ps(ad, _mm_set1_ps(a.acts.dsum[ab]));
      }
    }
    // Lanes 0-7 take row 2p's scale, 8-15 row 2p + 1's.
    const __m512i idx =
        kQ8 ? _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0)
            : _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
    TPSERVE_UNROLL
    for (int p = 0; p < P; ++p) {
      const uint8_t* blk0 = wrows[2 * p] + b * kBytes;
      const uint8_t* blk1 =
          (kOdd && p == P - 1) ? blk0 : wrows[2 * p + 1] + b * kBytes;
      _mm_prefetch(reinterpret_cast<const char*>(blk0) + kPrefetchBytes,
                   _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(blk1) + kPrefetchBytes,
                   _MM_HINT_T0);
      __m512i w;
      __m128 wd;
      if constexpr (kQ8) {
        uint16_t h0, h1;
        std::memcpy(&h0, blk0, 2);
        std::memcpy(&h1, blk1, 2);
        wd = _mm_cvtph_ps(
            _mm_cvtsi32_si128(static_cast<int>(h0 | (uint32_t{h1} << 16))));
        w = _mm512_mask_broadcast_i64x4(
            _mm512_maskz_loadu_epi64(0x0F, blk0 + 2), 0xF0,
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk1 + 2)));
      } else {
        uint32_t h0, h1;  // d and m of each block.
        std::memcpy(&h0, blk0, 4);
        std::memcpy(&h1, blk1, 4);
        wd = _mm_cvtph_ps(_mm_insert_epi32(
            _mm_cvtsi32_si128(static_cast<int>(h0)), static_cast<int>(h1), 1));
        const __m512i q0 = _mm512_maskz_broadcast_i32x4(
            0x00FF,
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk0 + 4)));
        const __m512i q = _mm512_mask_broadcast_i32x4(
            q0, 0xFF00,
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk1 + 4)));
        // [qs0, qs0, qs1, qs1] -> [lo0, hi0, lo1, hi1] nibbles: elements
        // 0-15 then 16-31 of each row, ggml's bytes_from_nibbles_32 order.
        const __m512i shifts =
            _mm512_set_epi64(0x0004000400040004, 0x0004000400040004, 0, 0,
                             0x0004000400040004, 0x0004000400040004, 0, 0);
        w = _mm512_and_si512(_mm512_srlv_epi16(q, shifts),
                             _mm512_set1_epi8(0xF));
      }
      // Q8_0: (a + 128) . w - 128 sum(w) = a . w, all exact in int32.
      __m512i wsum128;
      if constexpr (kQ8) {
        wsum128 = _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                      _mm512_set1_epi8(-128), w);
      }
      TPSERVE_UNROLL
      for (int j = 0; j < NA; ++j) {
        __m512i dot;
        if constexpr (kQ8) {
          dot = _mm512_sub_epi32(
              _mm512_dpbusd_epi32(_mm512_setzero_si512(), av[j], w), wsum128);
        } else {
          dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, av[j]);
        }
        // Q8_0: [dw0 da, dw1 da, ...]; Q4_1: [dw0 da, mw0 sa, dw1 da, mw1 sa].
        const __m128 prod = _mm_mul_ps(wd, as[j]);
        if constexpr (!kQ8) {
          sum[p * NA + j] = _mm_fmadd_ps(wd, as[j], sum[p * NA + j]);
        }
        // (GCC 12 warns about the unmasked forms' undefined upper lanes.)
        const __m512 scale = _mm512_maskz_permutexvar_ps(
            0xFFFF, idx, _mm512_zextps128_ps512(prod));
        acc[p * NA + j] = _mm512_fmadd_ps(
            scale, _mm512_maskz_cvtepi32_ps(0xFFFF, dot), acc[p * NA + j]);
      }
    }
  }

  // ggml's hsum_float_8.
  static TPSERVE_VNNI_INLINE float Hsum8(__m256 x) {
    __m128 r =
        _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
  }

  // y[i0 + j, r + k] for NA activation rows and 2P weight rows from r
  // (2P - 1 when kOdd).
  template <int NA, int P, bool kOdd>
  static TPSERVE_VNNI_INLINE void Rows(const MatMulArgs& a, int64_t i0,
                                       int64_t r) {
    constexpr int kRows = 2 * P - (kOdd ? 1 : 0);
    const int64_t nb = a.w.cols / 32;
    const uint8_t* wrows[2 * P];
    __m512 acc[P * NA];
    __m128 sum[P * NA];
    TPSERVE_UNROLL
    for (int k = 0; k < 2 * P; ++k) {
      wrows[k] = a.w.data + static_cast<size_t>(r + std::min(k, kRows - 1)) *
                                a.w.row_stride;
    }
    TPSERVE_UNROLL
    for (int t = 0; t < P * NA; ++t) {
      acc[t] = _mm512_setzero_ps();
      sum[t] = _mm_setzero_ps();
    }
    for (int64_t b = 0; b < nb; ++b)
      Step<NA, P, kOdd>(a, i0, wrows, b, acc, sum);
    const size_t rows = static_cast<size_t>(a.w.rows);
    TPSERVE_UNROLL
    for (int k = 0; k < kRows; ++k) {
      TPSERVE_UNROLL
      for (int j = 0; j < NA; ++j) {
        const int t = (k / 2) * NA + j;
        // (The half index must be an immediate, also unoptimized.)
        const __m512d pair = _mm512_castps_pd(acc[t]);
        const __m256 lanes = _mm256_castpd_ps(
            k % 2 == 0 ? _mm512_maskz_extractf64x4_pd(0xF, pair, 0)
                       : _mm512_maskz_extractf64x4_pd(0xF, pair, 1));
        float s = Hsum8(lanes);
        if constexpr (!kQ8) {
          alignas(16) float m[4];
          _mm_store_ps(m, sum[t]);
          s += m[1 + 2 * (k % 2)];
        }
        a.y[static_cast<size_t>(i0 + j) * rows + static_cast<size_t>(r + k)] =
            s;
      }
    }
  }

  // Weight rows [r0, r1): activation rows in groups of kMaxRows (outer) as
  // in Drive; a single activation row takes four weight rows per pass.
  template <int NA>
  static TPSERVE_VNNI_INLINE void Group(const MatMulArgs& a, int64_t i0,
                                        int64_t r0, int64_t r1) {
    int64_t r = r0;
    if constexpr (NA == 1) {
      for (; r + 4 <= r1; r += 4) Rows<1, 2, false>(a, i0, r);
    }
    for (; r + 2 <= r1; r += 2) Rows<NA, 1, false>(a, i0, r);
    if (r < r1) Rows<NA, 1, true>(a, i0, r);
  }

  static TPSERVE_VNNI_FN __attribute__((noinline)) void Run(const MatMulArgs& a,
                                                            int64_t r0,
                                                            int64_t r1) {
    for (int64_t i0 = 0; i0 < a.n; i0 += kMaxRows) {
      switch (std::min<int64_t>(kMaxRows, a.n - i0)) {
        case 4:
          Group<4>(a, i0, r0, r1);
          break;
        case 3:
          Group<3>(a, i0, r0, r1);
          break;
        case 2:
          Group<2>(a, i0, r0, r1);
          break;
        default:
          Group<1>(a, i0, r0, r1);
          break;
      }
    }
  }
};
#else
#define TPSERVE_VNNI_DECODE 0
#endif

template <GgmlType kType>
using LegacyKernel = SimdLegacyKernel<kType>;
#else
#define TPSERVE_VNNI_DECODE 0
template <GgmlType kType>
using LegacyKernel = ScalarKernel<kType>;
#endif  // TPSERVE_X86_INT8

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

void MatMulRowsImpl(const MatMulArgs& a, int64_t r0, int64_t r1) {
  switch (a.w.type) {
    case GgmlType::kF32:
      return Drive<FloatKernel<GgmlType::kF32>>(a, r0, r1);
    case GgmlType::kF16:
      return Drive<FloatKernel<GgmlType::kF16>>(a, r0, r1);
    case GgmlType::kBF16:
      return Drive<FloatKernel<GgmlType::kBF16>>(a, r0, r1);
    case GgmlType::kQ8_0:
#if TPSERVE_VNNI_DECODE
      if (CpuHasAvx512Vnni()) {
        return VnniKernel<GgmlType::kQ8_0>::Run(a, r0, r1);
      }
#endif
      return Drive<LegacyKernel<GgmlType::kQ8_0>>(a, r0, r1);
    case GgmlType::kQ4_0:
      return Drive<LegacyKernel<GgmlType::kQ4_0>>(a, r0, r1);
    case GgmlType::kQ4_1:
#if TPSERVE_VNNI_DECODE
      if (CpuHasAvx512Vnni()) {
        return VnniKernel<GgmlType::kQ4_1>::Run(a, r0, r1);
      }
#endif
      return Drive<LegacyKernel<GgmlType::kQ4_1>>(a, r0, r1);
    case GgmlType::kQ5_0:
      return Drive<LegacyKernel<GgmlType::kQ5_0>>(a, r0, r1);
    case GgmlType::kQ5_1:
      return Drive<LegacyKernel<GgmlType::kQ5_1>>(a, r0, r1);
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
