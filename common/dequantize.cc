#include "common/dequantize.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/checked_math.h"
#include "common/ggml_blocks.h"

namespace tpserve {
namespace {

// Copies block i out of `src`: tensor data may sit at any alignment (see
// ggml_blocks.h), and memcpy is the defined way to read it as a struct.
template <typename Block>
Block LoadBlock(const uint8_t* src, int64_t i) {
  Block b;
  std::memcpy(&b, src + static_cast<size_t>(i) * sizeof(Block), sizeof(Block));
  return b;
}

// Each Dequantize* below decodes `nb` blocks from `src` into y[0..nb *
// block_size) and mirrors ggml's dequantize_row_* in ggml-quants.c. Every
// product in them is exact in float32 (see "Exactness" in ggml_blocks.h), so
// the one rounding is the final `- min` / `+ m`: the bits do not depend on
// operation order or on the compiler fusing a multiply-add (checked once by
// building this file with -march=haswell, where GCC and clang emit FMAs, and
// running tests/dequantize_test.cc: still bit-exact).

void DequantizeF32(const uint8_t* src, int64_t nb, float* y) {
  std::memcpy(y, src, static_cast<size_t>(nb) * sizeof(float));
}

void DequantizeF16(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    y[i] = Fp16ToFp32(LoadBlock<GgmlHalf>(src, i));
  }
}

void DequantizeBf16(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    y[i] = Bf16ToFp32(LoadBlock<uint16_t>(src, i));
  }
}

void DequantizeQ8_0(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += kQK8_0) {
    const BlockQ8_0 b = LoadBlock<BlockQ8_0>(src, i);
    const float d = Fp16ToFp32(b.d);
    for (int j = 0; j < kQK8_0; ++j) y[j] = b.qs[j] * d;
  }
}

void DequantizeQ4_0(const uint8_t* src, int64_t nb, float* y) {
  constexpr int kHalf = kQK4_0 / 2;
  for (int64_t i = 0; i < nb; ++i, y += kQK4_0) {
    const BlockQ4_0 b = LoadBlock<BlockQ4_0>(src, i);
    const float d = Fp16ToFp32(b.d);
    for (int j = 0; j < kHalf; ++j) {
      const int x0 = (b.qs[j] & 0x0F) - 8;
      const int x1 = (b.qs[j] >> 4) - 8;
      y[j] = x0 * d;
      y[j + kHalf] = x1 * d;
    }
  }
}

void DequantizeQ4_1(const uint8_t* src, int64_t nb, float* y) {
  constexpr int kHalf = kQK4_1 / 2;
  for (int64_t i = 0; i < nb; ++i, y += kQK4_1) {
    const BlockQ4_1 b = LoadBlock<BlockQ4_1>(src, i);
    const float d = Fp16ToFp32(b.d);
    const float m = Fp16ToFp32(b.m);
    for (int j = 0; j < kHalf; ++j) {
      const int x0 = b.qs[j] & 0x0F;
      const int x1 = b.qs[j] >> 4;
      y[j] = x0 * d + m;
      y[j + kHalf] = x1 * d + m;
    }
  }
}

// qh as the little-endian uint32 ggml memcpys it into, independent of the
// host's byte order.
uint32_t LoadQh(const uint8_t qh[4]) {
  return static_cast<uint32_t>(qh[0]) | static_cast<uint32_t>(qh[1]) << 8 |
         static_cast<uint32_t>(qh[2]) << 16 |
         static_cast<uint32_t>(qh[3]) << 24;
}

void DequantizeQ5_0(const uint8_t* src, int64_t nb, float* y) {
  constexpr int kHalf = kQK5_0 / 2;
  for (int64_t i = 0; i < nb; ++i, y += kQK5_0) {
    const BlockQ5_0 b = LoadBlock<BlockQ5_0>(src, i);
    const float d = Fp16ToFp32(b.d);
    const uint32_t qh = LoadQh(b.qh);
    for (int j = 0; j < kHalf; ++j) {
      // Bit j of qh is weight j's 5th bit, bit j + 16 weight j + 16's.
      const uint32_t h0 = ((qh >> j) << 4) & 0x10;
      const uint32_t h1 = (qh >> (j + 12)) & 0x10;
      const int x0 = static_cast<int>((b.qs[j] & 0x0Fu) | h0) - 16;
      const int x1 = static_cast<int>((b.qs[j] >> 4) | h1) - 16;
      y[j] = x0 * d;
      y[j + kHalf] = x1 * d;
    }
  }
}

void DequantizeQ5_1(const uint8_t* src, int64_t nb, float* y) {
  constexpr int kHalf = kQK5_1 / 2;
  for (int64_t i = 0; i < nb; ++i, y += kQK5_1) {
    const BlockQ5_1 b = LoadBlock<BlockQ5_1>(src, i);
    const float d = Fp16ToFp32(b.d);
    const float m = Fp16ToFp32(b.m);
    const uint32_t qh = LoadQh(b.qh);
    for (int j = 0; j < kHalf; ++j) {
      const uint32_t h0 = ((qh >> j) << 4) & 0x10;
      const uint32_t h1 = (qh >> (j + 12)) & 0x10;
      const int x0 = static_cast<int>((b.qs[j] & 0x0Fu) | h0);
      const int x1 = static_cast<int>((b.qs[j] >> 4) | h1);
      y[j] = x0 * d + m;
      y[j + kHalf] = x1 * d + m;
    }
  }
}

void DequantizeQ4_K(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    const BlockQ4_K b = LoadBlock<BlockQ4_K>(src, i);
    const float d = Fp16ToFp32(b.d);
    const float min = Fp16ToFp32(b.dmin);
    const uint8_t* q = b.qs;
    // 64 weights (two sub-blocks) per step: low nibbles, then high ones.
    for (int s = 0; s < 8; s += 2, q += 32) {
      uint8_t sc, m;
      GetScaleMinK4(s, b.scales, &sc, &m);
      const float d1 = d * sc;
      const float m1 = min * m;
      GetScaleMinK4(s + 1, b.scales, &sc, &m);
      const float d2 = d * sc;
      const float m2 = min * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
    }
  }
}

void DequantizeQ5_K(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    const BlockQ5_K b = LoadBlock<BlockQ5_K>(src, i);
    const float d = Fp16ToFp32(b.d);
    const float min = Fp16ToFp32(b.dmin);
    const uint8_t* ql = b.qs;
    // u1/u2 select qh bit s and s + 1: the 5th bits of sub-blocks s, s + 1.
    uint8_t u1 = 1, u2 = 2;
    for (int s = 0; s < 8; s += 2, ql += 32) {
      uint8_t sc, m;
      GetScaleMinK4(s, b.scales, &sc, &m);
      const float d1 = d * sc;
      const float m1 = min * m;
      GetScaleMinK4(s + 1, b.scales, &sc, &m);
      const float d2 = d * sc;
      const float m2 = min * m;
      for (int l = 0; l < 32; ++l) {
        *y++ = d1 * ((ql[l] & 0xF) + (b.qh[l] & u1 ? 16 : 0)) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        *y++ = d2 * ((ql[l] >> 4) + (b.qh[l] & u2 ? 16 : 0)) - m2;
      }
      u1 = static_cast<uint8_t>(u1 << 2);
      u2 = static_cast<uint8_t>(u2 << 2);
    }
  }
}

void DequantizeQ6_K(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    const BlockQ6_K b = LoadBlock<BlockQ6_K>(src, i);
    const float d = Fp16ToFp32(b.d);
    const uint8_t* ql = b.ql;
    const uint8_t* qh = b.qh;
    const int8_t* sc = b.scales;
    for (int half = 0; half < 2;
         ++half, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        // (d * scale) first, then times q: ggml's `d * sc[is] * q1`.
        y[l + 0] = d * sc[is + 0] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
    }
  }
}

// How to decode one type: `block_bytes` encode `block_size` elements. The
// sizes come from the structs the decoders read, so the bounds check and the
// reads cannot disagree; the test checks they equal ggml_types.cc's table.
struct Decoder {
  GgmlType type;
  int64_t block_size;
  uint64_t block_bytes;
  void (*fn)(const uint8_t* src, int64_t nb, float* y);
};

constexpr Decoder kDecoders[] = {
    {GgmlType::kF32, 1, sizeof(float), DequantizeF32},
    {GgmlType::kF16, 1, sizeof(GgmlHalf), DequantizeF16},
    {GgmlType::kBF16, 1, sizeof(uint16_t), DequantizeBf16},
    {GgmlType::kQ8_0, kQK8_0, sizeof(BlockQ8_0), DequantizeQ8_0},
    {GgmlType::kQ4_0, kQK4_0, sizeof(BlockQ4_0), DequantizeQ4_0},
    {GgmlType::kQ4_1, kQK4_1, sizeof(BlockQ4_1), DequantizeQ4_1},
    {GgmlType::kQ5_0, kQK5_0, sizeof(BlockQ5_0), DequantizeQ5_0},
    {GgmlType::kQ5_1, kQK5_1, sizeof(BlockQ5_1), DequantizeQ5_1},
    {GgmlType::kQ4_K, kQK_K, sizeof(BlockQ4_K), DequantizeQ4_K},
    {GgmlType::kQ5_K, kQK_K, sizeof(BlockQ5_K), DequantizeQ5_K},
    {GgmlType::kQ6_K, kQK_K, sizeof(BlockQ6_K), DequantizeQ6_K},
};

const Decoder* FindDecoder(GgmlType type) {
  for (const Decoder& d : kDecoders) {
    if (d.type == type) return &d;
  }
  return nullptr;
}

// The name of a type that may be an out-of-range enum value (from a cast).
std::string TypeName(GgmlType type) {
  const GgmlTypeTraits* t = FindGgmlType(static_cast<uint32_t>(type));
  if (t != nullptr) return t->name;
  return absl::StrCat("ggml type ", static_cast<uint32_t>(type));
}

}  // namespace

bool CanDequantize(GgmlType type) { return FindDecoder(type) != nullptr; }

absl::Status DequantizeRow(GgmlType type, const uint8_t* src, size_t src_bytes,
                           int64_t n, float* dst) {
  const Decoder* dec = FindDecoder(type);
  if (dec == nullptr) {
    return absl::UnimplementedError(
        absl::StrCat("dequantizing ", TypeName(type), " is not supported"));
  }
  if (n < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("negative element count ", n));
  }
  if (n % dec->block_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        n, " ", TypeName(type), " elements are not a whole number of ",
        dec->block_size, "-element blocks"));
  }
  if (n == 0) return absl::OkStatus();
  if (src == nullptr || dst == nullptr) {
    return absl::InvalidArgumentError("null source or destination");
  }
  const int64_t nb = n / dec->block_size;
  // Overflows for absurd counts (F32 rows of more than 2^62 elements).
  std::optional<uint64_t> need =
      CheckedMul(static_cast<uint64_t>(nb), dec->block_bytes);
  if (!need || *need > src_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(n, " ", TypeName(type), " elements need ",
                     need ? absl::StrCat(*need) : "more than 2^64",
                     " bytes, got ", src_bytes));
  }
  dec->fn(src, nb, dst);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> DequantizeTensor(const GgufTensor& tensor,
                                                    uint64_t max_elements) {
  if (!CanDequantize(tensor.type)) {
    return absl::UnimplementedError(
        absl::StrCat("tensor '", tensor.name, "': dequantizing ",
                     TypeName(tensor.type), " is not supported"));
  }
  uint64_t product = 1;
  for (uint64_t d : tensor.dims) {
    std::optional<uint64_t> p = CheckedMul(product, d);
    if (!p) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", tensor.name, "': element count overflows 64 bits"));
    }
    product = *p;
  }
  if (product != tensor.n_elements) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", tensor.name, "': dims hold ", product,
                     " elements but n_elements is ", tensor.n_elements));
  }
  // Also bounded by what a vector and DequantizeRow's int64_t count hold.
  const uint64_t limit =
      std::min<uint64_t>({max_elements, std::vector<float>().max_size(),
                          static_cast<uint64_t>(INT64_MAX)});
  if (tensor.n_elements > limit) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "tensor '", tensor.name, "' has ", tensor.n_elements,
        " elements, more than the ", limit, " allowed to dequantize"));
  }
  // Rows (dims[0] elements) must be whole blocks: a block never spans rows.
  const int64_t block_size = FindDecoder(tensor.type)->block_size;
  if (!tensor.dims.empty() &&
      tensor.dims[0] % static_cast<uint64_t>(block_size) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", tensor.name, "': rows of ", tensor.dims[0],
                     " ", TypeName(tensor.type), " elements are not whole ",
                     block_size, "-element blocks"));
  }
  std::vector<float> out(tensor.n_elements);
  absl::Status s =
      DequantizeRow(tensor.type, tensor.data, tensor.n_bytes,
                    static_cast<int64_t>(tensor.n_elements), out.data());
  if (!s.ok()) {
    return absl::Status(
        s.code(), absl::StrCat("tensor '", tensor.name, "': ", s.message()));
  }
  return out;
}

}  // namespace tpserve
