// The safetensors reader against Hugging Face's own `safetensors` package
// (tests/golden/hf_tiny.json records what it reads from the golden shards),
// and against crafted files: each must fail with an error naming the field.
#include "common/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "tests/safetensors_builder.h"
#include "tests/test_paths.h"

namespace tpserve {
namespace {

using nlohmann::json;
using testing::BuildSafetensors;
using ::testing::HasSubstr;
using testing::RawSafetensors;
using testing::StTensor;

uint64_t Fnv1a64(const uint8_t* p, uint64_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint64_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

// Element i of an F32/F16/BF16 tensor, decoded here independently of the
// engine (memcpy: safetensors data is not aligned).
double Element(const SafetensorsTensor& t, uint64_t i) {
  if (t.dtype == SafetensorsDtype::kF32) {
    float f;
    std::memcpy(&f, t.data + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, t.data + 2 * i, 2);
  if (t.dtype == SafetensorsDtype::kBF16) {
    uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  const int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  if (exp == 0) return sign * std::ldexp(mant, -24);
  if (exp == 31) return mant ? NAN : sign * INFINITY;
  return sign * std::ldexp(1024 + mant, exp - 25);
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> Parse(
    const std::vector<uint8_t>& bytes) {
  return SafetensorsFile::Parse(absl::MakeConstSpan(bytes));
}

TEST(SafetensorsTest, GoldenShardsMatchTheSafetensorsPackage) {
  const json golden = json::parse(
      testing::ReadFileOrEmpty(testing::GoldenPath("hf_tiny.json")));
  ASSERT_EQ(golden["shards"].size(), 2u);
  for (const auto& [shard, want] : golden["shards"].items()) {
    SCOPED_TRACE(shard);
    auto f = SafetensorsFile::Open(testing::GoldenPath("hf_tiny/" + shard));
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ((*f)->header_size(), want["header_size"].get<uint64_t>());
    EXPECT_EQ((*f)->file_size(), want["file_size"].get<uint64_t>());
    EXPECT_EQ((*f)->metadata(),
              (want["metadata"].get<std::map<std::string, std::string>>()));
    ASSERT_EQ((*f)->tensors().size(), want["tensors"].size());
    uint64_t end = 0;
    for (const SafetensorsTensor& t : (*f)->tensors()) {
      EXPECT_EQ(t.begin, end) << "tensors are in data order";
      end = t.end;
    }
    for (const json& w : want["tensors"]) {
      const std::string name = w["name"].get<std::string>();
      SCOPED_TRACE(name);
      const SafetensorsTensor* t = (*f)->FindTensor(name);
      ASSERT_NE(t, nullptr);
      EXPECT_EQ(SafetensorsDtypeName(t->dtype), w["dtype"].get<std::string>());
      EXPECT_EQ(t->shape, w["shape"].get<std::vector<uint64_t>>());
      EXPECT_EQ(t->n_bytes(), w["n_bytes"].get<uint64_t>());
      EXPECT_EQ(absl::StrFormat("%016x", Fnv1a64(t->data, t->n_bytes())),
                w["fnv1a64"].get<std::string>());
      const auto head = w["head"].get<std::vector<double>>();
      for (size_t i = 0; i < head.size(); ++i) {
        EXPECT_EQ(Element(*t, i), head[i]) << i;
      }
      EXPECT_EQ(Element(*t, t->n_elements - 1), w["last"].get<double>());
      double sum = 0;
      for (uint64_t i = 0; i < t->n_elements; ++i) sum += Element(*t, i);
      EXPECT_NEAR(sum, w["sum"].get<double>(), 1e-9);
      EXPECT_TRUE(GgmlTypeOfSafetensor(*t).ok());
    }
  }
}

TEST(SafetensorsTest, SeedFilesFromThePackage) {
  auto f = SafetensorsFile::Open(
      "tests/fuzz/corpus/safetensors/scalar_and_empty.safetensors");
  ASSERT_TRUE(f.ok()) << f.status();
  const SafetensorsTensor* scalar = (*f)->FindTensor("scalar");
  ASSERT_NE(scalar, nullptr);
  EXPECT_TRUE(scalar->shape.empty());
  EXPECT_EQ(scalar->n_elements, 1u);
  EXPECT_EQ(Element(*scalar, 0), 3.0);
  const SafetensorsTensor* empty = (*f)->FindTensor("empty");
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->shape, (std::vector<uint64_t>{0, 4}));
  EXPECT_EQ(empty->n_bytes(), 0u);
  const SafetensorsTensor* ints = (*f)->FindTensor("ints");
  ASSERT_NE(ints, nullptr);
  auto type = GgmlTypeOfSafetensor(*ints);
  EXPECT_EQ(type.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(type.status().message()),
              HasSubstr("tensor 'ints' has dtype I64"));
}

TEST(SafetensorsTest, BuilderFileRoundTrips) {
  auto f = Parse(BuildSafetensors({{"a", "F32", {2, 3}, ""},
                                   {"b", "BF16", {5}, ""},
                                   {"c", "F4", {2}, "\x12"}},
                                  {{"format", "pt"}}));
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ((*f)->tensors().size(), 3u);
  EXPECT_EQ((*f)->FindTensor("a")->n_bytes(), 24u);
  EXPECT_EQ((*f)->FindTensor("b")->begin, 24u);
  EXPECT_EQ((*f)->FindTensor("c")->n_bytes(), 1u);  // Two 4-bit values.
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
  EXPECT_EQ((*f)->FindTensor("missing"), nullptr);
  // Empty file body: no tensors, no data.
  auto empty = Parse(RawSafetensors("{}", 0));
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE((*empty)->tensors().empty());
}

struct BadCase {
  const char* what;
  std::vector<uint8_t> bytes;
  const char* error;
};

std::vector<uint8_t> WithHeaderLength(std::vector<uint8_t> bytes, uint64_t n) {
  std::memcpy(bytes.data(), &n, 8);
  return bytes;
}

std::vector<uint8_t> Header(const std::string& entries, size_t data = 0) {
  return RawSafetensors("{" + entries + "}", data);
}

TEST(SafetensorsTest, RefusesCraftedFilesWithClearErrors) {
  const std::vector<uint8_t> valid =
      BuildSafetensors({{"w", "F32", {2}, ""}, {"v", "F16", {2}, ""}});
  const std::string deep = std::string(40, '[') + std::string(40, ']');
  const std::vector<BadCase> cases = {
      {"too short", {1, 2, 3}, "too short for the 8-byte header length"},
      {"header longer than file", WithHeaderLength(valid, 1000),
       "header length 1000 is larger than the rest of the file"},
      {"header over the cap", WithHeaderLength(valid, 100'000'001),
       "header length 100000001 exceeds the limit of 100000000 bytes"},
      {"invalid JSON", RawSafetensors("{\"w\": {", 0), "invalid JSON at byte"},
      {"not an object", RawSafetensors("[1, 2]", 0),
       "header is an array, expected a JSON object"},
      {"entry not an object", Header("\"w\": 5"),
       "tensor 'w' is an integer, expected an object"},
      {"missing dtype",
       Header(R"("w": {"shape": [1], "data_offsets": [0, 4]})", 4),
       "tensor 'w' has no 'dtype'"},
      {"missing shape",
       Header(R"("w": {"dtype": "F32", "data_offsets": [0, 4]})", 4),
       "tensor 'w' has no 'shape'"},
      {"unknown dtype",
       Header(R"("w": {"dtype": "F128", "shape": [1], "data_offsets": [0, 4]})",
              4),
       "tensor 'w' has unknown dtype 'F128'"},
      {"dtype not a string",
       Header(R"("w": {"dtype": 7, "shape": [1], "data_offsets": [0, 4]})", 4),
       "tensor 'w' field 'dtype' is an integer, expected a string"},
      {"shape not an array",
       Header(R"("w": {"dtype": "F32", "shape": 1, "data_offsets": [0, 4]})",
              4),
       "tensor 'w' field 'shape' is an integer, expected an array"},
      {"negative dim",
       Header(R"("w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]})",
              4),
       "tensor 'w' shape[0] = -1 is negative"},
      {"fractional dim",
       Header(
           R"("w": {"dtype": "F32", "shape": [1, 1.5], "data_offsets": [0, 4]})",
           4),
       "tensor 'w' shape[1] is a floating-point number"},
      {"too many dims",
       Header(R"("w": {"dtype": "F32", "shape": [1,1,1,1,1,1,1,1,1],
                "data_offsets": [0, 4]})",
              4),
       "tensor 'w' has 9 dimensions; the limit is 8"},
      {"shape/offset mismatch",
       Header(R"("w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]})",
              8),
       "tensor 'w' data_offsets [0, 8] hold 8 bytes, but shape [3] of F32 "
       "needs 12"},
      {"element count overflow",
       Header(R"("w": {"dtype": "F32", "shape": [1099511627776,
                1099511627776], "data_offsets": [0, 4]})",
              4),
       "tensor 'w' shape[1] = 1099511627776 makes the element count overflow"},
      {"byte size overflow",
       Header(R"("w": {"dtype": "F32", "shape": [4611686018427387904],
                "data_offsets": [0, 4]})",
              4),
       "overflows its byte size"},
      {"dim beyond uint64",
       Header(R"("w": {"dtype": "F32", "shape": [18446744073709551616],
                "data_offsets": [0, 4]})",
              4),
       "tensor 'w' shape[0] is a floating-point number"},
      {"partial byte",
       Header(R"("w": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]})",
              2),
       "is not a whole number of bytes"},
      {"offsets not a pair",
       Header(R"("w": {"dtype": "F32", "shape": [1], "data_offsets": [0]})", 4),
       "field 'data_offsets' is an array of the wrong length"},
      {"negative offset",
       Header(R"("w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]})",
              4),
       "tensor 'w' data_offsets[0] = -4 is negative"},
      {"end before begin",
       Header(R"("w": {"dtype": "F32", "shape": [0], "data_offsets": [4, 0]})",
              4),
       "data_offsets [4, 0] end before they begin"},
      {"offsets past the end",
       Header(R"("w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})",
              4),
       "tensor 'w' data_offsets [0, 8] go past the end of the data buffer (4 "
       "bytes)"},
      {"overlap",
       Header(R"("a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                 "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]})",
              8),
       "tensor 'b' data_offsets [4, 8] overlap tensor 'a'"},
      {"same offsets",
       Header(R"("a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                 "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]})",
              4),
       "overlap tensor"},
      {"gap",
       Header(R"("a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                 "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]})",
              12),
       "tensor 'b' data_offsets [8, 12] leave a gap after tensor 'a'"},
      {"not starting at 0",
       Header(R"("a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]})",
              8),
       "leave a gap after the start of the data buffer"},
      {"trailing bytes",
       Header(R"("a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]})",
              6),
       "the data buffer is 6 bytes but its tensors cover only 4"},
      {"data but no tensors", Header("", 4), "cover only 0"},
      {"duplicate tensor",
       Header(R"("a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                 "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]})",
              8),
       "duplicate key 'a'"},
      {"duplicate field",
       Header(R"("a": {"dtype": "F32", "dtype": "F16", "shape": [1],
                 "data_offsets": [0, 4]})",
              4),
       "duplicate key 'dtype'"},
      {"metadata not an object", Header(R"("__metadata__": [1])"),
       "'__metadata__' is an array, expected an object of strings"},
      {"metadata value not a string", Header(R"("__metadata__": {"x": 1})"),
       "'__metadata__' value 'x' is an integer, expected a string"},
      {"deep nesting", Header("\"x\": " + deep), "nesting is deeper than 16"},
      {"invalid UTF-8 in a name", Header("\"\xff\": 1"), "invalid JSON"},
      {"NUL in the header", RawSafetensors(std::string("{\0}", 3), 0),
       "invalid JSON"},
      {"number overflow", Header(R"("x": 1e999)"), "invalid JSON"},
  };
  for (const BadCase& c : cases) {
    auto f = Parse(c.bytes);
    ASSERT_FALSE(f.ok()) << c.what;
    EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(std::string(f.status().message()), HasSubstr(c.error))
        << c.what;
    EXPECT_THAT(std::string(f.status().message()), HasSubstr("safetensors:"))
        << c.what;
  }
}

TEST(SafetensorsTest, EveryTruncationFailsCleanly) {
  for (const char* path :
       {"tests/fuzz/corpus/safetensors/three_dtypes.safetensors",
        "tests/golden/hf_tiny/model-00002-of-00002.safetensors"}) {
    const std::string text = testing::ReadFileOrEmpty(path);
    ASSERT_FALSE(text.empty()) << path;
    const std::vector<uint8_t> bytes(text.begin(), text.end());
    ASSERT_TRUE(Parse(bytes).ok()) << path;
    // Every prefix of the small file; of the large one, every prefix through
    // the header and a sample of the data.
    for (size_t n = 0; n < bytes.size(); n += (n < 2048 ? 1 : 997)) {
      auto f = SafetensorsFile::Parse(absl::MakeConstSpan(bytes.data(), n));
      EXPECT_FALSE(f.ok()) << path << " prefix " << n;
    }
  }
}

TEST(SafetensorsTest, LimitsAreConfigurable) {
  SafetensorsLimits limits;
  limits.max_tensors = 1;
  auto f = SafetensorsFile::Parse(
      absl::MakeConstSpan(BuildSafetensors({{"a", "F32", {1}, ""},
                                            {"b", "F32", {1}, ""},
                                            {"c", "F32", {1}, ""}})),
      limits);
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(std::string(f.status().message()),
              HasSubstr("the limit is 1 tensors"));
}

TEST(SafetensorsTest, OpenNamesThePath) {
  auto f = SafetensorsFile::Open("tests/golden/no_such.safetensors");
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(f.status().message()),
              HasSubstr("tests/golden/no_such.safetensors"));
  auto g = SafetensorsFile::Open(testing::GoldenPath("hf_tiny/config.json"));
  ASSERT_FALSE(g.ok());
  EXPECT_THAT(std::string(g.status().message()),
              HasSubstr("hf_tiny/config.json: safetensors: header length"));
}

}  // namespace
}  // namespace tpserve
