// Tokenizers against Hugging Face `tokenizers` (goldens made by
// scripts/make_tokenizer_golden.py), plus the behaviours a server relies on:
// special-token handling, BOS rules, UTF-8 validation, streaming decode.
#include "common/tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/model_tokenizer.h"
#include "common/sentencepiece_tokenizer.h"
#include "common/unicode.h"
#include "tests/test_paths.h"

namespace tpserve {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

json LoadJson(const std::string& name) {
  std::string text = testing::ReadFileOrEmpty(testing::GoldenPath(name));
  EXPECT_FALSE(text.empty()) << name;
  return json::parse(text);
}

class DefaultModelTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto gguf = GgufFile::Open(testing::DefaultModelPath());
    ASSERT_TRUE(gguf.ok()) << gguf.status() << "\n" << testing::kModelHint;
    gguf_ = std::move(*gguf);
    auto tok = Tokenizer::FromGguf(*gguf_);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tok_ = std::move(*tok);
  }
  std::unique_ptr<GgufFile> gguf_;
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(DefaultModelTokenizerTest, MatchesHuggingFaceTokenizersOnCorpus) {
  const json corpus = LoadJson("tokenizer_corpus.json");
  const json want = LoadJson("smollm2_tokens.json");
  ASSERT_EQ(corpus.size(), want.size());
  EncodeOptions options;
  options.parse_special = true;  // HF always splits out added tokens.
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::string text = corpus[i];
    auto ids = tok_->Encode(text, options);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, want[i].get<std::vector<int32_t>>()) << "text: " << text;
    // Decoding gives the text back (byte-level BPE is lossless).
    EXPECT_EQ(tok_->Decode(*ids, /*render_special=*/true), text);
  }
}

TEST_F(DefaultModelTokenizerTest, SpecialTokensOnlyWhenAsked) {
  const std::string text = "<|im_start|>user\nhi<|im_end|>";
  auto plain = tok_->Encode(text, {});
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(std::count(plain->begin(), plain->end(), 1), 0)
      << "user text must not forge <|im_start|>";
  EXPECT_EQ(tok_->Decode(*plain, false), text);
  EncodeOptions special;
  special.parse_special = true;
  auto parsed = tok_->Encode(text, special);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->front(), 1);
  EXPECT_EQ(parsed->back(), 2);
  // Control tokens are hidden when decoding unless rendered.
  EXPECT_EQ(tok_->Decode(*parsed, false), "user\nhi");
  EXPECT_EQ(tok_->Decode(*parsed, true), text);
}

TEST_F(DefaultModelTokenizerTest, BosEosAndEndOfGeneration) {
  EXPECT_EQ(tok_->bos_id(), 1);
  EXPECT_EQ(tok_->eos_id(), 2);
  EXPECT_FALSE(tok_->add_bos_by_default());
  EncodeOptions bos;
  bos.add_bos = true;
  bos.add_eos = true;
  auto ids = tok_->Encode("Hi", bos);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->front(), 1);
  EXPECT_EQ(ids->back(), 2);
  EXPECT_TRUE(tok_->IsEndOfGeneration(2));   // <|im_end|>
  EXPECT_TRUE(tok_->IsEndOfGeneration(0));   // <|endoftext|>
  EXPECT_FALSE(tok_->IsEndOfGeneration(1));  // <|im_start|>
}

TEST_F(DefaultModelTokenizerTest, RefusesInvalidUtf8) {
  for (std::string bad : {std::string("abc\xff"), std::string("\xc3"),
                          std::string("\xed\xa0\x80"),  // surrogate
                          std::string("\xc0\xaf")}) {   // overlong
    auto ids = tok_->Encode(bad, {});
    ASSERT_FALSE(ids.ok());
    EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(ids.status().message()), HasSubstr("UTF-8"));
  }
}

TEST_F(DefaultModelTokenizerTest, StreamingNeverSplitsCharacters) {
  const std::string text = "héllo 🦙 世界 👩‍👩‍👧";
  auto ids = tok_->Encode(text, {});
  ASSERT_TRUE(ids.ok());
  StreamingDetokenizer stream(*tok_, false);
  std::string out;
  for (int32_t id : *ids) {
    std::string piece = stream.Push(id);
    EXPECT_TRUE(IsValidUtf8(piece)) << "piece of token " << id;
    out += piece;
  }
  out += stream.Finish();
  EXPECT_EQ(out, text);
  // A stream cut off inside a character ends with U+FFFD, not a half byte.
  StreamingDetokenizer cut(*tok_, false);
  std::string partial;
  const auto llama = tok_->Encode("🦙", {});
  ASSERT_TRUE(llama.ok());
  ASSERT_GT(llama->size(), 1u);  // The emoji is split across byte tokens.
  partial += cut.Push((*llama)[0]);
  EXPECT_EQ(partial, "");
  EXPECT_EQ(cut.Finish(), "\xEF\xBF\xBD");
}

TEST(HfTokenizerJsonTest, MatchesHuggingFaceOnTrainedBpe) {
  const std::string text = testing::ReadFileOrEmpty(
      testing::GoldenPath("hf_tiny_bpe/tokenizer.json"));
  ASSERT_FALSE(text.empty());
  auto tok = Tokenizer::FromHfTokenizerJson(text, /*bos_id=*/0, /*eos_id=*/1);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_TRUE((*tok)->add_bos_by_default());  // From the post-processor.
  const json corpus = LoadJson("tokenizer_corpus.json");
  const json want = LoadJson("hf_tiny_bpe_tokens.json");
  EncodeOptions plain, with_bos;
  plain.parse_special = with_bos.parse_special = true;
  with_bos.add_bos = true;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::string s = corpus[i];
    auto a = (*tok)->Encode(s, plain);
    auto b = (*tok)->Encode(s, with_bos);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(*a, want["plain"][i].get<std::vector<int32_t>>()) << s;
    EXPECT_EQ(*b, want["with_bos"][i].get<std::vector<int32_t>>()) << s;
  }
  // Without a bos_token_id from config.json, the post-processor's template
  // names the BOS and its id.
  auto unnamed = Tokenizer::FromHfTokenizerJson(text, -1, 1);
  ASSERT_TRUE(unnamed.ok()) << unnamed.status();
  EXPECT_TRUE((*unnamed)->add_bos_by_default());
  auto ids = (*unnamed)->Encode("hi", with_bos);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(ids->front(), 0);
}

TEST(HfTokenizerJsonTest, RefusesMalformedFiles) {
  struct Case {
    std::string json;
    const char* error;
  };
  const Case cases[] = {
      {"", "tokenizer.json"},
      {"[1,2]", "not a JSON object"},
      {R"({"a": 1, "a": 2})", "duplicate"},
      {std::string(100, '[') + std::string(100, ']'), "nest"},
      {R"({"model": {"type": "Unigram"}})", "model.type must be BPE"},
      {R"({"model": {"type": "BPE"}})", "model.vocab missing"},
      {R"({"model": {"type": "BPE", "vocab": {"a": "x"}}})",
       "token id is not an integer"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 99999999}}})",
       "out of range"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [7]}})",
       "merge #0 is malformed"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})",
       "pre_tokenizer missing"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
           "pre_tokenizer": {"type": "Whitespace"}})",
       "'Whitespace' is not supported"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
           "pre_tokenizer": {"type": "Split", "behavior": "Isolated",
                             "pattern": {"Regex": "(unclosed"}}})",
       "bad pre-tokenizer regex"},
      {R"({"model": {"type": 5, "vocab": []}})", "model.type must be BPE"},
  };
  for (const Case& c : cases) {
    auto tok = Tokenizer::FromHfTokenizerJson(c.json, -1, -1);
    ASSERT_FALSE(tok.ok()) << c.json;
    EXPECT_THAT(std::string(tok.status().message()), HasSubstr(c.error))
        << c.json;
  }
}

TEST(SentencePieceTokenizerTest, MatchesSentencePieceOnTrainedModel) {
  const std::string model =
      testing::ReadFileOrEmpty(testing::GoldenPath("spm_tiny/tokenizer.model"));
  ASSERT_FALSE(model.empty());
  auto tok = SentencePieceTokenizerFromModel(model);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->bos_id(), 1);
  EXPECT_EQ((*tok)->eos_id(), 2);
  EXPECT_TRUE((*tok)->strips_leading_space());
  const json corpus = LoadJson("tokenizer_corpus.json");
  const json want = LoadJson("spm_tiny_tokens.json");
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::string text = corpus[i];
    auto ids = (*tok)->Encode(text, {});
    ASSERT_TRUE(ids.ok());
    EXPECT_EQ(*ids, want[i].get<std::vector<int32_t>>()) << text;
    // Byte fallback makes it lossless too (the dummy prefix is dropped).
    EXPECT_EQ((*tok)->Decode(*ids, false), text);
  }
  EncodeOptions special;
  special.parse_special = true;
  special.add_bos = true;
  auto ids = (*tok)->Encode("</s>x", special);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ((*ids)[0], 1);
  EXPECT_EQ((*ids)[1], 2);
  EXPECT_FALSE(SentencePieceTokenizerFromModel("garbage").ok());
}

// Streaming in the context of a prompt: for every cut of every corpus text
// into prompt and continuation, the continuation's text is Decode(all)
// minus Decode(prompt). SentencePiece drops the prefix space only at the
// start of the whole text, so "▁world" after "Hello" stays " world".
TEST(SentencePieceTokenizerTest, StreamingDecodesInTheContextOfAPrompt) {
  auto tok = SentencePieceTokenizerFromModel(testing::ReadFileOrEmpty(
      testing::GoldenPath("spm_tiny/tokenizer.model")));
  ASSERT_TRUE(tok.ok()) << tok.status();
  const json corpus = LoadJson("tokenizer_corpus.json");
  EncodeOptions with_bos;
  with_bos.add_bos = true;
  int cuts = 0;
  for (const json& entry : corpus) {
    const std::string text = entry;
    auto ids = (*tok)->Encode(text, with_bos);
    ASSERT_TRUE(ids.ok());
    for (size_t cut = 0; cut <= ids->size(); ++cut) {
      const std::vector<int32_t> prompt(ids->begin(), ids->begin() + cut);
      const std::string before = (*tok)->Decode(prompt, false);
      const std::string whole = (*tok)->Decode(*ids, false);
      // Cuts inside a byte-fallback character have no text of their own.
      if (whole.compare(0, before.size(), before) != 0) continue;
      StreamingDetokenizer stream(**tok, false, prompt);
      std::string out;
      for (size_t i = cut; i < ids->size(); ++i) out += stream.Push((*ids)[i]);
      out += stream.Finish();
      EXPECT_EQ(out, whole.substr(before.size()))
          << "text '" << text << "' cut after " << cut << " tokens";
      ++cuts;
    }
  }
  EXPECT_GT(cuts, 100);
  // The prompt's text is what counts: BOS alone decodes to nothing.
  auto world = (*tok)->Encode("world", {});
  ASSERT_TRUE(world.ok());
  StreamingDetokenizer after_hello(**tok, false, *(*tok)->Encode("Hello", {}));
  StreamingDetokenizer after_bos(**tok, false, {(*tok)->bos_id()});
  std::string kept, stripped;
  for (int32_t id : *world) {
    kept += after_hello.Push(id);
    stripped += after_bos.Push(id);
  }
  EXPECT_EQ(kept, " world");
  EXPECT_EQ(stripped, "world");
}

// A Hugging Face folder: config.json plus tokenizer.json or tokenizer.model.
std::string MakeFolder(const std::string& name,
                       const std::string& tokenizer_file,
                       const std::string& golden_tokenizer) {
  const std::string dir = ::testing::TempDir() + "/" + name;
  ::mkdir(dir.c_str(), 0755);
  std::ofstream(dir + "/config.json")
      << testing::ReadFileOrEmpty(testing::GoldenPath("hf_tiny/config.json"));
  std::ofstream(dir + "/" + tokenizer_file, std::ios::binary)
      << testing::ReadFileOrEmpty(testing::GoldenPath(golden_tokenizer));
  return dir;
}

TEST(LoadTokenizerTest, FindsTheTokenizerOfEveryModelKind) {
  auto gguf = LoadTokenizer(testing::DefaultModelPath());
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  EXPECT_EQ((*gguf)->vocab_size(), 49152);

  auto json_dir = LoadTokenizer(
      MakeFolder("hf_json", "tokenizer.json", "hf_tiny_bpe/tokenizer.json"));
  ASSERT_TRUE(json_dir.ok()) << json_dir.status();
  EXPECT_EQ((*json_dir)->bos_id(), 1);  // From config.json.

  auto spm_dir = LoadTokenizer(
      MakeFolder("hf_spm", "tokenizer.model", "spm_tiny/tokenizer.model"));
  ASSERT_TRUE(spm_dir.ok()) << spm_dir.status();
  EXPECT_TRUE((*spm_dir)->strips_leading_space());

  auto none = LoadTokenizer(testing::GoldenPath("hf_tiny"));
  ASSERT_FALSE(none.ok());
  EXPECT_THAT(std::string(none.status().message()),
              HasSubstr("neither tokenizer.json nor tokenizer.model"));
  EXPECT_EQ(
      LoadChatTemplateSource(testing::GoldenPath("hf_tiny")).status().code(),
      absl::StatusCode::kNotFound);
}

// tokenizer_config.json's chat_template as transformers' list of named
// templates: "default", and "tool_use" when a prompt offers tools.
TEST(LoadTokenizerTest, NamedChatTemplatesInTokenizerConfig) {
  const std::string dir =
      MakeFolder("hf_named", "tokenizer.json", "hf_tiny_bpe/tokenizer.json");
  std::ofstream(dir + "/tokenizer_config.json") << R"({"chat_template": [
             {"name": "default", "template": "D{{ messages | length }}"},
             {"name": "tool_use", "template": "T{{ tools | length }}"}]})";
  auto tok = LoadTokenizer(dir);
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto chat = LoadChatTemplate(nullptr, dir, "", **tok);
  ASSERT_TRUE(chat.ok()) << chat.status();
  ChatPrompt prompt;
  prompt.messages.emplace_back("user", "x");
  EXPECT_EQ(*chat->Apply(prompt), "D1");
  prompt.tools_json = R"([{"type": "function"}, {"type": "function"}])";
  EXPECT_EQ(*chat->Apply(prompt), "T2");

  std::ofstream(dir + "/tokenizer_config.json")
      << R"({"chat_template": [{"name": "default"}]})";
  auto bad = LoadChatTemplate(nullptr, dir, "", **tok);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("is not {\"name\": string, \"template\": string}"));
}

TEST(TokenizerGgufTest, VocabularyErrorsAreClear) {
  auto gguf = GgufFile::Open(testing::GoldenPath("tiny_llama.gguf"));
  ASSERT_TRUE(gguf.ok());
  // The tiny golden model names a tokenizer but ships no vocabulary.
  auto tok = Tokenizer::FromGguf(**gguf);
  ASSERT_FALSE(tok.ok());
  EXPECT_THAT(std::string(tok.status().message()),
              HasSubstr("'tokenizer.ggml.tokens' is missing"));
}

TEST(UnicodeTest, CompletePrefixHoldsOnlyUnfinishedCharacters) {
  EXPECT_EQ(CompleteUtf8Prefix("abc"), 3u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xE4\xB8"), 2u);    // 世 cut after 2/3
  EXPECT_EQ(CompleteUtf8Prefix("\xF0\x9F\xA6"), 0u);  // 🦙 cut after 3/4
  EXPECT_EQ(CompleteUtf8Prefix("a\xFF"), 2u);         // Never valid: emit.
  EXPECT_EQ(CompleteUtf8Prefix("a\xED\xA0"), 3u);     // Surrogate: emit.
  EXPECT_EQ(SanitizeUtf8("a\xFF"
                         "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(ByteToUnicode()[' '], "\xC4\xA0");  // 'Ġ'
  EXPECT_EQ(*UnicodeToByte(0x120), ' ');
}

}  // namespace
}  // namespace tpserve
