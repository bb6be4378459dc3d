// The vocabulary-driven tokenizer behind Tokenizer::FromGguf and
// Tokenizer::FromHfTokenizerJson (internal to common/).
#ifndef TPSERVE_COMMON_VOCAB_TOKENIZER_H_
#define TPSERVE_COMMON_VOCAB_TOKENIZER_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/pretokenizer.h"
#include "common/tokenizer.h"

namespace tpserve {

struct Vocab {
  enum class Kind { kBpe, kSpm };
  Kind kind = Kind::kBpe;
  std::vector<std::string> tokens;  // As stored: "Ġthe" (BPE), "▁the" (SPM).
  std::vector<float> scores;        // SPM merge priority; empty for BPE.
  std::vector<TokenType> types;
  absl::flat_hash_map<std::string, int32_t> ids;
  // BPE merges: "left right" -> rank (lower merges first).
  absl::flat_hash_map<std::string, int32_t> merge_ranks;
  std::array<int32_t, 256> byte_tokens;  // Byte -> token, -1 when absent.
  int32_t unk_id = -1;
  bool add_space_prefix = false;  // SPM: " " before the first word.
  bool ignore_merges = false;     // BPE: a word in the vocab is one token.
  bool add_eos_default = false;
  // Tokens cut out of text before merging, longest text first.
  std::vector<int32_t> special_ids;
  std::unique_ptr<PreTokenizer> pre;  // BPE only.
};

class VocabTokenizer final : public Tokenizer {
 public:
  // Finishes `vocab` (index, byte tokens, special list) and validates ids.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Create(
      Vocab vocab, int32_t bos_id, int32_t eos_id, bool add_bos_default,
      std::vector<int32_t> eog_ids);

  absl::StatusOr<std::vector<int32_t>> Encode(
      absl::string_view text, const EncodeOptions& options) const override;
  std::string TokenBytes(int32_t id, bool render_special) const override;
  absl::string_view TokenText(int32_t id) const override;
  int32_t vocab_size() const override {
    return static_cast<int32_t>(vocab_.tokens.size());
  }
  TokenType token_type(int32_t id) const override;
  bool strips_leading_space() const override {
    return vocab_.kind == Vocab::Kind::kSpm && vocab_.add_space_prefix;
  }

 private:
  explicit VocabTokenizer(Vocab vocab) : vocab_(std::move(vocab)) {}
  void EncodeBpeWord(absl::string_view word, std::vector<int32_t>& out) const;
  void EncodeSpm(absl::string_view text, std::vector<int32_t>& out) const;

  Vocab vocab_;
};

}  // namespace tpserve

#endif  // TPSERVE_COMMON_VOCAB_TOKENIZER_H_
