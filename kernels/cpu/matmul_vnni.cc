// The AVX512-VNNI matmul kernels of Q8_0 and Q4_1 (vpdpbusd on one block
// of two weight rows per 512-bit vector): compiled for the AVX-512 Highway
// targets only, each function with its own target attribute (Highway
// 1.0.3's AVX3 target does not include VNNI), run only when the CPU has it.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/matmul_vnni.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
// Must follow foreach_target.h.
#include <hwy/highway.h>

#include "kernels/cpu/matmul_kernels-inl.h"

HWY_BEFORE_NAMESPACE();
namespace tpserve::cpu {
namespace HWY_NAMESPACE {

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#undef TPSERVE_VNNI_FN
#undef TPSERVE_VNNI_INLINE
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

bool VnniMatMulRows(const MatMulArgs& a, int64_t r0, int64_t r1) {
  if (!CpuHasAvx512Vnni()) return false;
  switch (a.w.type) {
    case GgmlType::kQ8_0:
      VnniKernel<GgmlType::kQ8_0>::Run(a, r0, r1);
      return true;
    case GgmlType::kQ4_1:
      VnniKernel<GgmlType::kQ4_1>::Run(a, r0, r1);
      return true;
    default:
      return false;
  }
}
#endif  // AVX3 targets

}  // namespace HWY_NAMESPACE
}  // namespace tpserve::cpu
HWY_AFTER_NAMESPACE();
