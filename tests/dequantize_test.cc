// The reference dequantizer and the fp16/bf16 helpers against llama.cpp's own
// Python implementation (gguf-py's gguf.quants): tests/golden/quant/*.json
// hold block bytes and what gguf.quants.dequantize made of them
// (scripts/make_quant_golden.py), and smollm2_rows.json rows of the default
// model. Every comparison is bit-exact, NaN payloads and signed zeros
// included: gguf-py computes each type with the same float32 operations in
// the same order as ggml's dequantize_row_* (e.g. (d * sc) * q - dmin * m for
// Q4_K), each rounded separately, and so does dequantize.cc, so no tolerance
// is needed anywhere.
#include "common/dequantize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "common/ggml_blocks.h"
#include "common/gguf.h"
#include "tests/test_paths.h"

namespace tpserve {
namespace {

using nlohmann::json;

json LoadGolden(const std::string& name) {
  std::string text = testing::ReadFileOrEmpty(testing::GoldenPath(name));
  EXPECT_FALSE(text.empty()) << "missing golden file " << name;
  return text.empty() ? json::object() : json::parse(text);
}

std::string FromBase64(const json& value) {
  std::string out;
  EXPECT_TRUE(absl::Base64Unescape(value.get<std::string>(), &out));
  return out;
}

std::vector<float> FloatsFromBase64(const json& value) {
  std::string bytes = FromBase64(value);
  EXPECT_EQ(bytes.size() % sizeof(float), 0u);
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
  return out;
}

// Bit-exact comparison that names the first differing element.
void ExpectSameBits(const std::vector<float>& got,
                    const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    uint32_t g = Fp32Bits(got[i]), w = Fp32Bits(want[i]);
    if (g != w) {
      ADD_FAILURE() << absl::StrFormat(
          "element %d: got %.9g (0x%08x), want %.9g (0x%08x)", i, got[i], g,
          want[i], w);
      return;
    }
  }
}

// sum((i + 1) * bits(v[i])) mod 2^64, as make_quant_golden.py computes it.
uint64_t BitsChecksum(const std::vector<float>& v) {
  uint64_t sum = 0;
  for (size_t i = 0; i < v.size(); ++i) sum += (i + 1) * Fp32Bits(v[i]);
  return sum;
}

GgmlType TypeByName(const std::string& name) {
  for (uint32_t id = 0; id < 64; ++id) {
    const GgmlTypeTraits* t = FindGgmlType(id);
    if (t != nullptr && name == t->name) return t->type;
  }
  ADD_FAILURE() << "unknown type " << name;
  return GgmlType::kF32;
}

// ---- Golden rows from gguf-py ----------------------------------------------

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, MatchesGgufPy) {
  const json golden = LoadGolden("quant/" + GetParam() + ".json");
  ASSERT_TRUE(golden.contains("rows"));
  const GgmlType type = TypeByName(golden["type"].get<std::string>());
  // gguf-py's size table agrees with ours.
  EXPECT_EQ(GetGgmlType(type).block_size, golden["block_size"].get<uint32_t>());
  EXPECT_EQ(GetGgmlType(type).type_size, golden["type_size"].get<uint32_t>());
  ASSERT_FALSE(golden["rows"].empty());
  for (const json& row : golden["rows"]) {
    SCOPED_TRACE(row["name"].get<std::string>());
    const std::string blocks = FromBase64(row["blocks_b64"]);
    const std::vector<float> want = FloatsFromBase64(row["expected_f32_b64"]);
    const int64_t n = row["n"].get<int64_t>();
    ASSERT_EQ(static_cast<int64_t>(want.size()), n);
    ASSERT_EQ(blocks.size(), *GgmlRowBytes(type, n));

    std::vector<float> got(n);
    const auto* src = reinterpret_cast<const uint8_t*>(blocks.data());
    ASSERT_TRUE(DequantizeRow(type, src, blocks.size(), n, got.data()).ok());
    ExpectSameBits(got, want);

    // Any source alignment works (blocks are copied out, never cast).
    std::vector<uint8_t> shifted(blocks.size() + 1);
    std::memcpy(shifted.data() + 1, blocks.data(), blocks.size());
    std::vector<float> got_unaligned(n);
    ASSERT_TRUE(DequantizeRow(type, shifted.data() + 1, blocks.size(), n,
                              got_unaligned.data())
                    .ok());
    ExpectSameBits(got_unaligned, want);

    // The encoders give the bytes numpy (F16) / gguf-py (BF16) wrote.
    if (!row.contains("input_f32_b64")) continue;
    const std::vector<float> input = FloatsFromBase64(row["input_f32_b64"]);
    ASSERT_EQ(static_cast<int64_t>(input.size()), n);
    for (int64_t i = 0; i < n; ++i) {
      uint16_t stored;
      std::memcpy(&stored, blocks.data() + 2 * i, 2);
      const uint16_t mine =
          type == GgmlType::kF16 ? Fp32ToFp16(input[i]) : Fp32ToBf16(input[i]);
      if (type == GgmlType::kF16 && std::isnan(input[i])) {
        // numpy keeps signaling NaNs signaling; we quiet them like F16C.
        EXPECT_TRUE(std::isnan(Fp16ToFp32(mine))) << i;
        EXPECT_EQ(mine & 0x8000, stored & 0x8000) << i;
      } else {
        EXPECT_EQ(mine, stored)
            << absl::StrFormat("element %d: %.9g", i, input[i]);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, GoldenTest,
                         ::testing::Values("F32", "F16", "BF16", "Q8_0", "Q4_0",
                                           "Q4_1", "Q5_0", "Q5_1", "Q4_K",
                                           "Q5_K", "Q6_K"),
                         [](const auto& info) { return info.param; });

// ---- The default model, against gguf.GGUFReader + gguf.quants --------------

TEST(DequantizeModelTest, DefaultModelRowsAndChecksums) {
  auto g = GgufFile::Open(testing::DefaultModelPath());
  ASSERT_TRUE(g.ok()) << g.status() << "\n" << testing::kModelHint;
  const json golden = LoadGolden("quant/smollm2_rows.json");
  ASSERT_TRUE(golden.contains("tensors"));
  ASSERT_EQ(golden["tensors"].size(), 3u);
  for (const json& want : golden["tensors"]) {
    const std::string name = want["name"].get<std::string>();
    SCOPED_TRACE(name);
    const GgufTensor* t = (*g)->FindTensor(name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(GgmlTypeName(t->type), want["type"].get<std::string>());
    ASSERT_EQ(t->dims, want["dims"].get<std::vector<uint64_t>>());

    auto all = DequantizeTensor(*t);
    ASSERT_TRUE(all.ok()) << all.status();
    ASSERT_EQ(all->size(), want["n_elements"].get<uint64_t>());
    EXPECT_EQ(BitsChecksum(*all), want["bits_checksum"].get<uint64_t>());

    const uint64_t cols = t->dims[0];
    const uint64_t row_bytes = *GgmlRowBytes(t->type, cols);
    for (const auto& [index, b64] : want["rows_f32_b64"].items()) {
      SCOPED_TRACE("row " + index);
      const uint64_t r = std::stoull(index);
      const std::vector<float> expected = FloatsFromBase64(b64);
      ASSERT_EQ(expected.size(), cols);
      // One row on its own, as a kernel would decode it.
      std::vector<float> row(cols);
      ASSERT_TRUE(DequantizeRow(t->type, t->data + r * row_bytes, row_bytes,
                                static_cast<int64_t>(cols), row.data())
                      .ok());
      ExpectSameBits(row, expected);
      ExpectSameBits(std::vector<float>(all->begin() + r * cols,
                                        all->begin() + (r + 1) * cols),
                     expected);
    }
  }
}

// ---- Layout facts the kernels rely on ---------------------------------------

TEST(GgmlBlocksTest, SizesMatchTypeTable) {
  struct Case {
    GgmlType type;
    size_t size;
    uint32_t block_size;
  };
  const Case cases[] = {
      {GgmlType::kQ4_0, sizeof(BlockQ4_0), kQK4_0},
      {GgmlType::kQ4_1, sizeof(BlockQ4_1), kQK4_1},
      {GgmlType::kQ5_0, sizeof(BlockQ5_0), kQK5_0},
      {GgmlType::kQ5_1, sizeof(BlockQ5_1), kQK5_1},
      {GgmlType::kQ8_0, sizeof(BlockQ8_0), kQK8_0},
      {GgmlType::kQ4_K, sizeof(BlockQ4_K), kQK_K},
      {GgmlType::kQ5_K, sizeof(BlockQ5_K), kQK_K},
      {GgmlType::kQ6_K, sizeof(BlockQ6_K), kQK_K},
      {GgmlType::kQ8_K, sizeof(BlockQ8_K), kQK_K},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(GgmlTypeName(c.type));
    EXPECT_EQ(c.size, GetGgmlType(c.type).type_size);
    EXPECT_EQ(c.block_size, GetGgmlType(c.type).block_size);
  }
}

std::vector<float> Decode(GgmlType type, const void* block, size_t bytes,
                          int64_t n) {
  std::vector<float> out(n);
  absl::Status s = DequantizeRow(type, static_cast<const uint8_t*>(block),
                                 bytes, n, out.data());
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

TEST(GgmlBlocksTest, Q4_0FirstHalfInLowNibbles) {
  BlockQ4_0 b{};
  b.d = Fp32ToFp16(2.0f);
  b.qs[0] = 0x9A;  // x[0] = lo = 10, x[16] = hi = 9.
  b.qs[15] = 0x0F;
  std::vector<float> x = Decode(GgmlType::kQ4_0, &b, sizeof(b), 32);
  EXPECT_EQ(x[0], 2.0f * (10 - 8));
  EXPECT_EQ(x[16], 2.0f * (9 - 8));
  EXPECT_EQ(x[15], 2.0f * (15 - 8));
  EXPECT_EQ(x[31], 2.0f * (0 - 8));
  EXPECT_EQ(x[1], 2.0f * -8);
}

TEST(GgmlBlocksTest, Q5_0HighBitIsBitIOfLittleEndianQh) {
  BlockQ5_0 b{};
  b.d = Fp32ToFp16(1.0f);
  b.qh[0] = 0x01;  // Weight 0.
  b.qh[2] = 0x02;  // Weight 17.
  b.qs[1] = 0x30;  // Weight 1 low bits 0, weight 17 low bits 3.
  std::vector<float> x = Decode(GgmlType::kQ5_0, &b, sizeof(b), 32);
  EXPECT_EQ(x[0], 16 - 16);
  EXPECT_EQ(x[1], 0 - 16);
  EXPECT_EQ(x[17], (16 | 3) - 16);
  EXPECT_EQ(x[16], -16);
}

TEST(GgmlBlocksTest, Q4_KScalePackingAndSubBlockPairs) {
  BlockQ4_K b{};
  b.d = Fp32ToFp16(1.0f);
  b.dmin = Fp32ToFp16(0.5f);
  // Sub-block 1: sc = 5, m = 7 (j < 4: plain 6-bit fields).
  b.scales[1] = 5;
  b.scales[5] = 7;
  // Sub-block 6: sc = 0x2A (low 4 bits in scales[10], top 2 in
  // scales[2] >> 6), m = 0x3B (low 4 in scales[10] >> 4, top 2 in
  // scales[6] >> 6).
  b.scales[10] = 0xBA;
  b.scales[2] = 0x80;
  b.scales[6] = 0xC0;
  uint8_t sc, m;
  GetScaleMinK4(6, b.scales, &sc, &m);
  EXPECT_EQ(sc, 0x2A);
  EXPECT_EQ(m, 0x3B);
  // qs[l] low nibble -> weight l (sub-block 0), high -> weight 32 + l
  // (sub-block 1); qs[96 + l] -> weights 192 + l and 224 + l (6 and 7).
  b.qs[3] = 0x40;
  b.qs[96] = 0x02;
  std::vector<float> x = Decode(GgmlType::kQ4_K, &b, sizeof(b), kQK_K);
  EXPECT_EQ(x[35], 1.0f * 5 * 4 - 0.5f * 7);
  EXPECT_EQ(x[192], 1.0f * 0x2A * 2 - 0.5f * 0x3B);
}

TEST(GgmlBlocksTest, Q6_KOrderAndScales) {
  BlockQ6_K b{};
  b.d = Fp32ToFp16(0.5f);
  for (int k = 0; k < 16; ++k) b.scales[k] = static_cast<int8_t>(k - 8);
  // Second half (h = 1), l = 20: ql[64 + 20] and ql[64 + 52], qh[32 + 20].
  b.ql[84] = 0x21;        // lo -> weight 148, hi -> weight 212.
  b.ql[116] = 0x43;       // lo -> weight 180, hi -> weight 244.
  b.qh[52] = 0b11100100;  // 2-bit fields 0, 1, 2, 3 for the four weights.
  std::vector<float> x = Decode(GgmlType::kQ6_K, &b, sizeof(b), kQK_K);
  auto want = [](int q, int scale) { return 0.5f * scale * (q - 32); };
  EXPECT_EQ(x[148], want(1 | 0 << 4, 148 / 16 - 8));
  EXPECT_EQ(x[180], want(3 | 1 << 4, 180 / 16 - 8));
  EXPECT_EQ(x[212], want(2 | 2 << 4, 212 / 16 - 8));
  EXPECT_EQ(x[244], want(4 | 3 << 4, 244 / 16 - 8));
}

// ---- Errors -----------------------------------------------------------------

TEST(DequantizeRowTest, Errors) {
  std::vector<uint8_t> src(1024);
  std::vector<float> dst(1024);
  // Not a whole number of blocks.
  absl::Status s =
      DequantizeRow(GgmlType::kQ4_1, src.data(), src.size(), 33, dst.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("Q4_1"), absl::string_view::npos) << s;
  s = DequantizeRow(GgmlType::kQ6_K, src.data(), src.size(), 128, dst.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  s = DequantizeRow(GgmlType::kQ8_0, src.data(), src.size(), -32, dst.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  // One byte short, and exactly enough.
  s = DequantizeRow(GgmlType::kQ4_K, src.data(), 2 * 144 - 1, 512, dst.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("288"), absl::string_view::npos) << s;
  EXPECT_TRUE(
      DequantizeRow(GgmlType::kQ4_K, src.data(), 288, 512, dst.data()).ok());
  s = DequantizeRow(GgmlType::kF32, src.data(), 4 * 256 - 1, 256, dst.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  // A count whose byte size overflows 64 bits.
  s = DequantizeRow(GgmlType::kF32, src.data(), src.size(),
                    std::numeric_limits<int64_t>::max(), dst.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  // Null pointers with work to do; n == 0 needs none.
  s = DequantizeRow(GgmlType::kQ8_0, nullptr, 0, 32, dst.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  s = DequantizeRow(GgmlType::kQ8_0, src.data(), src.size(), 32, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(DequantizeRow(GgmlType::kQ8_0, nullptr, 0, 0, nullptr).ok());
  // Types without a decoder name themselves; unknown ids too.
  for (GgmlType t : {GgmlType::kQ2_K, GgmlType::kQ8_K, GgmlType::kIQ4_NL,
                     GgmlType::kI32, GgmlType::kF64}) {
    s = DequantizeRow(t, src.data(), src.size(), 256, dst.data());
    EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
    EXPECT_NE(s.message().find(GgmlTypeName(t)), absl::string_view::npos) << s;
    EXPECT_FALSE(CanDequantize(t));
  }
  s = DequantizeRow(static_cast<GgmlType>(999), src.data(), src.size(), 32,
                    dst.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("999"), absl::string_view::npos) << s;
}

TEST(DequantizeTensorTest, Errors) {
  std::vector<uint8_t> data(2 * 20, 0);
  GgufTensor t;
  t.name = "w";
  t.type = GgmlType::kQ4_1;
  t.dims = {32, 2};
  t.n_elements = 64;
  t.n_bytes = data.size();
  t.data = data.data();
  auto ok = DequantizeTensor(t);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->size(), 64u);

  GgufTensor bad = t;
  bad.n_elements = 96;  // Disagrees with dims.
  EXPECT_EQ(DequantizeTensor(bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  bad = t;
  bad.n_bytes = 39;  // Short.
  EXPECT_EQ(DequantizeTensor(bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  bad = t;
  bad.dims = {16, 4};  // Rows of half a block.
  EXPECT_EQ(DequantizeTensor(bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  bad = t;
  bad.dims = {uint64_t{1} << 32, uint64_t{1} << 32, 2};  // Overflows.
  EXPECT_EQ(DequantizeTensor(bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DequantizeTensor(t, /*max_elements=*/32).status().code(),
            absl::StatusCode::kResourceExhausted);
  bad = t;
  bad.type = GgmlType::kQ3_K;
  auto s = DequantizeTensor(bad).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("Q3_K"), absl::string_view::npos) << s;
}

// ---- fp16 / bf16 ------------------------------------------------------------

TEST(HalfTest, Fp16ToFp32EdgeCases) {
  EXPECT_EQ(Fp32Bits(Fp16ToFp32(0x0000)), 0x00000000u);
  EXPECT_EQ(Fp32Bits(Fp16ToFp32(0x8000)), 0x80000000u);  // -0 keeps its sign.
  EXPECT_EQ(Fp16ToFp32(0x3C00), 1.0f);
  EXPECT_EQ(Fp16ToFp32(0xC000), -2.0f);
  EXPECT_EQ(Fp16ToFp32(0x7BFF), 65504.0f);
  EXPECT_EQ(Fp16ToFp32(0x0400), std::ldexp(1.0f, -14));  // Smallest normal.
  EXPECT_EQ(Fp16ToFp32(0x0001), std::ldexp(1.0f, -24));  // Smallest subnormal.
  EXPECT_EQ(Fp16ToFp32(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_EQ(Fp16ToFp32(0x8200), -std::ldexp(1.0f, -15));
  EXPECT_EQ(Fp16ToFp32(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(Fp16ToFp32(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(Fp32Bits(Fp16ToFp32(0x7E00)), 0x7FC00000u);  // Quiet NaN.
  EXPECT_EQ(Fp32Bits(Fp16ToFp32(0x7C01)), 0x7F802000u);  // Stays signaling.
  EXPECT_EQ(Fp32Bits(Fp16ToFp32(0xFFFF)), 0xFFFFE000u);
}

TEST(HalfTest, Fp16ToFp32AllValuesExact) {
  // Against the definition: (-1)^s * 2^(e-15) * (1 + m/1024), or
  // 2^-14 * m/1024 when e == 0.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const int e = (h >> 10) & 0x1F;
    const int m = h & 0x3FF;
    const float f = Fp16ToFp32(static_cast<uint16_t>(h));
    if (e == 0x1F) {
      EXPECT_EQ(m != 0, std::isnan(f)) << h;
      continue;
    }
    double want = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
    if (h & 0x8000) want = -want;
    ASSERT_EQ(static_cast<double>(f), want) << h;
    ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0) << h;
    // And back: every non-NaN fp16 survives the round trip.
    ASSERT_EQ(Fp32ToFp16(f), h) << h;
  }
}

TEST(HalfTest, Fp32ToFp16EdgeCases) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(Fp32ToFp16(0.0f), 0x0000);
  EXPECT_EQ(Fp32ToFp16(-0.0f), 0x8000);
  EXPECT_EQ(Fp32ToFp16(inf), 0x7C00);
  EXPECT_EQ(Fp32ToFp16(-inf), 0xFC00);
  EXPECT_EQ(Fp32ToFp16(65504.0f), 0x7BFF);
  EXPECT_EQ(Fp32ToFp16(65519.996f), 0x7BFF);  // Just below the midpoint.
  EXPECT_EQ(Fp32ToFp16(65520.0f), 0x7C00);    // Tie, to even: inf.
  EXPECT_EQ(Fp32ToFp16(-1e10f), 0xFC00);
  EXPECT_EQ(Fp32ToFp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // Tie, even.
  EXPECT_EQ(Fp32ToFp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // Up.
  EXPECT_EQ(Fp32ToFp16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(Fp32ToFp16(std::ldexp(1.0f, -25)), 0x0000);  // Tie, to even 0.
  EXPECT_EQ(Fp32ToFp16(-std::ldexp(1.0f, -25) * 1.0001f), 0x8001);
  EXPECT_EQ(Fp32ToFp16(3 * std::ldexp(1.0f, -25)), 0x0002);  // Tie, to 2.
  EXPECT_EQ(Fp32ToFp16(std::ldexp(1023.5f, -24)), 0x0400);   // To normal.
  EXPECT_EQ(Fp32ToFp16(1e-30f), 0x0000);
  EXPECT_EQ(Fp32ToFp16(-1e-40f), 0x8000);  // fp32 subnormal.
  EXPECT_EQ(Fp32ToFp16(Fp32FromBits(0x7FC00000u)), 0x7E00);
  EXPECT_EQ(Fp32ToFp16(Fp32FromBits(0xFF800001u)), 0xFE00);  // Quieted.
  EXPECT_EQ(Fp32ToFp16(Fp32FromBits(0x7FFFFFFFu)), 0x7FFF);
}

// The nearest fp16 (ties to even) by brute force, for a sweep of float32.
TEST(HalfTest, Fp32ToFp16RoundsToNearestEven) {
  for (uint64_t bits = 0; bits < (uint64_t{1} << 32); bits += 4093) {
    const float f = Fp32FromBits(static_cast<uint32_t>(bits));
    if (std::isnan(f)) continue;
    const uint16_t h = Fp32ToFp16(f);
    const double x = std::fabs(static_cast<double>(f));
    const double got = std::fabs(static_cast<double>(Fp16ToFp32(h)));
    ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0) << bits;
    // Neighbours of the result in magnitude; 65536 stands for "inf" when
    // rounding (values >= 65520 round to it).
    const uint16_t mag = h & 0x7FFF;
    if (mag == 0x7C00) {
      ASSERT_GE(x, 65520.0) << bits;
      continue;
    }
    const double up = mag == 0x7BFF ? 65536.0 : Fp16ToFp32(mag + 1);
    const double down = mag == 0 ? -1.0 : Fp16ToFp32(mag - 1);
    ASSERT_LE(std::fabs(x - got), std::fabs(x - up)) << bits;
    ASSERT_LE(std::fabs(x - got), std::fabs(x - down)) << bits;
    if (std::fabs(x - got) == std::fabs(x - up) ||
        std::fabs(x - got) == std::fabs(x - down)) {
      ASSERT_EQ(mag & 1, 0) << "tie not to even: " << bits;
    }
  }
}

TEST(HalfTest, Bf16EdgeCases) {
  EXPECT_EQ(Fp32Bits(Bf16ToFp32(0x8000)), 0x80000000u);
  EXPECT_EQ(Bf16ToFp32(0x3F80), 1.0f);
  EXPECT_EQ(Bf16ToFp32(0x0001), Fp32FromBits(0x00010000u));  // Subnormal.
  EXPECT_EQ(Bf16ToFp32(0xFF80), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(Fp32Bits(Bf16ToFp32(0x7F81)), 0x7F810000u);  // Signaling kept.
  EXPECT_EQ(Fp32ToBf16(-0.0f), 0x8000);
  EXPECT_EQ(Fp32ToBf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);      // Tie, even.
  EXPECT_EQ(Fp32ToBf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);  // Up.
  EXPECT_EQ(Fp32ToBf16(Fp32FromBits(0x00018000u)), 0x0002);  // Subnormal tie.
  EXPECT_EQ(Fp32ToBf16(std::numeric_limits<float>::max()), 0x7F80);  // inf
  EXPECT_EQ(Fp32ToBf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_EQ(Fp32ToBf16(Fp32FromBits(0x7F800001u)), 0x7FC0);  // Quieted.
  EXPECT_EQ(Fp32ToBf16(Fp32FromBits(0xFFC12345u)), 0xFFC1);
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = Bf16ToFp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(Fp32ToBf16(f), h) << h;
  }
}

}  // namespace
}  // namespace tpserve
