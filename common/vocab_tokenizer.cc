#include "common/vocab_tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "absl/strings/str_cat.h"
#include "common/unicode.h"

namespace tpserve {
namespace {

constexpr char kSpmSpace[] = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK

// One symbol of the merge loop: a span of the word, linked to neighbours.
struct Symbol {
  size_t begin;
  size_t size;
  int prev;
  int next;
};

// A candidate merge of two adjacent symbols. BPE pops the lowest rank, SPM
// the highest score; ties go to the leftmost pair (as llama.cpp does).
struct Candidate {
  int left, right;
  float priority;  // -rank for BPE, score for SPM: higher pops first.
  size_t size;     // Merged byte length, to detect stale candidates.
};
struct CandidateOrder {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.priority < b.priority ||
           (a.priority == b.priority && a.left > b.left);
  }
};
using CandidateQueue =
    std::priority_queue<Candidate, std::vector<Candidate>, CandidateOrder>;

std::vector<Symbol> SplitChars(absl::string_view word) {
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (size_t pos = 0; pos < word.size();) {
    const size_t len =
        std::min<size_t>(Utf8SequenceLength(word[pos]), word.size() - pos);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({pos, len, index - 1, -1});
    if (index > 0) symbols[index - 1].next = index;
    pos += len;
  }
  return symbols;
}

// Runs the merge loop. `priority(left, right)` returns the candidate's
// priority or nullopt when the pair does not merge.
template <typename Priority>
void MergeSymbols(absl::string_view word, std::vector<Symbol>& symbols,
                  Priority priority) {
  CandidateQueue queue;
  auto consider = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[left];
    const Symbol& r = symbols[right];
    std::optional<float> p =
        priority(word.substr(l.begin, l.size), word.substr(r.begin, r.size));
    if (p) queue.push({left, right, *p, l.size + r.size});
  };
  for (size_t i = 1; i < symbols.size(); ++i) consider(i - 1, i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& l = symbols[c.left];
    Symbol& r = symbols[c.right];
    // Stale: one side already merged elsewhere since this was queued.
    if (l.size == 0 || r.size == 0 || l.next != c.right ||
        l.size + r.size != c.size) {
      continue;
    }
    l.size += r.size;
    r.size = 0;
    l.next = r.next;
    if (r.next >= 0) symbols[r.next].prev = c.left;
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> VocabTokenizer::Create(
    Vocab vocab, int32_t bos_id, int32_t eos_id, bool add_bos_default,
    std::vector<int32_t> eog_ids) {
  const int32_t n = static_cast<int32_t>(vocab.tokens.size());
  if (n == 0) return absl::InvalidArgumentError("tokenizer: empty vocabulary");
  if (vocab.types.empty()) vocab.types.assign(n, TokenType::kNormal);
  if (static_cast<int32_t>(vocab.types.size()) != n ||
      (!vocab.scores.empty() &&
       static_cast<int32_t>(vocab.scores.size()) != n)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer: ", n, " tokens but ", vocab.types.size(),
                     " token types and ", vocab.scores.size(), " scores"));
  }
  auto check_id = [n](int32_t id, absl::string_view what) -> absl::Status {
    if (id < -1 || id >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer: ", what, " id ", id,
                       " is outside the vocabulary of ", n));
    }
    return absl::OkStatus();
  };
  for (auto [id, what] :
       {std::pair{bos_id, "BOS"}, {eos_id, "EOS"}, {vocab.unk_id, "UNK"}}) {
    if (absl::Status s = check_id(id, what); !s.ok()) return s;
  }
  for (int32_t id : eog_ids) {
    if (absl::Status s = check_id(id, "end-of-generation"); !s.ok()) return s;
  }
  vocab.ids.reserve(n);
  for (int32_t i = 0; i < n; ++i) {
    vocab.ids[vocab.tokens[i]] = i;  // Later duplicates win, as in llama.cpp.
  }
  vocab.byte_tokens.fill(-1);
  for (int b = 0; b < 256; ++b) {
    std::string key;
    if (vocab.kind == Vocab::Kind::kSpm) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "<0x%02X>", b);
      key = hex;
    } else {
      key = ByteToUnicode()[b];
    }
    if (auto it = vocab.ids.find(key); it != vocab.ids.end()) {
      vocab.byte_tokens[b] = it->second;
    }
  }
  vocab.special_ids.clear();
  for (int32_t i = 0; i < n; ++i) {
    const TokenType t = vocab.types[i];
    if ((t == TokenType::kControl || t == TokenType::kUserDefined ||
         t == TokenType::kUnknown) &&
        !vocab.tokens[i].empty()) {
      vocab.special_ids.push_back(i);
    }
  }
  // Longest first, so "<|im_start|>" wins over a shorter prefix token.
  std::stable_sort(vocab.special_ids.begin(), vocab.special_ids.end(),
                   [&vocab](int32_t a, int32_t b) {
                     return vocab.tokens[a].size() > vocab.tokens[b].size();
                   });
  if (vocab.kind == Vocab::Kind::kBpe && vocab.pre == nullptr) {
    return absl::InvalidArgumentError("tokenizer: BPE without pre-tokenizer");
  }
  if (eos_id >= 0 &&
      std::find(eog_ids.begin(), eog_ids.end(), eos_id) == eog_ids.end()) {
    eog_ids.push_back(eos_id);
  }
  std::unique_ptr<VocabTokenizer> tok(new VocabTokenizer(std::move(vocab)));
  tok->bos_id_ = bos_id;
  tok->eos_id_ = eos_id;
  tok->add_bos_default_ = add_bos_default;
  tok->eog_ids_ = std::move(eog_ids);
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

TokenType VocabTokenizer::token_type(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return TokenType::kUndefined;
  return vocab_.types[id];
}

absl::string_view VocabTokenizer::TokenText(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  return vocab_.tokens[id];
}

void VocabTokenizer::EncodeBpeWord(absl::string_view word,
                                   std::vector<int32_t>& out) const {
  if (vocab_.ignore_merges) {
    if (auto it = vocab_.ids.find(word); it != vocab_.ids.end()) {
      out.push_back(it->second);
      return;
    }
  }
  std::vector<Symbol> symbols = SplitChars(word);
  std::string key;
  MergeSymbols(
      word, symbols,
      [&](absl::string_view l, absl::string_view r) -> std::optional<float> {
        key.assign(l.data(), l.size());
        key += ' ';
        key.append(r.data(), r.size());
        auto it = vocab_.merge_ranks.find(key);
        if (it == vocab_.merge_ranks.end()) return std::nullopt;
        return -static_cast<float>(it->second);
      });
  for (int i = 0; i >= 0 && !symbols.empty(); i = symbols[i].next) {
    const absl::string_view s = word.substr(symbols[i].begin, symbols[i].size);
    if (auto it = vocab_.ids.find(s); it != vocab_.ids.end()) {
      out.push_back(it->second);
      continue;
    }
    // Not in the vocabulary: one token per byte-alphabet character.
    for (size_t pos = 0; pos < s.size();) {
      const size_t len =
          std::min<size_t>(Utf8SequenceLength(s[pos]), s.size() - pos);
      auto it = vocab_.ids.find(s.substr(pos, len));
      if (it != vocab_.ids.end()) {
        out.push_back(it->second);
      } else if (vocab_.unk_id >= 0) {
        out.push_back(vocab_.unk_id);
      }
      pos += len;
    }
  }
}

void VocabTokenizer::EncodeSpm(absl::string_view text,
                               std::vector<int32_t>& out) const {
  std::vector<Symbol> symbols = SplitChars(text);
  MergeSymbols(
      text, symbols,
      [&](absl::string_view l, absl::string_view r) -> std::optional<float> {
        // l and r are adjacent in `text`: their union is a view.
        absl::string_view merged(l.data(), l.size() + r.size());
        auto it = vocab_.ids.find(merged);
        if (it == vocab_.ids.end()) return std::nullopt;
        return vocab_.scores.empty() ? 0.f : vocab_.scores[it->second];
      });
  for (int i = 0; i >= 0 && !symbols.empty(); i = symbols[i].next) {
    const absl::string_view s = text.substr(symbols[i].begin, symbols[i].size);
    if (auto it = vocab_.ids.find(s); it != vocab_.ids.end()) {
      out.push_back(it->second);
      continue;
    }
    // Byte fallback: <0xXX> per byte of a character the vocabulary lacks;
    // without byte tokens, one unknown token for the character.
    const bool has_bytes = std::all_of(s.begin(), s.end(), [this](char c) {
      return vocab_.byte_tokens[static_cast<unsigned char>(c)] >= 0;
    });
    if (has_bytes) {
      for (unsigned char c : s) out.push_back(vocab_.byte_tokens[c]);
    } else if (vocab_.unk_id >= 0) {
      out.push_back(vocab_.unk_id);
    }
  }
}

absl::StatusOr<std::vector<int32_t>> VocabTokenizer::Encode(
    absl::string_view text, const EncodeOptions& options) const {
  if (!IsValidUtf8(text)) {
    return absl::InvalidArgumentError("tokenizer: text is not valid UTF-8");
  }
  // Cut special tokens out of the raw text: user-defined ones always,
  // control/unknown ones only when asked.
  std::vector<int32_t> specials;
  specials.reserve(vocab_.special_ids.size());
  for (int32_t id : vocab_.special_ids) {
    const TokenType type = vocab_.types[id];
    if (options.parse_special ||
        (type != TokenType::kControl && type != TokenType::kUnknown)) {
      specials.push_back(id);
    }
  }
  const std::vector<TextFragment> fragments = SplitOnSpecialTokens(
      text, specials,
      [this](int32_t id) -> absl::string_view { return vocab_.tokens[id]; });

  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (options.add_bos) {
    if (bos_id_ < 0) {
      return absl::InvalidArgumentError(
          "tokenizer: add_bos requested but the model has no BOS token");
    }
    out.push_back(bos_id_);
  }
  bool prev_special = true;  // SPM: the first word gets the prefix space.
  std::string escaped;
  for (const TextFragment& f : fragments) {
    if (f.token >= 0) {
      out.push_back(f.token);
      prev_special = true;
      continue;
    }
    if (vocab_.kind == Vocab::Kind::kSpm) {
      escaped.clear();
      if (vocab_.add_space_prefix && prev_special) escaped = kSpmSpace;
      for (char c : f.text) {
        if (c == ' ') {
          escaped += kSpmSpace;
        } else {
          escaped += c;
        }
      }
      EncodeSpm(escaped, out);
      prev_special = false;
      continue;
    }
    auto words = vocab_.pre->Split(f.text);
    if (!words.ok()) return words.status();
    const auto& alphabet = ByteToUnicode();
    std::string encoded;
    for (absl::string_view word : *words) {
      encoded.clear();
      for (unsigned char c : word) encoded += alphabet[c];
      EncodeBpeWord(encoded, out);
    }
  }
  if (options.add_eos) {
    if (eos_id_ < 0) {
      return absl::InvalidArgumentError(
          "tokenizer: add_eos requested but the model has no EOS token");
    }
    out.push_back(eos_id_);
  }
  return out;
}

std::string VocabTokenizer::TokenBytes(int32_t id, bool render_special) const {
  if (id < 0 || id >= vocab_size()) return "";
  const std::string& text = vocab_.tokens[id];
  switch (vocab_.types[id]) {
    case TokenType::kControl:
    case TokenType::kUnknown:
    case TokenType::kUnused:
      return render_special ? text : "";
    case TokenType::kUserDefined:
      return text;
    case TokenType::kByte:
    case TokenType::kNormal:
    case TokenType::kUndefined:
      break;
  }
  if (vocab_.kind == Vocab::Kind::kSpm) {
    return SpmPieceBytes(text, vocab_.types[id] == TokenType::kByte);
  }
  // Byte-level BPE: each alphabet character is one byte; anything else
  // (never in a well-formed vocabulary) is kept as its UTF-8.
  std::string out;
  for (size_t pos = 0; pos < text.size();) {
    const size_t start = pos;
    std::optional<uint32_t> cp = DecodeUtf8(text, &pos);
    std::optional<uint8_t> b = cp ? UnicodeToByte(*cp) : std::nullopt;
    if (b) {
      out += static_cast<char>(*b);
    } else {
      out.append(text, start, pos - start);
    }
  }
  return out;
}

}  // namespace tpserve
