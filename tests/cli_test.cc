// The `tpserve` binary as a user runs it: a real process, its output and
// exit status.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/test_paths.h"

namespace tpserve {
namespace {

using ::testing::HasSubstr;

struct Result {
  int exit_code;
  std::string output;  // stdout and stderr together.
};

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

Result Tpserve(const std::string& args) {
  const char* bin = std::getenv("TPSERVE_BIN");
  std::string cmd = Quote(bin ? bin : "cli/tpserve") + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  Result run{-1, ""};
  if (p == nullptr) return run;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) run.output.append(buf, n);
  int status = pclose(p);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

TEST(CliTest, DescribesTheDefaultModel) {
  Result r = Tpserve("describe --model " + Quote(testing::DefaultModelPath()));
  ASSERT_EQ(r.exit_code, 0) << r.output << "\n" << testing::kModelHint;
  EXPECT_THAT(r.output, HasSubstr("architecture      llama"));
  EXPECT_THAT(r.output, HasSubstr("weights           Q4_1"));
  EXPECT_THAT(r.output, HasSubstr("layers            30"));
  EXPECT_THAT(r.output, HasSubstr("49152 tokens, tokenizer 'gpt2'"));
  EXPECT_THAT(r.output, HasSubstr("--tp 1, 3"));
}

TEST(CliTest, JsonIsTheModelInfoMessage) {
  Result r =
      Tpserve("describe --json --model=" + Quote(testing::DefaultModelPath()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["num_layers"], 30);
  EXPECT_EQ(j["num_kv_heads"], 3);
  EXPECT_EQ(j["weight_type"], "Q4_1");
  EXPECT_EQ(j["tp_options"].size(), 2u);
}

TEST(CliTest, MetadataListsEveryKey) {
  Result r = Tpserve("describe --metadata --model " +
                     Quote(testing::GoldenPath("tiny_llama.gguf")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output,
              HasSubstr("test.strings = [\"a\", \"\", \"ccc\", \"日本\"]"));
  EXPECT_THAT(r.output, HasSubstr("test.i64 = -1099511627776"));
}

TEST(CliTest, ErrorsSayWhatToDo) {
  Result missing = Tpserve("describe");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.output, HasSubstr("describe needs --model"));

  Result nofile = Tpserve("describe --model /nonexistent.gguf");
  EXPECT_EQ(nofile.exit_code, 1);
  EXPECT_THAT(nofile.output,
              HasSubstr("cannot open model '/nonexistent.gguf'"));

  // A truncated model: clear error, no crash.
  std::string bad = ::testing::TempDir() + "/truncated.gguf";
  {
    std::string full =
        testing::ReadFileOrEmpty(testing::GoldenPath("tiny_llama.gguf"));
    std::ofstream(bad, std::ios::binary) << full.substr(0, full.size() / 2);
  }
  Result truncated = Tpserve("describe --model " + Quote(bad));
  EXPECT_EQ(truncated.exit_code, 2);
  EXPECT_THAT(truncated.output, HasSubstr("extends past the end of the file"));

  Result unknown = Tpserve("describe --bogus");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.output, HasSubstr("unknown flag --bogus"));

  Result cmd = Tpserve("frobnicate");
  EXPECT_EQ(cmd.exit_code, 2);
  EXPECT_THAT(cmd.output, HasSubstr("unknown command 'frobnicate'"));
}

TEST(CliTest, InspectPrintsATableWithTokenizerAndTensors) {
  Result r = Tpserve("inspect " + Quote(testing::DefaultModelPath()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("model: mapped"));  // Load progress.
  EXPECT_THAT(r.output,
              HasSubstr("tokenizer         gpt2, pre 'smollm', 49152 tokens"));
  EXPECT_THAT(r.output,
              HasSubstr("chat format       the model's Jinja template"));
  EXPECT_THAT(r.output, HasSubstr("Q4_1         210"));
  EXPECT_THAT(r.output,
              HasSubstr("token_embd.weight            Q8_0   576 x 49152"));
  Result none = Tpserve("inspect");
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_THAT(none.output, HasSubstr("inspect needs exactly one MODEL"));
}

std::string WriteTemp(const std::string& name, const std::string& body) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << body;
  return path;
}

TEST(CliTest, TokenizeFlagsAndErrors) {
  const std::string model = Quote(testing::DefaultModelPath());
  const std::string input =
      WriteTemp("tok.json", R"(["Hello world", "<|im_start|>hi", ""])");
  Result plain = Tpserve("tokenize --model " + model + " --input " + input);
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  auto ids = nlohmann::json::parse(plain.output);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0], nlohmann::json({19556, 905}));
  EXPECT_NE(ids[1][0], 1);  // "<|im_start|>" stays text by default.
  EXPECT_EQ(ids[2], nlohmann::json::array());

  Result special = Tpserve("tokenize --parse-special --add-bos --model " +
                           model + " --input " + input);
  ASSERT_EQ(special.exit_code, 0) << special.output;
  auto sids = nlohmann::json::parse(special.output);
  EXPECT_EQ(sids[0][0], 1);  // BOS (SmolLM2's BOS is <|im_start|>, id 1)
  // BOS, then "<|im_start|>" parsed as the one special token, then "hi".
  EXPECT_EQ(sids[1], nlohmann::json({1, 1, 6004}));

  struct Bad {
    std::string body;
    const char* error;
  };
  const Bad bad[] = {
      {"not json", "not a JSON array of strings"},
      {R"({"a": 1})", "not a JSON array of strings"},
      {R"(["ok", 5])", "element 1 is not a string"},
      {"[\"\xff\"]", "not a JSON array of strings"},  // invalid UTF-8
  };
  for (const Bad& b : bad) {
    Result r = Tpserve("tokenize --model " + model + " --input " +
                       WriteTemp("bad.json", b.body));
    EXPECT_EQ(r.exit_code, 2) << b.body;
    EXPECT_THAT(r.output, HasSubstr(b.error)) << b.body;
  }
  Result no_input = Tpserve("tokenize --model " + model);
  EXPECT_EQ(no_input.exit_code, 2);
  EXPECT_THAT(no_input.output, HasSubstr("tokenize needs --model"));
}

}  // namespace
}  // namespace tpserve
