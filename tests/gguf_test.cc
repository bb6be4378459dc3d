// GGUF reader: valid files of every value type parse to the right values;
// every malformed header named in llama.cpp's loader history is refused with
// a message naming the field, never a crash (ASan/UBSan run these too).
#include "common/gguf.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/gguf_builder.h"

namespace tpserve {
namespace {

using testing::GgufBuilder;
using ::testing::HasSubstr;

// The parsed file points into `bytes`, which must outlive it: temporaries
// are refused at compile time.
absl::StatusOr<std::unique_ptr<GgufFile>> ParseBytes(
    const std::vector<uint8_t>& bytes, const GgufLimits& limits = {}) {
  return GgufFile::Parse(absl::MakeConstSpan(bytes), limits);
}
absl::StatusOr<std::unique_ptr<GgufFile>> ParseBytes(
    std::vector<uint8_t>&& bytes, const GgufLimits& limits = {}) = delete;

std::string ErrorOf(const std::vector<uint8_t>& bytes) {
  auto f = ParseBytes(bytes);
  EXPECT_FALSE(f.ok());
  return f.ok() ? "" : std::string(f.status().message());
}

TEST(GgufTest, ParsesEveryScalarTypeAndArrays) {
  GgufBuilder b;
  uint8_t u8 = 200;
  int8_t i8 = -5;
  uint16_t u16 = 65000;
  int16_t i16 = -300;
  uint64_t u64 = 1ull << 40;
  int64_t i64 = -(1ll << 40);
  double f64 = 2.5;
  auto raw = [](const std::string& key, GgufType t, const void* v, size_t n) {
    std::vector<uint8_t> out;
    GgufBuilder::Str(out, key);
    GgufBuilder::Put<uint32_t>(out, static_cast<uint32_t>(t));
    const uint8_t* p = static_cast<const uint8_t*>(v);
    out.insert(out.end(), p, p + n);
    return out;
  };
  b.RawKv(raw("u8", GgufType::kUint8, &u8, 1), 1)
      .RawKv(raw("i8", GgufType::kInt8, &i8, 1), 1)
      .RawKv(raw("u16", GgufType::kUint16, &u16, 2), 1)
      .RawKv(raw("i16", GgufType::kInt16, &i16, 2), 1)
      .Uint32("u32", 4000000000u)
      .Int32("i32", -7)
      .Float32("f32", 0.5f)
      .Bool("yes", true)
      .String("s", "hello")
      .RawKv(raw("u64", GgufType::kUint64, &u64, 8), 1)
      .RawKv(raw("i64", GgufType::kInt64, &i64, 8), 1)
      .RawKv(raw("f64", GgufType::kFloat64, &f64, 8), 1)
      .StringArray("strs", {"a", "", "ccc"})
      .Int32Array("ints", {1, -2, 3});
  const std::vector<uint8_t> bytes = b.Build();
  auto f = ParseBytes(bytes);
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(*g.GetUint("u8"), 200u);
  EXPECT_EQ(*g.GetInt("i8"), -5);
  EXPECT_EQ(*g.GetUint("u16"), 65000u);
  EXPECT_EQ(*g.GetInt("i16"), -300);
  EXPECT_EQ(*g.GetUint("u32"), 4000000000u);
  EXPECT_EQ(*g.GetInt("i32"), -7);
  EXPECT_EQ(*g.GetFloat("f32"), 0.5);
  EXPECT_TRUE(*g.GetBool("yes"));
  EXPECT_EQ(*g.GetString("s"), "hello");
  EXPECT_EQ(*g.GetUint("u64"), 1ull << 40);
  EXPECT_EQ(*g.GetInt("i64"), -(1ll << 40));
  EXPECT_EQ(*g.GetFloat("f64"), 2.5);
  auto strs = g.GetStringArray("strs");
  ASSERT_TRUE(strs.ok());
  EXPECT_THAT(*strs, ::testing::ElementsAre("a", "", "ccc"));
  EXPECT_THAT(*g.GetIntArray("ints"), ::testing::ElementsAre(1, -2, 3));
  EXPECT_THAT(*g.GetFloatArray("ints"), ::testing::ElementsAre(1.0, -2.0, 3.0));
  // Integers widen across types; floats are accepted as floats only.
  EXPECT_EQ(*g.GetFloat("u32"), 4000000000.0);
  EXPECT_EQ(GgufFile::FormatValue(*g.FindKey("strs")),
            "[\"a\", \"\", \"ccc\"]");
}

TEST(GgufTest, AccessorsNameTheKeyOnWrongTypeOrMissing) {
  const auto bytes = GgufBuilder().Int32("neg", -1).String("s", "x").Build();
  auto f = ParseBytes(bytes);
  ASSERT_TRUE(f.ok());
  EXPECT_THAT(std::string((*f)->GetUint("neg").status().message()),
              HasSubstr("'neg' is negative"));
  EXPECT_THAT(std::string((*f)->GetInt("s").status().message()),
              HasSubstr("'s' is string"));
  EXPECT_EQ((*f)->GetBool("missing").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string((*f)->GetStringArray("s").status().message()),
              HasSubstr("expected array of string"));
}

TEST(GgufTest, TensorsPointIntoAlignedData) {
  for (uint32_t version : {2u, 3u}) {
    for (uint32_t align : {32u, 64u, 8u}) {
      GgufBuilder b(version);
      b.Alignment(align).TensorF32("a", {3}).TensorF32("b", {4, 2});
      std::vector<uint8_t> bytes = b.Build();
      auto f = ParseBytes(bytes);
      ASSERT_TRUE(f.ok()) << f.status();
      EXPECT_EQ((*f)->alignment(), align);
      EXPECT_EQ((*f)->data_offset() % align, 0u);
      const GgufTensor* t = (*f)->FindTensor("b");
      ASSERT_NE(t, nullptr);
      EXPECT_EQ(t->n_elements, 8u);
      EXPECT_EQ(t->n_bytes, 32u);
      EXPECT_EQ(t->dims, (std::vector<uint64_t>{4, 2}));
      float v;
      std::memcpy(&v, t->data + 7 * 4, 4);
      EXPECT_EQ(v, 7.f);
      EXPECT_EQ(t->data, bytes.data() + (*f)->data_offset() + t->offset);
    }
  }
}

TEST(GgufTest, QuantizedTensorSizesFollowTheBlockLayout) {
  // 64 Q4_1 weights = 2 blocks of 20 bytes; 256 Q6_K = 1 block of 210.
  GgufBuilder b;
  b.Tensor("q41", {64, 1}, GgmlType::kQ4_1, std::vector<uint8_t>(40))
      .Tensor("q6k", {256}, GgmlType::kQ6_K, std::vector<uint8_t>(210));
  const std::vector<uint8_t> bytes = b.Build();
  auto f = ParseBytes(bytes);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->FindTensor("q41")->n_bytes, 40u);
  EXPECT_EQ((*f)->FindTensor("q6k")->n_bytes, 210u);
}

TEST(GgufTest, RefusesBadMagicVersionsAndEndianness) {
  std::vector<uint8_t> good = GgufBuilder().Build();
  auto bad = good;
  bad[0] = 'X';
  EXPECT_THAT(ErrorOf(bad), HasSubstr("bad magic"));
  EXPECT_THAT(ErrorOf(GgufBuilder(1).Build()), HasSubstr("version 1"));
  EXPECT_THAT(ErrorOf(GgufBuilder(7).Build()),
              HasSubstr("unsupported version 7"));
  EXPECT_THAT(ErrorOf(GgufBuilder(0x03000000).Build()),
              HasSubstr("big-endian"));
  EXPECT_THAT(ErrorOf({'G', 'G'}), HasSubstr("truncated reading magic"));
}

TEST(GgufTest, RefusesHugeStringLength) {
  std::vector<uint8_t> kv;
  GgufBuilder::Put<uint64_t>(kv, ~0ull);  // Key length 2^64-1.
  kv.resize(kv.size() +
            16);  // Enough bytes that the count itself is plausible.
  EXPECT_THAT(ErrorOf(GgufBuilder().RawKv(kv, 1).Build()),
              HasSubstr("metadata #0 key is 18446744073709551615 bytes"));
  std::vector<uint8_t> kv2;
  GgufBuilder::Str(kv2, "k");
  GgufBuilder::Put<uint32_t>(kv2, 8);
  GgufBuilder::Put<uint64_t>(kv2, 1000);  // String value longer than the file.
  EXPECT_THAT(ErrorOf(GgufBuilder().RawKv(kv2, 1).Build()),
              HasSubstr("truncated reading metadata 'k'"));
}

TEST(GgufTest, RefusesImpossibleArrays) {
  std::vector<uint8_t> kv;
  GgufBuilder::Str(kv, "arr");
  GgufBuilder::Put<uint32_t>(kv, 9);           // array
  GgufBuilder::Put<uint32_t>(kv, 8);           // of string
  GgufBuilder::Put<uint64_t>(kv, 1ull << 24);  // far more than the file holds
  EXPECT_THAT(ErrorOf(GgufBuilder().RawKv(kv, 1).Build()),
              HasSubstr("claims 16777216 strings"));

  std::vector<uint8_t> kv2;
  GgufBuilder::Str(kv2, "arr");
  GgufBuilder::Put<uint32_t>(kv2, 9);
  GgufBuilder::Put<uint32_t>(kv2, 12);          // float64
  GgufBuilder::Put<uint64_t>(kv2, 1ull << 61);  // count * 8 overflows
  GgufLimits unlimited;
  unlimited.max_array_elements = ~0ull;
  const auto overflow_bytes = GgufBuilder().RawKv(kv2, 1).Build();
  auto overflow = ParseBytes(overflow_bytes, unlimited);
  EXPECT_THAT(std::string(overflow.status().message()),
              HasSubstr("array size overflows"));
  EXPECT_THAT(ErrorOf(GgufBuilder().RawKv(kv2, 1).Build()),
              HasSubstr("the limit is 67108864"));

  std::vector<uint8_t> kv3;
  GgufBuilder::Str(kv3, "nested");
  GgufBuilder::Put<uint32_t>(kv3, 9);
  GgufBuilder::Put<uint32_t>(kv3, 9);
  EXPECT_THAT(ErrorOf(GgufBuilder().RawKv(kv3, 1).Build()),
              HasSubstr("array of arrays"));

  std::vector<uint8_t> kv4;
  GgufBuilder::Str(kv4, "weird");
  GgufBuilder::Put<uint32_t>(kv4, 9);
  GgufBuilder::Put<uint32_t>(kv4, 77);
  EXPECT_THAT(ErrorOf(GgufBuilder().RawKv(kv4, 1).Build()),
              HasSubstr("unknown array element type 77"));

  GgufLimits small;
  small.max_array_elements = 2;
  const auto array_bytes = GgufBuilder().Int32Array("a", {1, 2, 3}).Build();
  auto f = ParseBytes(array_bytes, small);
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("the limit is 2"));
}

TEST(GgufTest, RefusesUnknownValueTypeAndDuplicates) {
  std::vector<uint8_t> kv;
  GgufBuilder::Str(kv, "k");
  GgufBuilder::Put<uint32_t>(kv, 13);
  EXPECT_THAT(ErrorOf(GgufBuilder().RawKv(kv, 1).Build()),
              HasSubstr("unknown value type 13"));
  EXPECT_THAT(ErrorOf(GgufBuilder().Uint32("k", 1).Uint32("k", 2).Build()),
              HasSubstr("duplicate metadata key 'k'"));
  EXPECT_THAT(
      ErrorOf(GgufBuilder().TensorF32("t", {1}).TensorF32("t", {1}).Build()),
      HasSubstr("duplicate tensor name 't'"));
}

TEST(GgufTest, RefusesBadCountsAndAlignment) {
  std::vector<uint8_t> bytes = GgufBuilder().Build();
  uint64_t huge = 1ull << 40;
  std::memcpy(&bytes[8], &huge, 8);  // tensor count
  EXPECT_THAT(ErrorOf(bytes), HasSubstr("tensor count"));
  bytes = GgufBuilder().Build();
  uint64_t many = 5000;
  std::memcpy(&bytes[16], &many, 8);  // kv count beyond what 24 bytes hold
  EXPECT_THAT(ErrorOf(bytes), HasSubstr("more than the file can hold"));
  EXPECT_THAT(ErrorOf(GgufBuilder().Uint32("general.alignment", 48).Build()),
              HasSubstr("not a power of two"));
  EXPECT_THAT(ErrorOf(GgufBuilder().Uint32("general.alignment", 0).Build()),
              HasSubstr("not a power of two"));
  EXPECT_THAT(ErrorOf(GgufBuilder().String("general.alignment", "x").Build()),
              HasSubstr("expected uint32"));
}

// A valid single-tensor file whose tensor-info fields the caller patches.
std::vector<uint8_t> OneTensorFile(uint32_t n_dims,
                                   const std::vector<uint64_t>& dims,
                                   uint32_t type, uint64_t offset,
                                   size_t data_bytes) {
  std::vector<uint8_t> out{'G', 'G', 'U', 'F'};
  GgufBuilder::Put<uint32_t>(out, 3);
  GgufBuilder::Put<uint64_t>(out, 1);
  GgufBuilder::Put<uint64_t>(out, 0);
  GgufBuilder::Str(out, "w");
  GgufBuilder::Put<uint32_t>(out, n_dims);
  for (uint64_t d : dims) GgufBuilder::Put<uint64_t>(out, d);
  GgufBuilder::Put<uint32_t>(out, type);
  GgufBuilder::Put<uint64_t>(out, offset);
  while (out.size() % 32 != 0) out.push_back(0);
  out.resize(out.size() + data_bytes);
  return out;
}

TEST(GgufTest, RefusesBadTensorInfo) {
  const auto valid = OneTensorFile(1, {4}, 0, 0, 16);
  EXPECT_TRUE(ParseBytes(valid).ok());
  EXPECT_THAT(ErrorOf(OneTensorFile(0, {}, 0, 0, 16)),
              HasSubstr("0 dimensions"));
  EXPECT_THAT(ErrorOf(OneTensorFile(5, {1, 1, 1, 1, 1}, 0, 0, 16)),
              HasSubstr("5 dimensions"));
  EXPECT_THAT(ErrorOf(OneTensorFile(1, {0}, 0, 0, 16)),
              HasSubstr("is zero or makes the element count overflow"));
  EXPECT_THAT(ErrorOf(OneTensorFile(2, {1ull << 32, 1ull << 32}, 0, 0, 16)),
              HasSubstr("overflow"));
  EXPECT_THAT(ErrorOf(OneTensorFile(1, {4}, 99, 0, 16)),
              HasSubstr("unknown ggml type 99"));
  EXPECT_THAT(ErrorOf(OneTensorFile(1, {33}, 8, 0, 64)),  // Q8_0: 32/block
              HasSubstr("not a whole number of 32-element blocks"));
  EXPECT_THAT(ErrorOf(OneTensorFile(1, {4}, 0, 32, 16)),
              HasSubstr("extends past the end of the file"));
  EXPECT_THAT(ErrorOf(OneTensorFile(1, {4}, 0, ~0ull - 31, 16)),
              HasSubstr("extends past the end"));
  EXPECT_THAT(ErrorOf(OneTensorFile(1, {4}, 0, 8, 64)),
              HasSubstr("not a multiple of the alignment"));
  // 2^61 F64 elements = 2^64 bytes: the byte size itself overflows.
  EXPECT_THAT(ErrorOf(OneTensorFile(1, {1ull << 61}, 28, 0, 16)),
              HasSubstr("overflows"));
}

TEST(GgufTest, RefusesOverlappingTensors) {
  std::vector<uint8_t> out{'G', 'G', 'U', 'F'};
  GgufBuilder::Put<uint32_t>(out, 3);
  GgufBuilder::Put<uint64_t>(out, 2);
  GgufBuilder::Put<uint64_t>(out, 0);
  for (const char* name : {"a", "b"}) {
    GgufBuilder::Str(out, name);
    GgufBuilder::Put<uint32_t>(out, 1);
    GgufBuilder::Put<uint64_t>(out, 16);  // 64 bytes of F32
    GgufBuilder::Put<uint32_t>(out, 0);
    GgufBuilder::Put<uint64_t>(out, name[0] == 'a' ? 0 : 32);
  }
  while (out.size() % 32 != 0) out.push_back(0);
  out.resize(out.size() + 128);
  EXPECT_THAT(ErrorOf(out), HasSubstr("overlap"));
}

TEST(GgufTest, EveryTruncationFailsCleanly) {
  std::vector<uint8_t> full =
      testing::TinyLlama().StringArray("x", {"ab", "c"}).Build();
  ASSERT_TRUE(ParseBytes(full).ok());
  for (size_t n = 0; n < full.size(); ++n) {
    // Copy so ASan sees reads past the prefix as overflows.
    std::vector<uint8_t> prefix(full.begin(), full.begin() + n);
    auto f = ParseBytes(prefix);
    EXPECT_FALSE(f.ok()) << "prefix of " << n << " bytes parsed";
  }
}

TEST(GgufTest, OpenReportsMissingFilesAndNonGguf) {
  auto f = GgufFile::Open("/nonexistent/model.gguf");
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(f.status().message()),
              HasSubstr("/nonexistent/model.gguf"));
  auto dir = GgufFile::Open("/");
  EXPECT_THAT(std::string(dir.status().message()),
              HasSubstr("not a regular file"));
}

}  // namespace
}  // namespace tpserve
