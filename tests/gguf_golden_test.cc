// The GGUF reader against llama.cpp's own Python reader (the `gguf`
// package): every metadata value, tensor shape, type, offset and data bytes
// of a tiny file written by gguf.GGUFWriter and of the default model match
// what tests/golden/*.json recorded (scripts/make_golden.py makes them).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "common/gguf.h"
#include "tests/test_paths.h"

namespace tpserve {
namespace {

using nlohmann::json;

uint64_t Fnv1a64(const std::string& bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

void ExpectMatchesGolden(const GgufFile& g, const json& golden) {
  EXPECT_EQ(g.version(), golden["version"].get<uint32_t>());
  EXPECT_EQ(g.alignment(), golden["alignment"].get<uint64_t>());
  EXPECT_EQ(g.data_offset(), golden["data_offset"].get<uint64_t>());
  EXPECT_EQ(g.file_size(), golden["file_size"].get<uint64_t>());

  ASSERT_EQ(g.metadata().size(), golden["metadata"].size());
  for (const auto& [key, want] : golden["metadata"].items()) {
    SCOPED_TRACE(key);
    const GgufKv* kv = g.FindKey(key);
    ASSERT_NE(kv, nullptr);
    EXPECT_EQ(absl::AsciiStrToUpper(GgufTypeName(kv->type)),
              want["type"].get<std::string>());
    if (kv->type == GgufType::kArray) {
      EXPECT_EQ(absl::AsciiStrToUpper(GgufTypeName(kv->elem_type)),
                want["elem_type"].get<std::string>());
      EXPECT_EQ(kv->count, want["count"].get<uint64_t>());
      if (kv->elem_type == GgufType::kString) {
        std::string blob;
        for (absl::string_view s : kv->strings) {
          uint64_t n = s.size();
          blob.append(reinterpret_cast<const char*>(&n), 8);
          blob.append(s.data(), s.size());
        }
        EXPECT_EQ(absl::StrFormat("%016x", Fnv1a64(blob)),
                  want["fnv1a64"].get<std::string>());
        for (size_t i = 0; i < want["head"].size(); ++i) {
          EXPECT_EQ(kv->strings[i], want["head"][i].get<std::string>());
        }
      } else {
        auto values = g.GetFloatArray(key);
        ASSERT_TRUE(values.ok()) << values.status();
        double sum = 0, weighted = 0;
        for (size_t i = 0; i < values->size(); ++i) {
          sum += (*values)[i];
          weighted += i * (*values)[i];
        }
        EXPECT_DOUBLE_EQ(sum, want["sum"].get<double>());
        EXPECT_DOUBLE_EQ(weighted, want["weighted_sum"].get<double>());
      }
    } else if (kv->type == GgufType::kString) {
      EXPECT_EQ(*g.GetString(key), want["value"].get<std::string>());
    } else if (kv->type == GgufType::kBool) {
      EXPECT_EQ(*g.GetBool(key), want["value"].get<bool>());
    } else {
      EXPECT_EQ(*g.GetFloat(key), want["value"].get<double>());
    }
  }

  ASSERT_EQ(g.tensors().size(), golden["tensors"].size());
  for (size_t i = 0; i < g.tensors().size(); ++i) {
    const GgufTensor& t = g.tensors()[i];
    const json& want = golden["tensors"][i];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.name, want["name"].get<std::string>());
    EXPECT_EQ(t.dims, want["dims"].get<std::vector<uint64_t>>());
    EXPECT_EQ(GgmlTypeName(t.type), want["type"].get<std::string>());
    EXPECT_EQ(t.offset, want["offset"].get<uint64_t>());
    EXPECT_EQ(t.n_bytes, want["n_bytes"].get<uint64_t>());
    const char* p = reinterpret_cast<const char*>(t.data);
    EXPECT_EQ(absl::BytesToHexString(absl::string_view(p, 16)),
              want["head_hex"].get<std::string>());
    EXPECT_EQ(absl::BytesToHexString(absl::string_view(p + t.n_bytes - 16, 16)),
              want["tail_hex"].get<std::string>());
    uint64_t byte_sum = 0;
    for (uint64_t b = 0; b < t.n_bytes; ++b) byte_sum += t.data[b];
    EXPECT_EQ(byte_sum, want["byte_sum"].get<uint64_t>());
  }
}

json LoadGolden(const std::string& name) {
  std::string text = testing::ReadFileOrEmpty(testing::GoldenPath(name));
  EXPECT_FALSE(text.empty()) << "missing golden file " << name;
  return json::parse(text);
}

TEST(GgufGoldenTest, TinyFileWrittenByGgufPackage) {
  auto g = GgufFile::Open(testing::GoldenPath("tiny_llama.gguf"));
  ASSERT_TRUE(g.ok()) << g.status();
  ExpectMatchesGolden(**g, LoadGolden("tiny_llama.json"));
  // Spot-check decoded values of each type against what the writer wrote.
  EXPECT_EQ(*(*g)->GetUint("test.u8"), 200u);
  EXPECT_EQ(*(*g)->GetInt("test.i64"), -(1ll << 40));
  EXPECT_EQ(*(*g)->GetString("test.string"), "héllo wörld ✓");
}

TEST(GgufGoldenTest, DefaultModel) {
  auto g = GgufFile::Open(testing::DefaultModelPath());
  ASSERT_TRUE(g.ok()) << g.status() << "\n" << testing::kModelHint;
  ExpectMatchesGolden(**g, LoadGolden("smollm2_q4_1.json"));
}

}  // namespace
}  // namespace tpserve
