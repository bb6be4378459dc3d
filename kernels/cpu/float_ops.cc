#include "kernels/cpu/float_ops.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/reference_ops.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// Every function body is an always-inline function inlined twice: into a
// function built for AVX2+FMA (std::fma becomes one vfmadd instruction and
// GCC vectorizes the fixed-width lane loops) and in a baseline one (std::fma
// is then glibc's, which is exact too: same results, slower). The choice is
// made once per process from cpuid.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define TPSERVE_FLOAT_OPS_DISPATCH 1
#define TPSERVE_FMA_TARGET __attribute__((target("avx2,fma,f16c")))
#else
#define TPSERVE_FLOAT_OPS_DISPATCH 0
#define TPSERVE_FMA_TARGET
#endif
#define TPSERVE_ALWAYS_INLINE inline __attribute__((always_inline))

namespace tpserve::cpu {
namespace {

bool UseFma() {
#if TPSERVE_FLOAT_OPS_DISPATCH
  // (Every CPU with AVX2 has F16C, which came a generation earlier.)
  static const bool fma =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return fma;
#else
  return false;
#endif
}

constexpr int kLanes = 16;  // One __m512 of floats, as ggml's AVX-512 code.

int64_t RoundUp(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// _mm512_reduce_add_ps as GCC's header defines it: halves, then quarters,
// then lanes (0 + 2) + (1 + 3).
TPSERVE_ALWAYS_INLINE float Reduce16(const float* a) {
  float b[8], c[4];
  for (int i = 0; i < 8; ++i) b[i] = a[i + 8] + a[i];
  for (int i = 0; i < 4; ++i) c[i] = b[i + 4] + b[i];
  return (c[0] + c[2]) + (c[1] + c[3]);
}

// 2^e for e in [-126, 127], exactly.
TPSERVE_ALWAYS_INLINE float Pow2(int e) {
  const uint32_t bits = static_cast<uint32_t>(e + 127) << 23;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

TPSERVE_ALWAYS_INLINE float ExpFImpl(float x) {
  // Round x / ln 2 to an integer n with the 1.5 * 2^23 shift, reduce
  // b = x - n ln 2 (ln 2 in two parts), then a degree-5 polynomial and
  // j * 2^n. Each fma is one fused operation, as in ggml's intrinsics.
  constexpr float kShift = 0x1.8p23f;
  const float z = std::fma(x, 0x1.715476p+0f, kShift);
  const float n = z - kShift;
  const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
  const float u = b * b;
  const float j =
      std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                        std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
               u, std::fma(0x1.ffffecp-1f, b, 1.0f));
  if (std::isnan(n)) return n;
  if (std::fabs(n) > 192.0f) {
    return n <= 0 ? 0.0f : std::numeric_limits<float>::infinity();
  }
  // j * 2^n rounded once, as _mm512_scalef_ps(j, n): j is in [0.7, 1.5], so
  // j * 2^(n + 100) is exact and normal and the last product rounds (to a
  // subnormal or zero for very negative n, to inf past the float range).
  const int e = static_cast<int>(n);
  if (e < 0) return j * Pow2(e + 100) * Pow2(-100);
  if (e > 127) return j * Pow2(100) * Pow2(e - 100);
  return j * Pow2(e);
}

TPSERVE_ALWAYS_INLINE void SwiGluImpl(float* gate, const float* up, int64_t n) {
  // ggml's 16-wide code. (ggml finishes a row whose width is not a multiple
  // of 16 with libm's expf; every Llama FFN width is a multiple of 16, and
  // one rule for every element keeps results independent of the batch.)
  for (int64_t i = 0; i < n; ++i) {
    const float x = gate[i];
    gate[i] = x / (1.0f + ExpFImpl(0.0f - x)) * up[i];
  }
}

// Half rows to float and back, exact both ways (as Fp16ToFp32 and
// Fp32ToFp16), eight at a time with F16C: these carry their own target (an
// always-inline caller of the baseline build may not hold intrinsics).
#if TPSERVE_FLOAT_OPS_DISPATCH
TPSERVE_FMA_TARGET void HalfToFloatF16c(const uint16_t* src, int64_t n,
                                        float* dst) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(
                                  reinterpret_cast<const __m128i*>(src + i))));
  }
  for (; i < n; ++i) dst[i] = Fp16ToFp32(src[i]);
}

TPSERVE_FMA_TARGET void FloatToHalfF16c(const float* src, int64_t n,
                                        uint16_t* dst) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(
        reinterpret_cast<__m128i*>(dst + i),
        _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i) dst[i] = Fp32ToFp16(src[i]);
}
#endif

template <bool kF16c>
TPSERVE_ALWAYS_INLINE void HalfToFloatImpl(const uint16_t* src, int64_t n,
                                           float* dst) {
#if TPSERVE_FLOAT_OPS_DISPATCH
  if constexpr (kF16c) return HalfToFloatF16c(src, n, dst);
#endif
  for (int64_t i = 0; i < n; ++i) dst[i] = Fp16ToFp32(src[i]);
}

template <bool kF16c>
TPSERVE_ALWAYS_INLINE void FloatToHalfImpl(const float* src, int64_t n,
                                           uint16_t* dst) {
#if TPSERVE_FLOAT_OPS_DISPATCH
  if constexpr (kF16c) return FloatToHalfF16c(src, n, dst);
#endif
  for (int64_t i = 0; i < n; ++i) dst[i] = Fp32ToFp16(src[i]);
}

// q . k over head_dim as ggml computes one KQ entry.
TPSERVE_ALWAYS_INLINE float DotKq(const float* q, const float* k, int64_t hd,
                                  bool tiled) {
  if (tiled) {
    // tinyBLAS: one 16-lane accumulator, chunks in order, then reduced.
    float acc[kLanes] = {};
    for (int64_t c = 0; c < hd; c += kLanes) {
      for (int l = 0; l < kLanes; ++l) {
        acc[l] = std::fma(k[c + l], q[c + l], acc[l]);
      }
    }
    return Reduce16(acc);
  }
  // ggml_vec_dot_f16: four 16-lane accumulators over 64-element steps,
  // combined (0 + 2) + (1 + 3) and reduced into a double, then the tail.
  const int64_t np = hd & ~int64_t{63};
  float sum[4][kLanes] = {};
  for (int64_t i = 0; i < np; i += 64) {
    for (int j = 0; j < 4; ++j) {
      for (int l = 0; l < kLanes; ++l) {
        const int64_t e = i + j * kLanes + l;
        sum[j][l] = std::fma(k[e], q[e], sum[j][l]);
      }
    }
  }
  for (int l = 0; l < kLanes; ++l) {
    sum[0][l] += sum[2][l];
    sum[1][l] += sum[3][l];
    sum[0][l] += sum[1][l];
  }
  double s = Reduce16(sum[0]);
  for (int64_t i = np; i < hd; ++i) s += static_cast<double>(k[i] * q[i]);
  return static_cast<float>(s);
}

template <bool kF16c>
TPSERVE_ALWAYS_INLINE void AttendHeadImpl(const float* q,
                                          const void* const* keys,
                                          const void* const* values,
                                          bool kv_f16, int64_t len, int64_t hd,
                                          float scale, AttentionOrder order,
                                          float* scratch, float* out) {
  // tinyBLAS takes KQ when head_dim % 16 == 0 and KQV when head_dim % 4 ==
  // 0 (its other conditions hold for llama.cpp's padded KV length);
  // otherwise ggml falls back to ggml_vec_dot_f16.
  const bool kq_tiled = order == AttentionOrder::kTiled && hd % 16 == 0;
  const bool kqv_tiled = order == AttentionOrder::kTiled && hd % 4 == 0;
  float* w = scratch;  // Scores, then weights; RoundUp(len, 64) of them.
  float* acc = scratch + RoundUp(len, 64);  // [64 or 16 lanes][hd].
  float* row = acc + 64 * hd;               // One K or V row as floats.
  auto as_floats = [&](const void* r) -> const float* {
    if (!kv_f16) return static_cast<const float*>(r);
    HalfToFloatImpl<kF16c>(static_cast<const uint16_t*>(r), hd, row);
    return row;
  };

  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t p = 0; p < len; ++p) {
    w[p] = DotKq(q, as_floats(keys[p]), hd, kq_tiled) * scale;
    mx = std::max(mx, w[p]);
  }
  // ggml_vec_soft_max_f32: exp in 16-wide chunks from position 0, each
  // chunk reduced and added into a double. Masked positions (p >= len, up
  // to llama.cpp's padded KV length) are exp(-inf) = 0 and add nothing.
  const int64_t len16 = RoundUp(len, kLanes);
  double sum = 0;
  for (int64_t c = 0; c < len16; c += kLanes) {
    float e[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      e[l] = c + l < len ? ExpFImpl(w[c + l] - mx) : 0.0f;
    }
    std::memcpy(w + c, e, sizeof(e));
    sum += Reduce16(e);
  }
  const float inv = static_cast<float>(1.0 / sum);
  // The KQV matmul converts the weights to fp16 (its vec_dot type).
  for (int64_t p = 0; p < len; ++p) w[p] = RoundToFp16(w[p] * inv);

  // Weighted sum of values, lane by lane as the chosen path accumulates:
  // position p goes to lane p % 16 (tinyBLAS) or p % 64 (vec_dot's four
  // accumulators), chunks in order. Positions past len have weight 0.
  const int lanes = kqv_tiled ? kLanes : 64;
  const int64_t used = std::min<int64_t>(lanes, len);
  for (int64_t p = 0; p < used; ++p) {  // First chunk: fma onto +0.
    float* a = acc + p * hd;
    const float* v = as_floats(values[p]);
    const float wp = w[p];
    for (int64_t d = 0; d < hd; ++d) a[d] = std::fma(v[d], wp, 0.0f);
  }
  std::fill(acc + used * hd, acc + lanes * hd, 0.0f);
  for (int64_t p = used; p < len; ++p) {
    float* a = acc + (p % lanes) * hd;
    const float* v = as_floats(values[p]);
    const float wp = w[p];
    for (int64_t d = 0; d < hd; ++d) a[d] = std::fma(v[d], wp, a[d]);
  }
  // vec_dot: lane l of the result is (acc_l + acc_l+32) + (acc_l+16 +
  // acc_l+48); then Reduce16 over l. Both loops run along d (vectorized).
  if (!kqv_tiled) {
    for (int l = 0; l < kLanes; ++l) {
      float* a0 = acc + l * hd;
      const float* a1 = acc + (l + 16) * hd;
      const float* a2 = acc + (l + 32) * hd;
      const float* a3 = acc + (l + 48) * hd;
      for (int64_t d = 0; d < hd; ++d)
        a0[d] = (a0[d] + a2[d]) + (a1[d] + a3[d]);
    }
  }
  for (int i = 0; i < 8; ++i) {  // Lanes i + 8 onto i.
    float* a = acc + i * hd;
    const float* b = acc + (i + 8) * hd;
    for (int64_t d = 0; d < hd; ++d) a[d] = b[d] + a[d];
  }
  for (int i = 0; i < 4; ++i) {  // Lanes i + 4 onto i.
    float* a = acc + i * hd;
    const float* b = acc + (i + 4) * hd;
    for (int64_t d = 0; d < hd; ++d) a[d] = b[d] + a[d];
  }
  const float* c0 = acc;
  const float* c1 = acc + hd;
  const float* c2 = acc + 2 * hd;
  const float* c3 = acc + 3 * hd;
  for (int64_t d = 0; d < hd; ++d) out[d] = (c0[d] + c2[d]) + (c1[d] + c3[d]);
}

#if TPSERVE_FLOAT_OPS_DISPATCH
TPSERVE_FMA_TARGET float ExpFFma(float x) { return ExpFImpl(x); }
TPSERVE_FMA_TARGET void SwiGluFma(float* gate, const float* up, int64_t n) {
  SwiGluImpl(gate, up, n);
}
TPSERVE_FMA_TARGET void AttendHeadFma(const float* q, const void* const* keys,
                                      const void* const* values, bool kv_f16,
                                      int64_t len, int64_t hd, float scale,
                                      AttentionOrder order, float* scratch,
                                      float* out) {
  AttendHeadImpl<true>(q, keys, values, kv_f16, len, hd, scale, order, scratch,
                       out);
}
TPSERVE_FMA_TARGET void HalfToFloatFma(const uint16_t* src, int64_t n,
                                       float* dst) {
  HalfToFloatImpl<true>(src, n, dst);
}
TPSERVE_FMA_TARGET void FloatToHalfFma(const float* src, int64_t n,
                                       uint16_t* dst) {
  FloatToHalfImpl<true>(src, n, dst);
}
#endif

}  // namespace

float ExpF(float x) {
#if TPSERVE_FLOAT_OPS_DISPATCH
  if (UseFma()) return ExpFFma(x);
#endif
  return ExpFImpl(x);
}

void SwiGlu(float* gate, const float* up, int64_t n) {
#if TPSERVE_FLOAT_OPS_DISPATCH
  if (UseFma()) return SwiGluFma(gate, up, n);
#endif
  SwiGluImpl(gate, up, n);
}

void AttendHead(const float* q, const void* const* keys,
                const void* const* values, bool kv_f16, int64_t len,
                int64_t head_dim, float scale, AttentionOrder order,
                float* scratch, float* out) {
#if TPSERVE_FLOAT_OPS_DISPATCH
  if (UseFma()) {
    return AttendHeadFma(q, keys, values, kv_f16, len, head_dim, scale, order,
                         scratch, out);
  }
#endif
  AttendHeadImpl<false>(q, keys, values, kv_f16, len, head_dim, scale, order,
                        scratch, out);
}

void HalfToFloatRow(const uint16_t* src, int64_t n, float* dst) {
#if TPSERVE_FLOAT_OPS_DISPATCH
  if (UseFma()) return HalfToFloatFma(src, n, dst);
#endif
  HalfToFloatImpl<false>(src, n, dst);
}

void FloatToHalfRow(const float* src, int64_t n, uint16_t* dst) {
#if TPSERVE_FLOAT_OPS_DISPATCH
  if (UseFma()) return FloatToHalfFma(src, n, dst);
#endif
  FloatToHalfImpl<false>(src, n, dst);
}

bool FloatOpsUseFma() { return UseFma(); }

int64_t AttentionScratchFloats(int64_t len, int64_t head_dim) {
  return RoundUp(len, 64) + 65 * head_dim;
}

}  // namespace tpserve::cpu
