// The matmul kernels every Highway target has: float weights through
// Highway's float ops, and the scalar integer kernels of the legacy
// block formats (the integer path of targets without matmul_avx2.cc's).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/matmul_generic.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
// Must follow foreach_target.h.
#include <hwy/highway.h>

#include "kernels/cpu/matmul_kernels-inl.h"

HWY_BEFORE_NAMESPACE();
namespace tpserve::cpu {
namespace HWY_NAMESPACE {

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

void FloatMatMulRows(const MatMulArgs& a, int64_t r0, int64_t r1) {
  switch (a.w.type) {
    case GgmlType::kF32:
      return Drive<FloatKernel<GgmlType::kF32>>(a, r0, r1);
    case GgmlType::kF16:
      return Drive<FloatKernel<GgmlType::kF16>>(a, r0, r1);
    case GgmlType::kBF16:
      return Drive<FloatKernel<GgmlType::kBF16>>(a, r0, r1);
    default:
      return;  // Not a float type: the dispatch never asks.
  }
}

void ScalarLegacyMatMulRows(const MatMulArgs& a, int64_t r0, int64_t r1) {
  switch (a.w.type) {
    case GgmlType::kQ8_0:
      return Drive<ScalarKernel<GgmlType::kQ8_0>>(a, r0, r1);
    case GgmlType::kQ4_0:
      return Drive<ScalarKernel<GgmlType::kQ4_0>>(a, r0, r1);
    case GgmlType::kQ4_1:
      return Drive<ScalarKernel<GgmlType::kQ4_1>>(a, r0, r1);
    case GgmlType::kQ5_0:
      return Drive<ScalarKernel<GgmlType::kQ5_0>>(a, r0, r1);
    case GgmlType::kQ5_1:
      return Drive<ScalarKernel<GgmlType::kQ5_1>>(a, r0, r1);
    default:
      return;  // Not a legacy type: the dispatch never asks.
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace tpserve::cpu
HWY_AFTER_NAMESPACE();
