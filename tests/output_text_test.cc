// OutputText: stop strings over streamed tokens. Hand-picked token pieces
// (a fake vocabulary, so splits inside characters and stop strings are
// exact) and randomized sequences against the whole-sequence decode, with
// the fake vocabulary and with the default model's tokenizer. Then text in
// the prompt's context: SentencePiece vocabularies (tests/golden/spm_tiny,
// llama.cpp's Llama 2 vocabulary) keep the leading space of the first
// generated token, and byte-level BPE ones (the default model, llama.cpp's
// Llama 3 vocabulary) decode the same in context as alone.
#include "coordinator/output_text.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <random>

#include "absl/strings/match.h"
#include "common/model_tokenizer.h"
#include "common/sentencepiece_tokenizer.h"
#include "common/unicode.h"
#include "tests/fake_tokenizer.h"
#include "tests/test_paths.h"

namespace tpserve {
namespace {

const FakeTokenizer& Fake() {
  static const FakeTokenizer* fake = new FakeTokenizer({
      "a",        "b",   "c",     "d",      "x",  " ",    "ab",   "bc", "abc",
      "abcd",     "cab", "Hello", " world", "\n", "\n\n", "User", ":",  "é",
      "\xC3",      // First byte of "é" (C3 A9).
      "\xA9",      // Its second byte.
      "\xE2\x82",  // First two bytes of "€" (E2 82 AC).
      "\xAC",      // Its last byte.
      "\xAC!",     // Last byte of "€" and more.
      "\xFF",      // Never valid.
      "<ctl>",
      "\xF0\x9F",  // Half of an emoji (F0 9F 98 80).
      "\x98\x80",  // Its other half.
  });
  return *fake;
}

struct StreamRun {
  std::vector<std::string> chunks;  // Each Push's text, then Finish's.
  std::string text;                 // Their concatenation.
  bool stopped = false;
  std::string matched;
  size_t tokens_used = 0;  // Pushes until stopped (or all).
};

// Streams `ids` (generated after `prompt`) until a stop; Finish unless
// stopped.
StreamRun Stream(const Tokenizer& tok, const std::vector<int32_t>& ids,
                 const std::vector<std::string>& stop,
                 bool render_special = false,
                 const std::vector<int32_t>& prompt = {}) {
  OutputText out(tok, prompt, stop, render_special);
  StreamRun run;
  for (int32_t id : ids) {
    OutputText::Delta d = out.Push(id);
    ++run.tokens_used;
    EXPECT_TRUE(IsValidUtf8(d.text)) << d.text;
    run.chunks.push_back(d.text);
    run.text += d.text;
    if (d.stopped) {
      run.stopped = true;
      run.matched = d.matched_stop;
      EXPECT_EQ(out.matched_stop(), d.matched_stop);
      break;
    }
    EXPECT_TRUE(d.matched_stop.empty());
  }
  if (!run.stopped) {
    std::string tail = out.Finish();
    EXPECT_TRUE(IsValidUtf8(tail));
    run.chunks.push_back(tail);
    run.text += tail;
    run.stopped = out.stopped();
    run.matched = out.matched_stop();
  }
  EXPECT_EQ(out.emitted(), run.text);
  EXPECT_EQ(out.stopped(), run.stopped);
  // Nothing more comes out afterwards.
  OutputText::Delta after = out.Push(0);
  EXPECT_TRUE(after.text.empty());
  EXPECT_EQ(after.stopped, run.stopped);
  EXPECT_TRUE(out.Finish().empty());
  EXPECT_EQ(out.emitted(), run.text);
  return run;
}

// The reference: the earliest occurrence of any stop in `text` (ties: the
// shorter), or npos.
size_t FirstStop(const std::string& text, const std::vector<std::string>& stop,
                 std::string* matched) {
  size_t best = std::string::npos;
  for (const std::string& s : stop) {
    const size_t at = text.find(s);
    if (at == std::string::npos) continue;
    if (at < best || (at == best && s.size() < matched->size())) {
      best = at;
      *matched = s;
    }
  }
  return best;
}

// What `ids` decode to after `prompt`: Decode(prompt + ids) minus
// Decode(prompt). False when that is not defined: the prompt ends inside a
// UTF-8 character (its decode ends with a U+FFFD that the continuation's
// bytes may complete or join).
bool DecodeInContext(const Tokenizer& tok, const std::vector<int32_t>& prompt,
                     const std::vector<int32_t>& ids, std::string* text) {
  StreamingDetokenizer alone(tok, false);
  std::string complete;
  for (int32_t id : prompt) complete += alone.Push(id);
  const std::string before = tok.Decode(prompt, false);
  if (complete != before) return false;
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), ids.begin(), ids.end());
  const std::string whole = tok.Decode(all, false);
  if (!absl::StartsWith(whole, before)) return false;
  *text = whole.substr(before.size());
  return true;
}

// Checks a stream against the whole-sequence decode: it stops at the first
// token whose decode contains a stop string, and its text is that decode
// cut at the earliest occurrence. The decode is in the context of `prompt`
// (checked against DecodeInContext when that is defined).
void CheckAgainstDecode(const Tokenizer& tok, const std::vector<int32_t>& ids,
                        const std::vector<std::string>& stop,
                        const std::vector<int32_t>& prompt = {}) {
  const StreamRun run = Stream(tok, ids, stop, false, prompt);
  // The decode up to each prefix, without the end-of-sequence flush (a held
  // incomplete character is not text yet).
  StreamingDetokenizer detok(tok, false, prompt);
  std::string decoded;
  for (size_t i = 0; i < ids.size(); ++i) {
    decoded += detok.Push(ids[i]);
    std::string matched;
    const size_t at = FirstStop(decoded, stop, &matched);
    if (at != std::string::npos) {
      ASSERT_TRUE(run.stopped);
      EXPECT_EQ(run.tokens_used, i + 1);
      EXPECT_EQ(run.text, decoded.substr(0, at));
      EXPECT_EQ(run.matched, matched);
      return;
    }
  }
  decoded += detok.Finish();
  if (prompt.empty()) {
    EXPECT_EQ(decoded, tok.Decode(ids, false));
  }
  std::string in_context;
  if (DecodeInContext(tok, prompt, ids, &in_context)) {
    EXPECT_EQ(decoded, in_context);
  }
  std::string matched;
  const size_t at = FirstStop(decoded, stop, &matched);
  EXPECT_EQ(run.stopped, at != std::string::npos);
  EXPECT_EQ(run.text, decoded.substr(0, at));
  EXPECT_EQ(run.matched, matched);
  EXPECT_EQ(run.tokens_used, ids.size());
}

TEST(OutputTextTest, NoStopStringsEmitsEverythingAtOnce) {
  const auto& tok = Fake();
  const StreamRun run = Stream(tok, tok.Ids({"Hello", " world", "\n"}), {});
  EXPECT_THAT(run.chunks, ::testing::ElementsAre("Hello", " world", "\n", ""));
  EXPECT_FALSE(run.stopped);
  EXPECT_EQ(run.matched, "");
}

TEST(OutputTextTest, StopSpanningTokens) {
  const auto& tok = Fake();
  const StreamRun run = Stream(
      tok, tok.Ids({"Hello", "\n", "\n", "User", ":", "x"}), {"\n\nUser:"});
  // "\n" could start the stop string: held from then on.
  EXPECT_THAT(run.chunks, ::testing::ElementsAre("Hello", "", "", "", ""));
  EXPECT_TRUE(run.stopped);
  EXPECT_EQ(run.matched, "\n\nUser:");
  EXPECT_EQ(run.text, "Hello");
  EXPECT_EQ(run.tokens_used, 5u);
}

TEST(OutputTextTest, StopStartingInsideAToken) {
  const auto& tok = Fake();
  // "cab" + "c": the stop "bc" begins inside "cab".
  const StreamRun run = Stream(tok, tok.Ids({"x", "cab", "c", "d"}), {"bc"});
  EXPECT_THAT(run.chunks, ::testing::ElementsAre("x", "ca", ""));
  EXPECT_EQ(run.text, "xca");
  EXPECT_EQ(run.matched, "bc");
  // And ending inside one: the rest of the token is dropped.
  const StreamRun inside = Stream(tok, tok.Ids({"x", "abc", "d"}), {"b"});
  EXPECT_EQ(inside.text, "xa");
  EXPECT_EQ(inside.tokens_used, 2u);
}

TEST(OutputTextTest, StopAtTheVeryStart) {
  const auto& tok = Fake();
  const StreamRun run = Stream(tok, tok.Ids({"ab", "c"}), {"ab"});
  EXPECT_TRUE(run.stopped);
  EXPECT_EQ(run.text, "");
  EXPECT_EQ(run.tokens_used, 1u);
  EXPECT_EQ(Stream(tok, tok.Ids({"\n\n", "x"}), {"\n"}).text, "");
}

TEST(OutputTextTest, PartialPrefixesAreHeldThenReleased) {
  const auto& tok = Fake();
  // "ab" could begin "abc": held. "d" rules it out: released with "d".
  const StreamRun run = Stream(tok, tok.Ids({"ab", "d", "abc"}), {"abc"});
  EXPECT_THAT(run.chunks, ::testing::ElementsAre("", "abd", ""));
  EXPECT_EQ(run.text, "abd");
  EXPECT_EQ(run.matched, "abc");
  // Overlapping: "aab" + "c" must find "abc" starting at the second "a".
  const StreamRun overlap = Stream(tok, tok.Ids({"a", "ab", "c"}), {"abc"});
  EXPECT_THAT(overlap.chunks, ::testing::ElementsAre("", "a", ""));
  EXPECT_TRUE(overlap.stopped);
  // Self-overlapping stop "abab" over "aba" + "bab".
  const StreamRun self =
      Stream(tok, tok.Ids({"ab", "a", "b", "a", "b"}), {"abab"});
  EXPECT_EQ(self.text, "");
  EXPECT_EQ(self.tokens_used, 3u);
  // A held prefix at the end of generation is released by Finish.
  const StreamRun end = Stream(tok, tok.Ids({"x", "a", "b"}), {"abc"});
  EXPECT_THAT(end.chunks, ::testing::ElementsAre("x", "", "", "ab"));
  EXPECT_FALSE(end.stopped);
}

TEST(OutputTextTest, MultiByteCharactersSplitAcrossTokens) {
  const auto& tok = Fake();
  // "é" arrives as two tokens; nothing is emitted in between.
  StreamRun run = Stream(tok, tok.Ids({"a", "\xC3", "\xA9", "b"}), {});
  EXPECT_THAT(run.chunks, ::testing::ElementsAre("a", "", "é", "b", ""));
  // A stop made of a multi-byte character, split across tokens.
  run = Stream(tok, tok.Ids({"x", "\xE2\x82", "\xAC!", "a"}), {"€!"});
  EXPECT_EQ(run.text, "x");
  EXPECT_EQ(run.matched, "€!");
  EXPECT_EQ(run.tokens_used, 3u);
  // A stop of two multi-byte characters, the second split across tokens.
  run = Stream(tok, tok.Ids({"é", "\xF0\x9F", "\x98\x80", "a"}), {"é😀"});
  EXPECT_THAT(run.chunks, ::testing::ElementsAre("", "", ""));
  EXPECT_EQ(run.matched, "é😀");
  // An incomplete character at the end is U+FFFD, which can be a stop.
  run = Stream(tok, tok.Ids({"a", "\xC3"}), {"\xEF\xBF\xBD"});
  EXPECT_EQ(run.text, "a");
  EXPECT_TRUE(run.stopped);
  run = Stream(tok, tok.Ids({"a", "\xFF", "b"}), {"b"});
  EXPECT_EQ(run.text, "a\xEF\xBF\xBD");
}

TEST(OutputTextTest, EarliestOccurrenceWins) {
  const auto& tok = Fake();
  // "bc" completes with "abc", before "abcd" could: generation ends there.
  StreamRun run = Stream(tok, tok.Ids({"x", "abc", "d"}), {"bc", "abcd"});
  EXPECT_EQ(run.matched, "bc");
  EXPECT_EQ(run.text, "xa");
  // Within one token "abcd" both complete; "abcd" starts first, though
  // "bc" completes first.
  run = Stream(tok, tok.Ids({"x", "abcd"}), {"bc", "abcd"});
  EXPECT_EQ(run.matched, "abcd");
  EXPECT_EQ(run.text, "x");
  run = Stream(tok, tok.Ids({"x", "ab", "cab", "c"}), {"cabc", "bc", "abc"});
  EXPECT_EQ(run.matched, "abc");
  EXPECT_EQ(run.text, "x");
  // Same start: the shorter completes first.
  run = Stream(tok, tok.Ids({"x", "abc"}), {"abc", "ab"});
  EXPECT_EQ(run.matched, "ab");
  EXPECT_EQ(run.text, "x");
  // Order in the list does not matter otherwise.
  run = Stream(tok, tok.Ids({"x", "abc"}), {"c", "b"});
  EXPECT_EQ(run.matched, "b");
}

TEST(OutputTextTest, ControlTokensRenderOnlyWhenAsked) {
  const auto& tok = Fake();
  const std::vector<int32_t> ids = tok.Ids({"a", "<ctl>", "b"});
  EXPECT_EQ(Stream(tok, ids, {"<ctl>"}).text, "ab");
  const StreamRun run = Stream(tok, ids, {"<ctl>"}, /*render_special=*/true);
  EXPECT_EQ(run.text, "a");
  EXPECT_TRUE(run.stopped);
}

std::vector<std::string> RandomStops(std::mt19937& rng,
                                     const std::string& source) {
  std::vector<std::string> stop;
  const int n = std::uniform_int_distribution<int>(0, 4)(rng);
  for (int i = 0; i < n; ++i) {
    if (source.empty() || rng() % 4 == 0) {
      static const char* kFixed[] = {"a", "ab", "abc", "bca",          "\n",
                                     "é", "€",  "x x", "\xEF\xBF\xBD", "aaaa"};
      stop.push_back(kFixed[rng() % 10]);
      continue;
    }
    // A substring of the text, on character boundaries (so mostly found).
    size_t begin = rng() % source.size();
    size_t len = 1 + rng() % std::min<size_t>(12, source.size() - begin);
    while (begin > 0 && (source[begin] & 0xC0) == 0x80) --begin;
    std::string s = source.substr(begin, len);
    while (!s.empty() && !IsValidUtf8(s)) s.pop_back();
    if (!s.empty()) stop.push_back(s);
  }
  return stop;
}

TEST(OutputTextTest, RandomSequencesMatchWholeDecode) {
  const auto& tok = Fake();
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 5000; ++iter) {
    std::vector<int32_t> ids(rng() % 24);
    for (int32_t& id : ids) id = static_cast<int32_t>(rng() % tok.vocab_size());
    const std::vector<std::string> stop =
        RandomStops(rng, tok.Decode(ids, false));
    SCOPED_TRACE(::testing::Message() << "iteration " << iter);
    CheckAgainstDecode(tok, ids, stop);
    if (HasFailure()) return;
  }
}

TEST(OutputTextTest, RandomSequencesOfTheDefaultModel) {
  const std::string path = testing::DefaultModelPath();
  struct stat st;
  if (stat(path.c_str(), &st) != 0) GTEST_SKIP() << testing::kModelHint;
  auto tok = LoadTokenizer(path);
  ASSERT_TRUE(tok.ok()) << tok.status();
  // Real text (encoded, so tokens split words and characters as the model
  // does) and random ids (whatever bytes they carry).
  const std::vector<std::string> texts = {
      "Hello world!\n\nUser: how are you?\nAssistant: fine.",
      "Ünïcödé tëxt — with “quotes”, € and 😀 emoji 😀😀.",
      "aaaa abab abc abcabc bca\n\n\n",
      "日本語のテキスト、中文文本。",
  };
  std::mt19937 rng(99);
  for (int iter = 0; iter < 2000; ++iter) {
    std::vector<int32_t> ids;
    if (iter % 2 == 0) {
      auto encoded = (*tok)->Encode(texts[rng() % texts.size()], {});
      ASSERT_TRUE(encoded.ok());
      ids = *encoded;
    } else {
      ids.resize(rng() % 24);
      for (int32_t& id : ids) {
        id = static_cast<int32_t>(rng() % (*tok)->vocab_size());
      }
    }
    const std::vector<std::string> stop =
        RandomStops(rng, (*tok)->Decode(ids, false));
    SCOPED_TRACE(::testing::Message() << "iteration " << iter);
    CheckAgainstDecode(**tok, ids, stop);
    if (HasFailure()) return;
  }
}

TEST(OutputTextTest, LongOutputWithNearMatches) {
  // 200k tokens against 16 stop strings of 256 bytes that keep almost
  // matching: the held tail stays bounded and the run fast.
  const auto& tok = Fake();
  std::vector<std::string> stop;
  for (int i = 0; i < 16; ++i) {
    stop.push_back(std::string(255, 'a') + static_cast<char>('b' + i % 2));
  }
  stop.back() = std::string(256, 'a');  // Never matches "aaa...ab".
  OutputText out(tok, {}, stop, false);
  const int32_t a = tok.Ids({"a"})[0];
  const int32_t x = tok.Ids({"x"})[0];
  size_t emitted = 0;
  for (int i = 0; i < 200000; ++i) {
    // Runs of 200 "a" then "x": prefixes of every stop, never a whole one.
    OutputText::Delta d = out.Push(i % 201 == 200 ? x : a);
    ASSERT_FALSE(d.stopped);
    emitted += d.text.size();
  }
  EXPECT_EQ(emitted + out.Finish().size(), 200000u);
}

// Text in the prompt's context.

constexpr char kSpmSpace[] = "\xE2\x96\x81";  // U+2581, SentencePiece's space.

// The tokenizers the in-context tests run on, by name: "spm_tiny" (a
// trained SentencePiece model, tests/golden), "default" (the default
// model's byte-level BPE), or a llama.cpp vocabulary ("llama-spm" is Llama
// 2's, "llama-bpe" Llama 3's).
std::unique_ptr<Tokenizer> TokenizerNamed(const std::string& name) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok;
  std::string hint;
  if (name == "spm_tiny") {
    tok = SentencePieceTokenizerFromModel(testing::ReadFileOrEmpty(
        testing::GoldenPath("spm_tiny/tokenizer.model")));
  } else if (name == "default") {
    tok = LoadTokenizer(testing::DefaultModelPath());
    hint = testing::kModelHint;
  } else {
    tok = LoadTokenizer(testing::VocabPath(name));
    hint = testing::kVocabHint;
  }
  EXPECT_TRUE(tok.ok()) << name << ": " << tok.status() << "\n" << hint;
  return tok.ok() ? std::move(*tok) : nullptr;
}

std::vector<int32_t> EncodeText(const Tokenizer& tok, const std::string& text,
                                bool add_bos) {
  EncodeOptions options;
  options.add_bos = add_bos;
  auto ids = tok.Encode(text, options);
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : std::vector<int32_t>{};
}

std::vector<int32_t> Concat(std::vector<int32_t> a,
                            const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Issue 14: llama.cpp continues "Le milliard de téléchargements" with
// " Crow manera"; tpserve printed "Crow manera" (and "The capital of France
// is" + "Paris" ran together).
TEST(OutputTextInContextTest, LlamaSpmKeepsTheSpaceOfTheFirstToken) {
  auto tok = TokenizerNamed("llama-spm");
  ASSERT_NE(tok, nullptr);
  ASSERT_TRUE(tok->strips_leading_space());
  const std::vector<int32_t> prompt =
      EncodeText(*tok, "Le milliard de téléchargements", /*add_bos=*/true);
  // Encode prefixes the space: the first token is "▁Crow".
  const std::vector<int32_t> gen = EncodeText(*tok, "Crow manera", false);
  ASSERT_GE(gen.size(), 2u);
  ASSERT_TRUE(absl::StartsWith(tok->TokenText(gen[0]), kSpmSpace))
      << tok->TokenText(gen[0]);
  const StreamRun run = Stream(*tok, gen, {}, false, prompt);
  EXPECT_EQ(run.text, " Crow manera");
  std::string want;
  ASSERT_TRUE(DecodeInContext(*tok, prompt, gen, &want));
  EXPECT_EQ(want, " Crow manera");
  // The first chunk (a stream's first message) carries the space.
  EXPECT_TRUE(absl::StartsWith(run.chunks[0], " C")) << run.chunks[0];

  const std::vector<int32_t> france =
      EncodeText(*tok, "The capital of France is", true);
  const std::vector<int32_t> paris = EncodeText(*tok, "Paris.", false);
  EXPECT_EQ(Stream(*tok, paris, {}, false, france).text, " Paris.");

  // A stop string that begins with that space matches at the very start.
  const StreamRun stopped = Stream(*tok, gen, {" Crow"}, false, prompt);
  EXPECT_TRUE(stopped.stopped);
  EXPECT_EQ(stopped.text, "");
  EXPECT_EQ(stopped.tokens_used, 1u);
  EXPECT_EQ(Stream(*tok, gen, {"w m"}, false, prompt).text, " Cro");

  // After a prompt that decodes to no text (BOS alone, unrendered) the
  // output is a text of its own and loses the space, as Decode does.
  const std::vector<int32_t> bos = {tok->bos_id()};
  EXPECT_EQ(Stream(*tok, gen, {}, false, bos).text, "Crow manera");
  EXPECT_EQ(tok->Decode(Concat(bos, gen), false), "Crow manera");
  // Rendered, BOS is text, and the space stays.
  EXPECT_EQ(Stream(*tok, gen, {}, true, bos).text, " Crow manera");
  EXPECT_EQ(tok->Decode(Concat(bos, gen), true), "<s> Crow manera");
}

TEST(OutputTextInContextTest, SentencePieceModelKeepsTheSpaceOfTheFirstToken) {
  auto tok = TokenizerNamed("spm_tiny");
  ASSERT_NE(tok, nullptr);
  ASSERT_TRUE(tok->strips_leading_space());
  const std::vector<int32_t> prompt =
      EncodeText(*tok, "The capital of France is", true);
  const std::vector<int32_t> gen =
      EncodeText(*tok, "Paris, and then Lyon.", false);
  ASSERT_FALSE(gen.empty());
  ASSERT_TRUE(absl::StartsWith(tok->TokenText(gen[0]), kSpmSpace));
  const StreamRun run = Stream(*tok, gen, {}, false, prompt);
  EXPECT_EQ(run.text, " Paris, and then Lyon.");
  EXPECT_EQ(run.text, tok->Decode(Concat(prompt, gen), false)
                          .substr(tok->Decode(prompt, false).size()));
  EXPECT_EQ(Stream(*tok, gen, {" Par"}, false, prompt).text, "");
  EXPECT_EQ(Stream(*tok, gen, {}, false, {tok->bos_id()}).text,
            "Paris, and then Lyon.");
}

// Random prompts and continuations (real text cut at a random token, or
// random ids) against Decode(prompt + generated) minus Decode(prompt), with
// random stop strings.
class InContextTest : public ::testing::TestWithParam<const char*> {};

TEST_P(InContextTest, RandomContinuationsMatchTheDecodeInContext) {
  auto tok = TokenizerNamed(GetParam());
  ASSERT_NE(tok, nullptr);
  const std::vector<std::string> texts = {
      "The capital of France is Paris. It is also the largest city.",
      "Le milliard de téléchargements Crow manera",
      "  two leading spaces, trailing ones   and\n\nnew lines\n",
      "Ünïcödé tëxt — with “quotes”, € and 😀 emoji 😀😀.",
      "日本語のテキスト、中文文本。 mixed with words",
      "a b c d e f g",
  };
  std::mt19937 rng(7);
  int checked = 0;
  int spaces_kept = 0;
  const int iterations = 1500;
  for (int iter = 0; iter < iterations; ++iter) {
    const std::vector<int32_t> ids =
        EncodeText(*tok, texts[rng() % texts.size()], rng() % 2 == 0);
    const size_t cut = rng() % (ids.size() + 1);
    const std::vector<int32_t> prompt(ids.begin(), ids.begin() + cut);
    std::vector<int32_t> gen(ids.begin() + cut, ids.end());
    if (iter % 3 == 2) {
      gen.resize(rng() % 16);
      for (int32_t& id : gen) {
        id = static_cast<int32_t>(rng() % tok->vocab_size());
      }
    }
    std::string in_context;
    if (!DecodeInContext(*tok, prompt, gen, &in_context)) continue;
    ++checked;
    const std::vector<std::string> stop = RandomStops(rng, in_context);
    SCOPED_TRACE(::testing::Message() << GetParam() << " iteration " << iter);
    CheckAgainstDecode(*tok, gen, stop, prompt);
    // The property the issue is about, spelled out: after a prompt with
    // text, a first token "▁x" gives " x".
    if (!gen.empty() && !tok->Decode(prompt, false).empty() &&
        absl::StartsWith(tok->TokenText(gen[0]), kSpmSpace) &&
        tok->token_type(gen[0]) == TokenType::kNormal) {
      EXPECT_TRUE(
          absl::StartsWith(Stream(*tok, gen, {}, false, prompt).text, " "));
      ++spaces_kept;
    }
    if (HasFailure()) return;
  }
  EXPECT_GT(checked, iterations / 2);
  if (tok->strips_leading_space()) {
    EXPECT_GT(spaces_kept, 50);
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, InContextTest,
                         ::testing::Values("spm_tiny", "llama-spm", "llama-bpe",
                                           "default"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace tpserve
