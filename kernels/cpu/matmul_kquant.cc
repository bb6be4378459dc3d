// K-quant matmul kernels (kernels/cpu/matmul_kquant.h), compiled once per
// Highway target like matmul.cc and picked at run time.
//
// Exactness of the integers: weights unpack to u8 (Q4_K [0, 15], Q5_K
// [0, 31], Q6_K [0, 63]), activations are i8 with |a| <= 127, so a
// vpmaddubsw pair sum is at most 2 * 63 * 127 = 16002 (no saturation); the
// scale products and sums are exact int32 (|lane| < 2^31 by far). Only the
// float steps round, and those are ggml's, in ggml's order.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/matmul_kquant.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
// Must follow foreach_target.h.
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common/ggml_blocks.h"
#include "kernels/cpu/matmul_kquant.h"
#include "kernels/reference_ops.h"

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace tpserve::cpu {
namespace HWY_NAMESPACE {

#undef TPSERVE_KQ_X86
#if HWY_ARCH_X86 && (HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || \
                     HWY_TARGET == HWY_AVX3_DL)
#define TPSERVE_KQ_X86 1
#else
#define TPSERVE_KQ_X86 0
#endif

#ifndef TPSERVE_KQ_UNROLL
#define TPSERVE_KQ_UNROLL _Pragma("GCC unroll 8")
#endif

template <GgmlType kType>
constexpr size_t kKBlockBytes = kType == GgmlType::kQ4_K   ? sizeof(BlockQ4_K)
                                : kType == GgmlType::kQ5_K ? sizeof(BlockQ5_K)
                                                           : sizeof(BlockQ6_K);

// Which of ggml's float orders a kernel follows (matmul_kquant.h):
// kVecDot   ggml_vec_dot_q*_K_q8_K;
// kGemv     the repacked Q4_K gemv: one FMA pair per super-block;
// kGemm     the repacked Q4_K gemm: one FMA pair per 64 elements;
// kTiled    the tiled K-quant matmul (ggml-cpu/tiled, batches >= 8).
enum class KOrder { kVecDot, kGemv, kGemm, kTiled };

// The eight 6-bit scales and mins of a Q4_K/Q5_K super-block.
struct ScalesMins {
  uint8_t sc[8];
  uint8_t m[8];
};

// GetScaleMinK4 for all eight sub-blocks at once, four bytes per word.
inline void UnpackScalesMins(const uint8_t* scales, ScalesMins* out) {
  uint32_t u[3];
  std::memcpy(u, scales, 12);
  constexpr uint32_t kLow6 = 0x3F3F3F3F, kLow4 = 0x0F0F0F0F, kTop2 = 0x03030303;
  const uint32_t w[4] = {
      u[0] & kLow6,                                          // sc[0..4)
      (u[2] & kLow4) | (((u[0] >> 6) & kTop2) << 4),         // sc[4..8)
      u[1] & kLow6,                                          // m[0..4)
      ((u[2] >> 4) & kLow4) | (((u[1] >> 6) & kTop2) << 4),  // m[4..8)
  };
  std::memcpy(out->sc, w, 8);
  std::memcpy(out->m, w + 2, 8);
}

HWY_INLINE float HalfToFloat(GgmlHalf h) {
#if TPSERVE_KQ_X86
  return _cvtsh_ss(h);  // F16C (part of these targets); exact like Fp16ToFp32.
#else
  return Fp16ToFp32(h);
#endif
}

// Super-block fields every kernel needs: d, dmin (0 for Q6_K), and for
// Q4_K/Q5_K the unpacked scales and mins.
template <GgmlType kType>
struct SbHeader {
  float d = 0, dmin = 0;
  ScalesMins sm = {};

  void Load(const uint8_t* blk) {
    if constexpr (kType == GgmlType::kQ6_K) {
      d = HalfToFloat(reinterpret_cast<const BlockQ6_K*>(blk)->d);
    } else {
      using Block =
          std::conditional_t<kType == GgmlType::kQ4_K, BlockQ4_K, BlockQ5_K>;
      const auto* b = reinterpret_cast<const Block*>(blk);
      d = HalfToFloat(b->d);
      dmin = HalfToFloat(b->dmin);
      UnpackScalesMins(b->scales, &sm);
    }
  }
};

// Integer min sum of a Q4_K/Q5_K super-block in ggml's four partial lanes:
// part[t] = m[2t] * (bs[4t] + bs[4t+1]) + m[2t+1] * (bs[4t+2] + bs[4t+3]),
// bs the activation's 16-element sums (ggml's hadd + madd of the mins).
inline void MinParts(const ScalesMins& sm, const int16_t* bs, int32_t part[4]) {
  for (int t = 0; t < 4; ++t) {
    part[t] = sm.m[2 * t] * (bs[4 * t] + bs[4 * t + 1]) +
              sm.m[2 * t + 1] * (bs[4 * t + 2] + bs[4 * t + 3]);
  }
}

// ---- Scalar kernel (every target; the only one off x86 AVX2/AVX-512) ------

// The weights of one super-block as integers w[256] (Q6_K still +32) and
// the per-element scale.
template <GgmlType kType>
void DecodeSuperBlock(const uint8_t* blk, const SbHeader<kType>& h, int32_t* w,
                      int32_t* scale) {
  if constexpr (kType == GgmlType::kQ6_K) {
    const auto* b = reinterpret_cast<const BlockQ6_K*>(blk);
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = b->ql + 64 * half;
      const uint8_t* qh = b->qh + 32 * half;
      int32_t* o = w + 128 * half;
      for (int l = 0; l < 32; ++l) {
        o[l] = (ql[l] & 0xF) | ((qh[l] & 3) << 4);
        o[l + 32] = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
        o[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
        o[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
      }
    }
    for (int e = 0; e < kQK_K; ++e) scale[e] = b->scales[e / 16];
  } else {
    const uint8_t* qs;
    const uint8_t* qh = nullptr;
    if constexpr (kType == GgmlType::kQ4_K) {
      qs = reinterpret_cast<const BlockQ4_K*>(blk)->qs;
    } else {
      qs = reinterpret_cast<const BlockQ5_K*>(blk)->qs;
      qh = reinterpret_cast<const BlockQ5_K*>(blk)->qh;
    }
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        int lo = qs[32 * c + l] & 0xF, hi = qs[32 * c + l] >> 4;
        if (qh != nullptr) {
          lo |= ((qh[l] >> (2 * c)) & 1) << 4;
          hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
        }
        w[64 * c + l] = lo;
        w[64 * c + 32 + l] = hi;
      }
    }
    for (int e = 0; e < kQK_K; ++e) scale[e] = h.sm.sc[e / 32];
  }
}

// ggml's hsum_float_8 on eight floats.
inline float Hsum8(const float* v) {
  return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

template <GgmlType kType, KOrder kOrder>
float ScalarDot(const MatMulArgs& a, const uint8_t* wrow, int64_t i) {
  const int64_t nsb = a.w.cols / kQK_K;
  float acc[8] = {}, acc_m[4] = {}, summs = 0, rep_a = 0, rep_m = 0;
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const uint8_t* blk = wrow + sb * kKBlockBytes<kType>;
    SbHeader<kType> h;
    h.Load(blk);
    const int8_t* aq =
        a.acts.q + static_cast<size_t>(i) * a.w.cols + sb * kQK_K;
    const int16_t* bs =
        a.acts.sums + static_cast<size_t>(i) * (a.w.cols / 16) + sb * 16;
    const float da = a.acts.d[static_cast<size_t>(i) * (a.w.cols / 32) + sb];
    int32_t w[kQK_K], scale[kQK_K];
    DecodeSuperBlock<kType>(blk, h, w, scale);
    // lane: ggml's eight vec_dot lanes; chunk: the scaled sums of each 64
    // elements (Q6_K: without the offset term).
    int32_t lane[8] = {}, chunk[4] = {};
    for (int e = 0; e < kQK_K; ++e) {
      lane[(e % 32) / 4] += scale[e] * w[e] * aq[e];
      chunk[e / 64] += scale[e] * w[e] * aq[e];
    }
    if constexpr (kType == GgmlType::kQ6_K) {
      const auto* b = reinterpret_cast<const BlockQ6_K*>(blk);
      for (int k = 0; k < 8; ++k) {
        lane[k] -= 32 * (bs[2 * k] * b->scales[2 * k] +
                         bs[2 * k + 1] * b->scales[2 * k + 1]);
      }
    }
    int32_t part[4] = {};
    if constexpr (kType != GgmlType::kQ6_K) MinParts(h.sm, bs, part);
    const int32_t isum = lane[0] + lane[1] + lane[2] + lane[3] + lane[4] +
                         lane[5] + lane[6] + lane[7];
    const int32_t msum = part[0] + part[1] + part[2] + part[3];
    if constexpr (kOrder == KOrder::kGemv) {
      rep_a = std::fma(static_cast<float>(isum), h.d * da, rep_a);
      rep_m = std::fma(static_cast<float>(msum), h.dmin * da, rep_m);
    } else if constexpr (kOrder == KOrder::kGemm) {
      for (int c = 0; c < 4; ++c) {
        rep_a = std::fma(static_cast<float>(chunk[c]), h.d * da, rep_a);
        rep_m = std::fma(static_cast<float>(part[c]), h.dmin * da, rep_m);
      }
    } else if constexpr (kOrder == KOrder::kTiled) {
      float t = static_cast<float>(isum) * h.d;
      if constexpr (kType != GgmlType::kQ6_K) {
        t = std::fma(-h.dmin, static_cast<float>(msum), t);
      }
      rep_a = std::fma(t, da, rep_a);
    } else {
      const float d = da * h.d;
      for (int k = 0; k < 8; ++k) {
        acc[k] = std::fma(d, static_cast<float>(lane[k]), acc[k]);
      }
      const float dmin = -da * h.dmin;
      if constexpr (kType == GgmlType::kQ4_K) {
        for (int t = 0; t < 4; ++t) {
          acc_m[t] = std::fma(dmin, static_cast<float>(part[t]), acc_m[t]);
        }
      } else if constexpr (kType == GgmlType::kQ5_K) {
        summs = std::fma(dmin, static_cast<float>(msum), summs);
      }
    }
  }
  if constexpr (kOrder == KOrder::kGemv || kOrder == KOrder::kGemm) {
    return rep_a - rep_m;
  } else if constexpr (kOrder == KOrder::kTiled) {
    return rep_a;
  } else if constexpr (kType == GgmlType::kQ4_K) {
    return Hsum8(acc) + ((acc_m[0] + acc_m[2]) + (acc_m[1] + acc_m[3]));
  } else if constexpr (kType == GgmlType::kQ5_K) {
    return Hsum8(acc) + summs;
  } else {
    return Hsum8(acc);
  }
}

// Activation rows [i0, i0 + na) against weight rows [r0, r1).
template <GgmlType kType, KOrder kOrder>
void ScalarGroup(const MatMulArgs& a, int64_t r0, int64_t r1, int64_t i0,
                 int64_t na) {
  const size_t rows = static_cast<size_t>(a.w.rows);
  for (int64_t i = i0; i < i0 + na; ++i) {
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* wrow = a.w.data + static_cast<size_t>(r) * a.w.row_stride;
      a.y[static_cast<size_t>(i) * rows + static_cast<size_t>(r)] =
          ScalarDot<kType, kOrder>(a, wrow, i);
    }
  }
}

#if TPSERVE_KQ_X86
// ---- x86 AVX2 / AVX-512 kernel (256-bit integer SIMD) ----------------------
//
// A tile is P weight rows x NA activation rows (P * NA <= 4 pairs, pair
// k = p * NA + j). Per super-block it forms each pair's eight int32 lanes
// exactly as ggml's vec_dot does (vpmaddubsw on the natural 32-byte
// groups, vpmaddwd with the group's scale), then applies the order's float
// step. Decode (NA = 1) takes four weight rows per tile so that the
// repacked order's per-super-block horizontal sums share one hadd tree.

// Lane k of the result: sum of the 32-bit lanes k of v[0..3] (the four
// pairs' super-block totals), via one hadd tree. Exact (integers).
HWY_INLINE __m128i SumLanes4(const __m256i* v) {
  const __m256i h01 = _mm256_hadd_epi32(v[0], v[1]);
  const __m256i h23 = _mm256_hadd_epi32(v[2], v[3]);
  const __m256i h = _mm256_hadd_epi32(h01, h23);
  return _mm_add_epi32(_mm256_castsi256_si128(h),
                       _mm256_extracti128_si256(h, 1));
}

// ggml's hsum_float_8.
HWY_INLINE float HsumGgml8(__m256 v) {
  __m128 r = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
  r = _mm_add_ps(r, _mm_movehl_ps(r, r));
  r = _mm_add_ss(r, _mm_movehdup_ps(r));
  return _mm_cvtss_f32(r);
}

HWY_INLINE __m256i Load256(const void* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// The four 32-bit min-sum parts of MinParts, vectorized: 8 mins times the
// 8 pair sums of the 16 bsums.
HWY_INLINE __m128i MinPartsVec(const ScalesMins& sm, const int16_t* bs) {
  const __m128i bs32 =
      _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bs)),
                     _mm_loadu_si128(reinterpret_cast<const __m128i*>(bs + 8)));
  uint64_t m8;
  std::memcpy(&m8, sm.m, 8);
  const __m128i mins =
      _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(m8)));
  return _mm_madd_epi16(mins, bs32);
}

template <GgmlType kType, KOrder kOrder>
struct SimdKernel {
  static constexpr size_t kBytes = kKBlockBytes<kType>;
  // Least software prefetch distance along the weights (rows are
  // contiguous; as matmul.cc's kernels). A prefetch past the end of the
  // matrix does not fault.
  static constexpr size_t kPrefetchBytes = 3072;

  // Integer lanes of super-block blk[p] against activation quants aq[j]
  // (256 each) into lanes[p * NA + j] (Q6_K before its offset term).
  // (Q4_K/Q5_K: only the 64-element chunks [kC0, kC1).)
  template <int P, int NA, int kC0 = 0, int kC1 = 4>
  static HWY_INLINE void Lanes(const uint8_t* const* blk,
                               const SbHeader<kType>* h,
                               const int8_t* const* aq, __m256i* lanes) {
    TPSERVE_KQ_UNROLL
    for (int k = 0; k < P * NA; ++k) lanes[k] = _mm256_setzero_si256();
    const __m256i m4 = _mm256_set1_epi8(0xF);
    if constexpr (kType == GgmlType::kQ6_K) {
      const __m256i m3 = _mm256_set1_epi8(3);
      TPSERVE_KQ_UNROLL
      for (int half = 0; half < 2; ++half) {
        TPSERVE_KQ_UNROLL
        for (int p = 0; p < P; ++p) {
          const auto* b = reinterpret_cast<const BlockQ6_K*>(blk[p]);
          const __m256i l0 = Load256(b->ql + 64 * half);
          const __m256i l1 = Load256(b->ql + 64 * half + 32);
          const __m256i hv = Load256(b->qh + 32 * half);
          // The four 32-groups of this half (ggml_blocks.h, Q6_K).
          const __m256i g[4] = {
              _mm256_or_si256(_mm256_and_si256(l0, m4),
                              _mm256_slli_epi16(_mm256_and_si256(hv, m3), 4)),
              _mm256_or_si256(
                  _mm256_and_si256(l1, m4),
                  _mm256_slli_epi16(_mm256_and_si256(hv, _mm256_set1_epi8(12)),
                                    2)),
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                              _mm256_and_si256(hv, _mm256_set1_epi8(48))),
              _mm256_or_si256(
                  _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                  _mm256_srli_epi16(_mm256_and_si256(hv, _mm256_set1_epi8(-64)),
                                    2)),
          };
          TPSERVE_KQ_UNROLL
          for (int gi = 0; gi < 4; ++gi) {
            const int s = 4 * half + gi;
            // int16 lanes 0-7 (bytes 0-15) take scale 2s, 8-15 scale 2s+1.
            const __m256i sc16 =
                _mm256_set_m128i(_mm_set1_epi16(b->scales[2 * s + 1]),
                                 _mm_set1_epi16(b->scales[2 * s]));
            TPSERVE_KQ_UNROLL
            for (int j = 0; j < NA; ++j) {
              const __m256i pr = _mm256_madd_epi16(
                  _mm256_maddubs_epi16(g[gi], Load256(aq[j] + 32 * s)), sc16);
              lanes[p * NA + j] = _mm256_add_epi32(lanes[p * NA + j], pr);
            }
          }
        }
      }
    } else {
      TPSERVE_KQ_UNROLL
      for (int c = kC0; c < kC1; ++c) {
        TPSERVE_KQ_UNROLL
        for (int p = 0; p < P; ++p) {
          const uint8_t* qs;
          if constexpr (kType == GgmlType::kQ4_K) {
            qs = reinterpret_cast<const BlockQ4_K*>(blk[p])->qs;
          } else {
            qs = reinterpret_cast<const BlockQ5_K*>(blk[p])->qs;
          }
          const __m256i q = Load256(qs + 32 * c);
          __m256i lo = _mm256_and_si256(q, m4);
          __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
          if constexpr (kType == GgmlType::kQ5_K) {
            const __m256i hb =
                Load256(reinterpret_cast<const BlockQ5_K*>(blk[p])->qh);
            const __m256i one = _mm256_set1_epi8(1);
            const __m256i b0 = _mm256_and_si256(
                _mm256_srl_epi16(hb, _mm_cvtsi32_si128(2 * c)), one);
            const __m256i b1 = _mm256_and_si256(
                _mm256_srl_epi16(hb, _mm_cvtsi32_si128(2 * c + 1)), one);
            lo = _mm256_or_si256(lo, _mm256_slli_epi16(b0, 4));
            hi = _mm256_or_si256(hi, _mm256_slli_epi16(b1, 4));
          }
          const __m256i s_lo = _mm256_set1_epi16(h[p].sm.sc[2 * c]);
          const __m256i s_hi = _mm256_set1_epi16(h[p].sm.sc[2 * c + 1]);
          TPSERVE_KQ_UNROLL
          for (int j = 0; j < NA; ++j) {
            const __m256i p0 = _mm256_madd_epi16(
                _mm256_maddubs_epi16(lo, Load256(aq[j] + 64 * c)), s_lo);
            const __m256i p1 = _mm256_madd_epi16(
                _mm256_maddubs_epi16(hi, Load256(aq[j] + 64 * c + 32)), s_hi);
            lanes[p * NA + j] =
                _mm256_add_epi32(lanes[p * NA + j], _mm256_add_epi32(p0, p1));
          }
        }
      }
    }
  }

  // One super-block in the repacked gemm's order: per 64-element chunk c,
  // A += float(chunk sum) * (d_w d_act), M += float(chunk min sum) *
  // (dmin_w d_act), pairs in lanes.
  template <int P, int NA>
  static HWY_INLINE void GemmStep(const uint8_t* const* blk,
                                  const SbHeader<kType>* h,
                                  const int8_t* const* aq,
                                  const int16_t* const* bs, const float* da,
                                  __m128* rep_a, __m128* rep_m) {
    constexpr int kPairs = P * NA;
    alignas(16) float dw[4] = {}, dm[4] = {}, dav[4] = {};
    alignas(16) int32_t part[4][4] = {};  // [chunk][pair]
    TPSERVE_KQ_UNROLL
    for (int p = 0; p < P; ++p) {
      TPSERVE_KQ_UNROLL
      for (int j = 0; j < NA; ++j) {
        int32_t pp[4];
        MinParts(h[p].sm, bs[j], pp);
        TPSERVE_KQ_UNROLL
        for (int c = 0; c < 4; ++c) part[c][p * NA + j] = pp[c];
        dw[p * NA + j] = h[p].d;
        dm[p * NA + j] = h[p].dmin;
        dav[p * NA + j] = da[j];
      }
    }
    const __m128 vda = _mm_load_ps(dav);
    const __m128 sa = _mm_mul_ps(_mm_load_ps(dw), vda);
    const __m128 sm = _mm_mul_ps(_mm_load_ps(dm), vda);
    __m256i lanes[4];
    auto chunk = [&](auto c_tag) {
      constexpr int c = decltype(c_tag)::value;
      TPSERVE_KQ_UNROLL
      for (int k = 0; k < 4; ++k) lanes[k] = _mm256_setzero_si256();
      Lanes<P, NA, c, c + 1>(blk, h, aq, lanes);
      (void)kPairs;
      const __m128i isum = SumLanes4(lanes);
      *rep_a = _mm_fmadd_ps(_mm_cvtepi32_ps(isum), sa, *rep_a);
      *rep_m = _mm_fmadd_ps(_mm_cvtepi32_ps(_mm_load_si128(
                                reinterpret_cast<const __m128i*>(part[c]))),
                            sm, *rep_m);
    };
    chunk(std::integral_constant<int, 0>());
    chunk(std::integral_constant<int, 1>());
    chunk(std::integral_constant<int, 2>());
    chunk(std::integral_constant<int, 3>());
  }

  // y for weight rows r .. r + P - 1 and activation rows i0 .. i0 + NA - 1.
  template <int P, int NA>
  static HWY_INLINE void Tile(const MatMulArgs& a, int64_t r, int64_t i0) {
    static_assert(P * NA <= 4, "at most four pairs per tile");
    constexpr int kPairs = P * NA;
    const int64_t cols = a.w.cols;
    const int64_t nsb = cols / kQK_K;
    const uint8_t* wrow[P];
    TPSERVE_KQ_UNROLL
    for (int p = 0; p < P; ++p) {
      wrow[p] = a.w.data + static_cast<size_t>(r + p) * a.w.row_stride;
    }
    // Prefetch distance: the same place P rows on (the next tile's), at
    // least kPrefetchBytes.
    const size_t ahead =
        std::max(kPrefetchBytes, static_cast<size_t>(P) * a.w.row_stride);
    const int8_t* aq0[NA];
    const int16_t* bs0[NA];
    const float* da0[NA];
    TPSERVE_KQ_UNROLL
    for (int j = 0; j < NA; ++j) {
      const size_t i = static_cast<size_t>(i0 + j);
      aq0[j] = a.acts.q + i * cols;
      bs0[j] = a.acts.sums + i * (cols / 16);
      da0[j] = a.acts.d + i * (cols / 32);
    }
    // kGemv/kGemm/kTiled: A (and M) of pair k in lane k. kVecDot: 8 lanes
    // per pair, and the min chains (Q4_K 4 lanes, Q5_K lane 0).
    __m128 rep_a = _mm_setzero_ps(), rep_m = _mm_setzero_ps();
    __m256 acc[kPairs];
    __m128 acc_m[kPairs];
    TPSERVE_KQ_UNROLL
    for (int k = 0; k < kPairs; ++k) {
      acc[k] = _mm256_setzero_ps();
      acc_m[k] = _mm_setzero_ps();
    }
    for (int64_t sb = 0; sb < nsb; ++sb) {
      const uint8_t* blk[P];
      TPSERVE_KQ_UNROLL
      for (int p = 0; p < P; ++p) {
        blk[p] = wrow[p] + sb * kBytes;
        // Every cache line of the block as far ahead.
        TPSERVE_KQ_UNROLL
        for (size_t off = 0; off < kBytes; off += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(blk[p]) + ahead + off,
                       _MM_HINT_T0);
        }
      }
      SbHeader<kType> h[P];
      TPSERVE_KQ_UNROLL
      for (int p = 0; p < P; ++p) h[p].Load(blk[p]);
      const int8_t* aq[NA];
      const int16_t* bs[NA];
      float da[NA];
      TPSERVE_KQ_UNROLL
      for (int j = 0; j < NA; ++j) {
        aq[j] = aq0[j] + sb * kQK_K;
        bs[j] = bs0[j] + sb * 16;
        da[j] = da0[j][sb];
      }
      __m256i lanes[4];
      if constexpr (kOrder == KOrder::kGemm) {
        static_assert(kType == GgmlType::kQ4_K, "gemm order is Q4_K's");
        GemmStep<P, NA>(blk, h, aq, bs, da, &rep_a, &rep_m);
        continue;
      }
      Lanes<P, NA>(blk, h, aq, lanes);
      if constexpr (kType == GgmlType::kQ6_K) {
        TPSERVE_KQ_UNROLL
        for (int p = 0; p < P; ++p) {
          const auto* b = reinterpret_cast<const BlockQ6_K*>(blk[p]);
          const __m256i sc16 = _mm256_cvtepi8_epi16(
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->scales)));
          TPSERVE_KQ_UNROLL
          for (int j = 0; j < NA; ++j) {
            const __m256i sub =
                _mm256_slli_epi32(_mm256_madd_epi16(Load256(bs[j]), sc16), 5);
            lanes[p * NA + j] = _mm256_sub_epi32(lanes[p * NA + j], sub);
          }
        }
      }
      if constexpr (kOrder == KOrder::kGemv || kOrder == KOrder::kTiled) {
        __m128i parts[4];
        TPSERVE_KQ_UNROLL
        for (int k = kPairs; k < 4; ++k) {
          lanes[k] = _mm256_setzero_si256();
          parts[k] = _mm_setzero_si128();
        }
        alignas(16) float dw[4] = {}, dm[4] = {}, dav[4] = {};
        TPSERVE_KQ_UNROLL
        for (int p = 0; p < P; ++p) {
          TPSERVE_KQ_UNROLL
          for (int j = 0; j < NA; ++j) {
            parts[p * NA + j] = MinPartsVec(h[p].sm, bs[j]);
            dw[p * NA + j] = h[p].d;
            dm[p * NA + j] = h[p].dmin;
            dav[p * NA + j] = da[j];
          }
        }
        const __m128i isum = SumLanes4(lanes);
        const __m128i msum = _mm_hadd_epi32(_mm_hadd_epi32(parts[0], parts[1]),
                                            _mm_hadd_epi32(parts[2], parts[3]));
        const __m128 vda = _mm_load_ps(dav);
        if constexpr (kOrder == KOrder::kGemv) {
          rep_a = _mm_fmadd_ps(_mm_cvtepi32_ps(isum),
                               _mm_mul_ps(_mm_load_ps(dw), vda), rep_a);
          rep_m = _mm_fmadd_ps(_mm_cvtepi32_ps(msum),
                               _mm_mul_ps(_mm_load_ps(dm), vda), rep_m);
        } else {
          __m128 t = _mm_mul_ps(_mm_cvtepi32_ps(isum), _mm_load_ps(dw));
          if constexpr (kType != GgmlType::kQ6_K) {
            t = _mm_fnmadd_ps(_mm_load_ps(dm), _mm_cvtepi32_ps(msum), t);
          }
          rep_a = _mm_fmadd_ps(t, vda, rep_a);
        }
      } else {
        TPSERVE_KQ_UNROLL
        for (int p = 0; p < P; ++p) {
          TPSERVE_KQ_UNROLL
          for (int j = 0; j < NA; ++j) {
            const int k = p * NA + j;
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(da[j] * h[p].d),
                                     _mm256_cvtepi32_ps(lanes[k]), acc[k]);
            if constexpr (kType != GgmlType::kQ6_K) {
              const float dmin = -da[j] * h[p].dmin;
              const __m128i parts = MinPartsVec(h[p].sm, bs[j]);
              if constexpr (kType == GgmlType::kQ4_K) {
                acc_m[k] = _mm_fmadd_ps(_mm_set1_ps(dmin),
                                        _mm_cvtepi32_ps(parts), acc_m[k]);
              } else {
                const __m128i t = _mm_hadd_epi32(parts, parts);
                const int32_t msum = _mm_cvtsi128_si32(_mm_hadd_epi32(t, t));
                acc_m[k] = _mm_fmadd_ss(_mm_set_ss(dmin),
                                        _mm_set_ss(static_cast<float>(msum)),
                                        acc_m[k]);
              }
            }
          }
        }
      }
    }
    const size_t rows = static_cast<size_t>(a.w.rows);
    alignas(16) float rep[4];
    if constexpr (kOrder == KOrder::kGemv || kOrder == KOrder::kGemm) {
      _mm_store_ps(rep, _mm_sub_ps(rep_a, rep_m));
    } else if constexpr (kOrder == KOrder::kTiled) {
      _mm_store_ps(rep, rep_a);
    }
    TPSERVE_KQ_UNROLL
    for (int p = 0; p < P; ++p) {
      TPSERVE_KQ_UNROLL
      for (int j = 0; j < NA; ++j) {
        const int k = p * NA + j;
        float out;
        if constexpr (kOrder != KOrder::kVecDot) {
          out = rep[k];
        } else if constexpr (kType == GgmlType::kQ4_K) {
          __m128 m = _mm_add_ps(acc_m[k], _mm_movehl_ps(acc_m[k], acc_m[k]));
          m = _mm_add_ss(m, _mm_movehdup_ps(m));
          out = HsumGgml8(acc[k]) + _mm_cvtss_f32(m);
        } else if constexpr (kType == GgmlType::kQ5_K) {
          out = HsumGgml8(acc[k]) + _mm_cvtss_f32(acc_m[k]);
        } else {
          out = HsumGgml8(acc[k]);
        }
        a.y[static_cast<size_t>(i0 + j) * rows + static_cast<size_t>(r + p)] =
            out;
      }
    }
  }

  // Activation rows [i0, i0 + na), na <= 4, against weight rows [r0, r1).
  static void Group(const MatMulArgs& a, int64_t r0, int64_t r1, int64_t i0,
                    int64_t na) {
    int64_t r = r0;
    switch (na) {
      case 4:
        for (; r < r1; ++r) Tile<1, 4>(a, r, i0);
        break;
      case 3:
        for (; r < r1; ++r) Tile<1, 3>(a, r, i0);
        break;
      case 2:
        for (; r + 2 <= r1; r += 2) Tile<2, 2>(a, r, i0);
        for (; r < r1; ++r) Tile<1, 2>(a, r, i0);
        break;
      default:
        for (; r + 4 <= r1; r += 4) Tile<4, 1>(a, r, i0);
        for (; r < r1; ++r) Tile<1, 1>(a, r, i0);
        break;
    }
  }
};

template <GgmlType kType, KOrder kOrder>
void Group(const MatMulArgs& a, int64_t r0, int64_t r1, int64_t i0,
           int64_t na) {
  SimdKernel<kType, kOrder>::Group(a, r0, r1, i0, na);
}
#else
template <GgmlType kType, KOrder kOrder>
void Group(const MatMulArgs& a, int64_t r0, int64_t r1, int64_t i0,
           int64_t na) {
  ScalarGroup<kType, kOrder>(a, r0, r1, i0, na);
}
#endif  // TPSERVE_KQ_X86

// Activation rows in groups of four (outer), weight rows inner, so a row
// chunk's weights stay in cache while a long batch's groups pass over it.
// Each group takes the order llama.cpp gives its rows (matmul_kquant.h).
template <GgmlType kType>
void Run(const MatMulArgs& a, int64_t r0, int64_t r1) {
  const bool repacked = KQuantRepackOrder(a.w);
  const bool tiled = a.ggml_batch && a.n >= 8;
  for (int64_t i0 = 0; i0 < a.n; i0 += 4) {
    const int64_t na = std::min<int64_t>(4, a.n - i0);
    if constexpr (kType == GgmlType::kQ4_K) {
      if (repacked) {
        // ggml's gemm takes the rows of whole groups of four.
        if (a.ggml_batch && na == 4) {
          Group<kType, KOrder::kGemm>(a, r0, r1, i0, na);
        } else {
          Group<kType, KOrder::kGemv>(a, r0, r1, i0, na);
        }
        continue;
      }
    }
    if (tiled) {
      Group<kType, KOrder::kTiled>(a, r0, r1, i0, na);
    } else {
      Group<kType, KOrder::kVecDot>(a, r0, r1, i0, na);
    }
  }
}

void KQuantRowsImpl(const MatMulArgs& a, int64_t r0, int64_t r1) {
  switch (a.w.type) {
    case GgmlType::kQ4_K:
      return Run<GgmlType::kQ4_K>(a, r0, r1);
    case GgmlType::kQ5_K:
      return Run<GgmlType::kQ5_K>(a, r0, r1);
    case GgmlType::kQ6_K:
      return Run<GgmlType::kQ6_K>(a, r0, r1);
    default:
      return;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace tpserve::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tpserve::cpu {

HWY_EXPORT(KQuantRowsImpl);

void QuantizeActRowsQ8K(const float* x, int64_t cols, int64_t i0, int64_t i1,
                        int8_t* q, float* d, int16_t* sums) {
  const int64_t nsb = cols / kQK_K;
  for (int64_t i = i0; i < i1; ++i) {
    for (int64_t sb = 0; sb < nsb; ++sb) {
      const size_t e = static_cast<size_t>(i) * cols + sb * kQK_K;
      QuantizeActivationBlockQ8K(x + e, q + e,
                                 d + static_cast<size_t>(i) * (cols / 32) + sb,
                                 sums + e / 16);
    }
  }
}

void KQuantMatMulRows(const MatMulArgs& args, int64_t r0, int64_t r1) {
  HWY_DYNAMIC_DISPATCH(KQuantRowsImpl)(args, r0, r1);
}

}  // namespace tpserve::cpu
#endif  // HWY_ONCE
