// llama.cpp's own tokenizer test vectors (test-tokenizer-0: vocabulary-only
// GGUF files with .inp/.out pairs, fetched from the llama-cpp-python sdist by
// scripts/fetch-test-data.sh into TPSERVE_VOCAB_DIR) through the real
// `tpserve tokenize` process, as a user runs it. No BOS, no special parsing:
// llama.cpp's test uses the same settings.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "tests/test_paths.h"

namespace tpserve {
namespace {

std::string VocabDir() {
  const char* env = std::getenv("TPSERVE_VOCAB_DIR");
  return env && *env ? env : ".cache/testdata/llama-vocab";
}

class VocabTest : public ::testing::TestWithParam<const char*> {};

TEST_P(VocabTest, EveryCaseMatchesLlamaCpp) {
  const std::string base = VocabDir() + "/ggml-vocab-" + GetParam() + ".gguf";
  const std::string inp = testing::ReadFileOrEmpty(base + ".inp");
  const std::string out = testing::ReadFileOrEmpty(base + ".out");
  ASSERT_FALSE(inp.empty() || out.empty())
      << "missing " << base << ".inp/.out: run scripts/fetch-test-data.sh";

  std::vector<std::string> cases =
      absl::StrSplit(inp, "\n__ggml_vocab_test__\n");
  if (!cases.empty() && cases.back().empty()) cases.pop_back();
  std::vector<std::string> lines = absl::StrSplit(out, '\n');
  ASSERT_GE(lines.size(), cases.size());

  const std::string input =
      ::testing::TempDir() + "/vocab_" + GetParam() + ".json";
  std::ofstream(input) << nlohmann::json(cases).dump();
  int code = 0;
  const std::string got_text = testing::RunTpserve(
      "tokenize --model " + base + " --input " + input, &code);
  ASSERT_EQ(code, 0) << got_text;
  const auto got = nlohmann::json::parse(got_text);
  ASSERT_EQ(got.size(), cases.size());
  int passed = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    std::vector<int32_t> want;
    for (absl::string_view id :
         absl::StrSplit(lines[i], ' ', absl::SkipEmpty())) {
      want.push_back(std::stoi(std::string(id)));
    }
    EXPECT_EQ(got[i].get<std::vector<int32_t>>(), want)
        << GetParam() << " case " << i << ": '" << cases[i] << "'";
    passed += got[i].get<std::vector<int32_t>>() == want;
  }
  std::printf("%s: %d/%zu cases match llama.cpp\n", GetParam(), passed,
              cases.size());
  EXPECT_GT(cases.size(), 40u);
}

INSTANTIATE_TEST_SUITE_P(LlamaCppVocabularies, VocabTest,
                         ::testing::Values("llama-spm", "llama-bpe", "gpt-2",
                                           "qwen2"));

}  // namespace
}  // namespace tpserve
