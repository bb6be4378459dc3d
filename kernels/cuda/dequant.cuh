// Device-side decoding of ggml weight rows, shared by the embedding gather,
// the dequantizing GEMV and the dequantize-to-bf16 kernel. Layouts are the
// structs and comments of common/ggml_blocks.h; the arithmetic mirrors
// common/dequantize.cc term for term, and every product there is exact in
// float32 (see "Exactness" in ggml_blocks.h), so these decoders give the
// reference's bits whatever FMA contraction nvcc applies.
//
// The unit of work is 32 consecutive weights ("unit" u = weights [32u,
// 32u + 32) of a row): one block of the legacy formats, one sub-block of
// Q4_K/Q5_K, one 32-weight slab of Q6_K, and 32 plain F32/F16/BF16 values.
// Rows of float types may end in a partial unit (cols % 32 != 0), which
// LoadScalar covers; block-quantized rows are whole units by construction.
//
// Alignment: tensor data is only 2-byte aligned (GGUF blocks of 18, 22, 34,
// 210 bytes), so blocks are read with 8- and 16-bit loads, never wider.
// F32/F16/BF16 units are read 16 bytes at a time, which needs the row
// stride and base to be multiples of 16: CudaBackend::UploadWeights pads
// rows to 16 bytes, and callers check `Aligned16` before taking that path.
#ifndef TPSERVE_KERNELS_CUDA_DEQUANT_CUH_
#define TPSERVE_KERNELS_CUDA_DEQUANT_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "common/ggml_blocks.h"
#include "common/ggml_types.h"

namespace tpserve::cuda {

// Every decoder is __host__ __device__: the host instantiation
// (dequant_host.cu) lets tests check them against DequantizeRow on
// machines without a GPU.
#define TP_HD __host__ __device__ __forceinline__
// `#pragma unroll` in device code only (the host compiler warns on it).
#ifdef __CUDA_ARCH__
#define TP_UNROLL _Pragma("unroll")
#else
#define TP_UNROLL
#endif

TP_HD float HalfBits(uint16_t h) {
#ifdef __CUDA_ARCH__
  return __half2float(__ushort_as_half(h));  // Exact.
#else
  return Fp16ToFp32(h);
#endif
}

TP_HD float Bf16Bits(uint16_t h) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(static_cast<uint32_t>(h) << 16);  // Exact.
#else
  return Bf16ToFp32(h);
#endif
}

TP_HD uint16_t Ld16(const uint8_t* p) {
  return *reinterpret_cast<const uint16_t*>(p);  // p is 2-byte aligned.
}

// ggml's get_scale_min_k4 (GetScaleMinK4 in ggml_blocks.h), on the device.
TP_HD void ScaleMinK4(int j, const uint8_t* scales, int* sc, int* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
    *m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

// Weights [32u, 32u + 32) of `row` into y[0..32). For F32/F16/BF16 the unit
// must be whole (32u + 32 <= cols) and `row` 16-byte aligned.
template <GgmlType T>
TP_HD void DequantUnit(const uint8_t* __restrict__ row, int64_t u,
                       float y[32]) {
  if constexpr (T == GgmlType::kF32) {
    const float4* p = reinterpret_cast<const float4*>(row) + u * 8;
    TP_UNROLL
    for (int k = 0; k < 8; ++k) {
      const float4 v = p[k];
      y[4 * k] = v.x;
      y[4 * k + 1] = v.y;
      y[4 * k + 2] = v.z;
      y[4 * k + 3] = v.w;
    }
  } else if constexpr (T == GgmlType::kF16 || T == GgmlType::kBF16) {
    const uint4* p = reinterpret_cast<const uint4*>(row) + u * 4;
    TP_UNROLL
    for (int k = 0; k < 4; ++k) {
      const uint4 v = p[k];
      const uint32_t w[4] = {v.x, v.y, v.z, v.w};
      TP_UNROLL
      for (int e = 0; e < 4; ++e) {
        const uint16_t lo = static_cast<uint16_t>(w[e] & 0xFFFF);
        const uint16_t hi = static_cast<uint16_t>(w[e] >> 16);
        if constexpr (T == GgmlType::kF16) {
          y[8 * k + 2 * e] = HalfBits(lo);
          y[8 * k + 2 * e + 1] = HalfBits(hi);
        } else {
          y[8 * k + 2 * e] = Bf16Bits(lo);
          y[8 * k + 2 * e + 1] = Bf16Bits(hi);
        }
      }
    }
  } else if constexpr (T == GgmlType::kQ8_0) {
    const uint8_t* b = row + u * sizeof(BlockQ8_0);
    const float d = HalfBits(Ld16(b));
    TP_UNROLL
    for (int j = 0; j < 16; ++j) {
      const uint16_t q = Ld16(b + 2 + 2 * j);
      y[2 * j] = static_cast<int8_t>(q & 0xFF) * d;
      y[2 * j + 1] = static_cast<int8_t>(q >> 8) * d;
    }
  } else if constexpr (T == GgmlType::kQ4_0 || T == GgmlType::kQ4_1) {
    constexpr size_t kBytes =
        T == GgmlType::kQ4_0 ? sizeof(BlockQ4_0) : sizeof(BlockQ4_1);
    constexpr int kQs = T == GgmlType::kQ4_0 ? 2 : 4;  // Offset of qs.
    const uint8_t* b = row + u * kBytes;
    const float d = HalfBits(Ld16(b));
    const float m = T == GgmlType::kQ4_1 ? HalfBits(Ld16(b + 2)) : 0.0f;
    TP_UNROLL
    for (int j = 0; j < 8; ++j) {
      const uint16_t q2 = Ld16(b + kQs + 2 * j);
      TP_UNROLL
      for (int e = 0; e < 2; ++e) {
        const int q = (q2 >> (8 * e)) & 0xFF;
        const int jj = 2 * j + e;
        if constexpr (T == GgmlType::kQ4_0) {
          y[jj] = ((q & 0x0F) - 8) * d;
          y[jj + 16] = ((q >> 4) - 8) * d;
        } else {
          y[jj] = (q & 0x0F) * d + m;
          y[jj + 16] = (q >> 4) * d + m;
        }
      }
    }
  } else if constexpr (T == GgmlType::kQ5_0 || T == GgmlType::kQ5_1) {
    constexpr size_t kBytes =
        T == GgmlType::kQ5_0 ? sizeof(BlockQ5_0) : sizeof(BlockQ5_1);
    constexpr int kQh = T == GgmlType::kQ5_0 ? 2 : 4;  // Offset of qh.
    const uint8_t* b = row + u * kBytes;
    const float d = HalfBits(Ld16(b));
    const float m = T == GgmlType::kQ5_1 ? HalfBits(Ld16(b + 2)) : 0.0f;
    // qh as a little-endian uint32 (two 16-bit loads: 2-byte alignment).
    const uint32_t qh = static_cast<uint32_t>(Ld16(b + kQh)) |
                        static_cast<uint32_t>(Ld16(b + kQh + 2)) << 16;
    const uint8_t* qs = b + kQh + 4;
    TP_UNROLL
    for (int j = 0; j < 16; ++j) {
      const uint32_t h0 = ((qh >> j) << 4) & 0x10;
      const uint32_t h1 = (qh >> (j + 12)) & 0x10;
      const int x0 = static_cast<int>((qs[j] & 0x0Fu) | h0);
      const int x1 = static_cast<int>((qs[j] >> 4) | h1);
      if constexpr (T == GgmlType::kQ5_0) {
        y[j] = (x0 - 16) * d;
        y[j + 16] = (x1 - 16) * d;
      } else {
        y[j] = x0 * d + m;
        y[j + 16] = x1 * d + m;
      }
    }
  } else if constexpr (T == GgmlType::kQ4_K || T == GgmlType::kQ5_K) {
    constexpr size_t kBytes =
        T == GgmlType::kQ4_K ? sizeof(BlockQ4_K) : sizeof(BlockQ5_K);
    const uint8_t* b = row + (u / 8) * kBytes;
    const int s = static_cast<int>(u % 8);  // Sub-block.
    const float d = HalfBits(Ld16(b));
    const float dmin = HalfBits(Ld16(b + 2));
    int sc, mn;
    ScaleMinK4(s, b + 4, &sc, &mn);
    const float d1 = d * sc;
    const float m1 = dmin * mn;
    // Chunk s / 2 of 32 bytes; even sub-blocks take low nibbles.
    const uint8_t* q = b + (T == GgmlType::kQ4_K ? 16 : 48) + 32 * (s / 2);
    const int shift = (s & 1) * 4;
    TP_UNROLL
    for (int l = 0; l < 32; ++l) {
      int v = (q[l] >> shift) & 0xF;
      if constexpr (T == GgmlType::kQ5_K) {
        const uint8_t* qh = b + 16;
        v += ((qh[l] >> s) & 1) ? 16 : 0;
      }
      y[l] = d1 * v - m1;
    }
  } else if constexpr (T == GgmlType::kQ6_K) {
    const uint8_t* b = row + (u / 8) * sizeof(BlockQ6_K);
    const int r = static_cast<int>(u % 8);
    const int half = r / 4, k = r % 4;  // Weights 128 half + 32 k + l.
    const float d = HalfBits(Ld16(b + offsetof(BlockQ6_K, d)));
    const uint8_t* ql = b + 64 * half + (k & 1) * 32;
    const uint8_t* qh = b + offsetof(BlockQ6_K, qh) + 32 * half;
    const int8_t* sc = reinterpret_cast<const int8_t*>(
        b + offsetof(BlockQ6_K, scales) + 8 * half);
    const int nib = (k >> 1) * 4;  // k 0, 1: low nibbles; 2, 3: high.
    const int hsh = 2 * k;         // Bits 2k, 2k + 1 of qh.
    TP_UNROLL
    for (int l = 0; l < 32; ++l) {
      const int q = (((ql[l] >> nib) & 0xF) | (((qh[l] >> hsh) & 3) << 4)) - 32;
      // (d * scale) first, then times q: ggml's `d * sc[is] * q`.
      y[l] = d * sc[l / 16 + 2 * k] * q;
    }
  }
}

// Element c of an F32/F16/BF16 row (any alignment the type allows): the
// partial last unit of a float row.
template <GgmlType T>
TP_HD float LoadScalar(const uint8_t* __restrict__ row, int64_t c) {
  if constexpr (T == GgmlType::kF32) {
    return reinterpret_cast<const float*>(row)[c];
  } else if constexpr (T == GgmlType::kF16) {
    return HalfBits(reinterpret_cast<const uint16_t*>(row)[c]);
  } else {
    static_assert(T == GgmlType::kBF16, "float types only");
    return Bf16Bits(reinterpret_cast<const uint16_t*>(row)[c]);
  }
}

__host__ __device__ constexpr bool IsFloatType(GgmlType t) {
  return t == GgmlType::kF32 || t == GgmlType::kF16 || t == GgmlType::kBF16;
}

template <GgmlType T>
using TypeTag = std::integral_constant<GgmlType, T>;

// Calls f(TypeTag<T>{}) with T the compile-time type of `type` (one of the
// types DequantUnit decodes), so a generic lambda can instantiate a kernel
// per type: `constexpr GgmlType T = decltype(tag)::value;`. Returns false
// for any other type.
template <typename F>
bool DispatchWeightType(GgmlType type, F&& f) {
  switch (type) {
    case GgmlType::kF32:
      f(TypeTag<GgmlType::kF32>{});
      return true;
    case GgmlType::kF16:
      f(TypeTag<GgmlType::kF16>{});
      return true;
    case GgmlType::kBF16:
      f(TypeTag<GgmlType::kBF16>{});
      return true;
    case GgmlType::kQ8_0:
      f(TypeTag<GgmlType::kQ8_0>{});
      return true;
    case GgmlType::kQ4_0:
      f(TypeTag<GgmlType::kQ4_0>{});
      return true;
    case GgmlType::kQ4_1:
      f(TypeTag<GgmlType::kQ4_1>{});
      return true;
    case GgmlType::kQ5_0:
      f(TypeTag<GgmlType::kQ5_0>{});
      return true;
    case GgmlType::kQ5_1:
      f(TypeTag<GgmlType::kQ5_1>{});
      return true;
    case GgmlType::kQ4_K:
      f(TypeTag<GgmlType::kQ4_K>{});
      return true;
    case GgmlType::kQ5_K:
      f(TypeTag<GgmlType::kQ5_K>{});
      return true;
    case GgmlType::kQ6_K:
      f(TypeTag<GgmlType::kQ6_K>{});
      return true;
    default:
      return false;
  }
}

}  // namespace tpserve::cuda

#undef TP_HD
#undef TP_UNROLL

#endif  // TPSERVE_KERNELS_CUDA_DEQUANT_CUH_
