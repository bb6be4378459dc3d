#include "common/sentencepiece_tokenizer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/spm_processor.h"
#include "common/unicode.h"

namespace tpserve {
namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(std::unique_ptr<SpmProcessor> sp)
      : sp_(std::move(sp)) {
    bos_id_ = sp_->bos_id();
    eos_id_ = sp_->eos_id();
    add_bos_default_ = bos_id_ >= 0;  // Llama 2 convention.
    if (eos_id_ >= 0) eog_ids_.push_back(eos_id_);
    for (int id = 0; id < sp_->size(); ++id) {
      // User-defined pieces SentencePiece matches in text by itself.
      if (sp_->IsControl(id) && !sp_->Piece(id).empty()) {
        special_ids_.push_back(id);
      }
    }
    std::stable_sort(special_ids_.begin(), special_ids_.end(),
                     [this](int a, int b) {
                       return sp_->Piece(a).size() > sp_->Piece(b).size();
                     });
  }

  absl::StatusOr<std::vector<int32_t>> Encode(
      absl::string_view text, const EncodeOptions& options) const override {
    if (!IsValidUtf8(text)) {
      return absl::InvalidArgumentError("tokenizer: text is not valid UTF-8");
    }
    std::vector<int32_t> out;
    if (options.add_bos) {
      if (bos_id_ < 0) {
        return absl::InvalidArgumentError(
            "tokenizer: add_bos requested but the model has no BOS token");
      }
      out.push_back(bos_id_);
    }
    // With parse_special, cut out control pieces ("<s>", "</s>"), then let
    // SentencePiece encode the plain runs between them.
    const std::vector<TextFragment> fragments = SplitOnSpecialTokens(
        text,
        options.parse_special ? absl::Span<const int32_t>(special_ids_)
                              : absl::Span<const int32_t>(),
        [this](int32_t id) -> absl::string_view { return sp_->Piece(id); });
    for (const TextFragment& f : fragments) {
      if (f.token >= 0) {
        out.push_back(f.token);
        continue;
      }
      for (int id : sp_->Encode(std::string(f.text))) out.push_back(id);
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

  std::string TokenBytes(int32_t id, bool render_special) const override {
    if (id < 0 || id >= sp_->size()) return "";
    const std::string& piece = sp_->Piece(id);
    if (sp_->IsControl(id) || sp_->IsUnknown(id)) {
      return render_special ? piece : "";
    }
    return SpmPieceBytes(piece, sp_->IsByte(id));
  }

  absl::string_view TokenText(int32_t id) const override {
    if (id < 0 || id >= sp_->size()) return {};
    return sp_->Piece(id);
  }
  int32_t vocab_size() const override { return sp_->size(); }
  TokenType token_type(int32_t id) const override {
    if (id < 0 || id >= sp_->size()) return TokenType::kUndefined;
    if (sp_->IsControl(id)) return TokenType::kControl;
    if (sp_->IsUnknown(id)) return TokenType::kUnknown;
    if (sp_->IsByte(id)) return TokenType::kByte;
    return TokenType::kNormal;
  }
  bool strips_leading_space() const override {
    return sp_->adds_dummy_prefix();
  }

 private:
  std::unique_ptr<SpmProcessor> sp_;
  std::vector<int32_t> special_ids_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> SentencePieceTokenizerFromModel(
    const std::string& serialized) {
  std::string error;
  std::unique_ptr<SpmProcessor> sp = SpmProcessor::Load(serialized, &error);
  if (sp == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer.model: not a SentencePiece model: ", error));
  }
  if (sp->size() <= 0) {
    return absl::InvalidArgumentError("tokenizer.model: empty vocabulary");
  }
  return std::unique_ptr<Tokenizer>(new SentencePieceTokenizer(std::move(sp)));
}

}  // namespace tpserve
