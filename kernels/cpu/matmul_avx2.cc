// The x86 integer matmul kernels of the legacy block formats (Q8_0, Q4_0,
// Q4_1, Q5_0, Q5_1) on 256-bit vectors: compiled for the AVX2 and AVX-512
// Highway targets only (the u8 x i8 multiply-add vpmaddubsw + vpmaddwd),
// summing in ggml's order.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/matmul_avx2.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
// Must follow foreach_target.h.
#include <hwy/highway.h>

#include "kernels/cpu/matmul_kernels-inl.h"

HWY_BEFORE_NAMESPACE();
namespace tpserve::cpu {
namespace HWY_NAMESPACE {

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

void X86LegacyMatMulRows(const MatMulArgs& a, int64_t r0, int64_t r1) {
  switch (a.w.type) {
    case GgmlType::kQ8_0:
      return Drive<SimdLegacyKernel<GgmlType::kQ8_0>>(a, r0, r1);
    case GgmlType::kQ4_0:
      return Drive<SimdLegacyKernel<GgmlType::kQ4_0>>(a, r0, r1);
    case GgmlType::kQ4_1:
      return Drive<SimdLegacyKernel<GgmlType::kQ4_1>>(a, r0, r1);
    case GgmlType::kQ5_0:
      return Drive<SimdLegacyKernel<GgmlType::kQ5_0>>(a, r0, r1);
    case GgmlType::kQ5_1:
      return Drive<SimdLegacyKernel<GgmlType::kQ5_1>>(a, r0, r1);
    default:
      return;  // Not a legacy type: the dispatch never asks.
  }
}
#endif  // TPSERVE_X86_INT8

}  // namespace HWY_NAMESPACE
}  // namespace tpserve::cpu
HWY_AFTER_NAMESPACE();
