#include "common/tokenizer.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/unicode.h"
#include "common/vocab_tokenizer.h"

namespace tpserve {
namespace {

constexpr int64_t kMaxVocab = 1 << 22;

absl::StatusOr<int64_t> OptionalId(const GgufFile& gguf,
                                   absl::string_view key) {
  if (gguf.FindKey(key) == nullptr) return -1;
  TP_ASSIGN_OR_RETURN(int64_t id, gguf.GetInt(key));
  // Some converters write -1 or a huge value for "none".
  if (id < 0 || id >= kMaxVocab) return -1;
  return id;
}

absl::StatusOr<bool> OptionalBool(const GgufFile& gguf, absl::string_view key,
                                  bool fallback) {
  if (gguf.FindKey(key) == nullptr) return fallback;
  return gguf.GetBool(key);
}

}  // namespace

std::vector<TextFragment> SplitOnSpecialTokens(
    absl::string_view text, absl::Span<const int32_t> ids,
    const std::function<absl::string_view(int32_t)>& text_of) {
  std::vector<TextFragment> fragments;
  if (!text.empty()) fragments.push_back({text});
  for (int32_t id : ids) {
    const absl::string_view needle = text_of(id);
    if (needle.empty()) continue;
    std::vector<TextFragment> next;
    next.reserve(fragments.size());
    for (const TextFragment& f : fragments) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t start = 0;
      for (size_t hit = f.text.find(needle); hit != absl::string_view::npos;
           hit = f.text.find(needle, start)) {
        if (hit > start) next.push_back({f.text.substr(start, hit - start)});
        next.push_back({{}, id});
        start = hit + needle.size();
      }
      if (start < f.text.size()) next.push_back({f.text.substr(start)});
    }
    fragments = std::move(next);
  }
  return fragments;
}

std::string SpmPieceBytes(absl::string_view piece, bool is_byte_piece) {
  if (is_byte_piece && piece.size() == 6 && piece.substr(0, 3) == "<0x") {
    const std::string hex(piece.substr(3, 2));
    return std::string(
        1, static_cast<char>(std::strtol(hex.c_str(), nullptr, 16)));
  }
  constexpr absl::string_view kSpace = "\xE2\x96\x81";  // U+2581
  std::string out;
  out.reserve(piece.size());
  for (size_t pos = 0; pos < piece.size();) {
    if (piece.substr(pos, 3) == kSpace) {
      out += ' ';
      pos += 3;
    } else {
      out += piece[pos++];
    }
  }
  return out;
}

bool Tokenizer::IsEndOfGeneration(int32_t id) const {
  return std::find(eog_ids_.begin(), eog_ids_.end(), id) != eog_ids_.end();
}

std::string Tokenizer::Decode(absl::Span<const int32_t> ids,
                              bool render_special) const {
  StreamingDetokenizer stream(*this, render_special);
  std::string out;
  for (int32_t id : ids) out += stream.Push(id);
  out += stream.Finish();
  return out;
}

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer,
                                           bool render_special,
                                           absl::Span<const int32_t> context)
    : tokenizer_(tokenizer), render_special_(render_special) {
  // Only whether the context decodes to any text matters: Decode drops the
  // leading space of the first token that gives bytes, and of no other.
  for (int32_t id : context) {
    if (!tokenizer_.TokenBytes(id, render_special_).empty()) {
      first_ = false;
      break;
    }
  }
}

std::string StreamingDetokenizer::Push(int32_t id) {
  std::string bytes = tokenizer_.TokenBytes(id, render_special_);
  if (first_ && !bytes.empty()) {
    first_ = false;
    if (tokenizer_.strips_leading_space() && bytes[0] == ' ') bytes.erase(0, 1);
  }
  pending_ += bytes;
  const size_t ready = CompleteUtf8Prefix(pending_);
  std::string out = SanitizeUtf8(absl::string_view(pending_).substr(0, ready));
  pending_.erase(0, ready);
  return out;
}

std::string StreamingDetokenizer::Finish() {
  std::string out = SanitizeUtf8(pending_);
  pending_.clear();
  return out;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(
    const GgufFile& gguf) {
  TP_ASSIGN_OR_RETURN(absl::string_view model,
                      gguf.GetString("tokenizer.ggml.model"));
  Vocab vocab;
  if (model == "gpt2") {
    vocab.kind = Vocab::Kind::kBpe;
  } else if (model == "llama") {
    vocab.kind = Vocab::Kind::kSpm;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokenizer: model '", model,
        "' (tokenizer.ggml.model) is not supported; supported: gpt2 "
        "(byte-level BPE), llama (SentencePiece)"));
  }
  TP_ASSIGN_OR_RETURN(auto tokens,
                      gguf.GetStringArray("tokenizer.ggml.tokens"));
  if (tokens.empty() || static_cast<int64_t>(tokens.size()) > kMaxVocab) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokenizer: vocabulary of ", tokens.size(), " tokens is out of range"));
  }
  vocab.tokens.reserve(tokens.size());
  for (absl::string_view t : tokens) vocab.tokens.emplace_back(t);
  const size_t n = vocab.tokens.size();
  if (gguf.FindKey("tokenizer.ggml.scores") != nullptr) {
    TP_ASSIGN_OR_RETURN(auto scores,
                        gguf.GetFloatArray("tokenizer.ggml.scores"));
    vocab.scores.assign(scores.begin(), scores.end());
  }
  if (gguf.FindKey("tokenizer.ggml.token_type") != nullptr) {
    TP_ASSIGN_OR_RETURN(auto types,
                        gguf.GetIntArray("tokenizer.ggml.token_type"));
    vocab.types.reserve(types.size());
    for (int64_t t : types) {
      vocab.types.push_back(t >= 0 && t <= 6 ? static_cast<TokenType>(t)
                                             : TokenType::kUndefined);
    }
  }
  if (vocab.types.size() != n && !vocab.types.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer: ", n, " tokens but ", vocab.types.size(),
                     " entries in tokenizer.ggml.token_type"));
  }
  if (vocab.scores.size() != n && !vocab.scores.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer: ", n, " tokens but ", vocab.scores.size(),
                     " entries in tokenizer.ggml.scores"));
  }

  bool add_bos = vocab.kind == Vocab::Kind::kSpm;
  if (vocab.kind == Vocab::Kind::kBpe) {
    TP_ASSIGN_OR_RETURN(auto merges,
                        gguf.GetStringArray("tokenizer.ggml.merges"));
    vocab.merge_ranks.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i) {
      // "left right": the separator is the first space after position 0.
      const size_t space = merges[i].find(' ', 1);
      if (space == absl::string_view::npos) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tokenizer: merge #", i, " '", merges[i], "' has no space"));
      }
      vocab.merge_ranks.emplace(std::string(merges[i]),
                                static_cast<int32_t>(i));
    }
    std::string pre = "gpt2";
    if (gguf.FindKey("tokenizer.ggml.pre") != nullptr) {
      TP_ASSIGN_OR_RETURN(absl::string_view p,
                          gguf.GetString("tokenizer.ggml.pre"));
      pre = std::string(p);
    }
    TP_ASSIGN_OR_RETURN(auto patterns, PreTokenizer::PatternsForGgufPre(pre));
    TP_ASSIGN_OR_RETURN(vocab.pre, PreTokenizer::Create(patterns));
    // Llama 3 style vocabularies take whole words first and add BOS.
    if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") {
      vocab.ignore_merges = true;
      add_bos = true;
    }
  }
  TP_ASSIGN_OR_RETURN(vocab.add_space_prefix,
                      OptionalBool(gguf, "tokenizer.ggml.add_space_prefix",
                                   vocab.kind == Vocab::Kind::kSpm));
  TP_ASSIGN_OR_RETURN(
      add_bos, OptionalBool(gguf, "tokenizer.ggml.add_bos_token", add_bos));
  TP_ASSIGN_OR_RETURN(
      vocab.add_eos_default,
      OptionalBool(gguf, "tokenizer.ggml.add_eos_token", false));
  TP_ASSIGN_OR_RETURN(int64_t bos,
                      OptionalId(gguf, "tokenizer.ggml.bos_token_id"));
  TP_ASSIGN_OR_RETURN(int64_t eos,
                      OptionalId(gguf, "tokenizer.ggml.eos_token_id"));
  TP_ASSIGN_OR_RETURN(int64_t unk,
                      OptionalId(gguf, "tokenizer.ggml.unknown_token_id"));
  vocab.unk_id = static_cast<int32_t>(unk);
  std::vector<int32_t> eog;
  for (const char* key :
       {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    TP_ASSIGN_OR_RETURN(int64_t id, OptionalId(gguf, key));
    if (id >= 0) eog.push_back(static_cast<int32_t>(id));
  }
  // Chat models end turns with tokens the metadata may not name as EOT.
  for (const char* text : {"<|im_end|>", "<|eot_id|>", "<|end_of_text|>",
                           "<|endoftext|>", "<end_of_turn>"}) {
    for (size_t i = 0; i < n; ++i) {
      if (vocab.tokens[i] == text &&
          (vocab.types.empty() || vocab.types[i] == TokenType::kControl)) {
        eog.push_back(static_cast<int32_t>(i));
        break;
      }
    }
  }
  return VocabTokenizer::Create(std::move(vocab), static_cast<int32_t>(bos),
                                static_cast<int32_t>(eos), add_bos,
                                std::move(eog));
}

}  // namespace tpserve
