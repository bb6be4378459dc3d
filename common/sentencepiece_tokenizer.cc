#include "common/sentencepiece_tokenizer.h"

#include "absl/strings/str_cat.h"
#include "common/vocab_tokenizer.h"
#include "sentencepiece/model.pb.h"

namespace tpserve {

absl::StatusOr<std::unique_ptr<Tokenizer>> SentencePieceTokenizerFromModel(
    const std::string& serialized) {
  sentencepiece::ModelProto model;
  if (serialized.size() > (64u << 20) || !model.ParseFromString(serialized)) {
    return absl::InvalidArgumentError(
        "tokenizer.model: not a SentencePiece model (protobuf parse failed)");
  }
  const auto& trainer = model.trainer_spec();
  const auto& normalizer = model.normalizer_spec();
  if (trainer.model_type() != sentencepiece::TrainerSpec::BPE) {
    return absl::UnimplementedError(absl::StrCat(
        "tokenizer.model: model type ",
        sentencepiece::TrainerSpec::ModelType_Name(trainer.model_type()),
        " is not supported (Llama-family models use BPE)"));
  }
  // Normalization rules other than identity (e.g. nmt_nfkc) rewrite text in
  // ways we do not reproduce; refuse rather than tokenize differently.
  if ((!normalizer.name().empty() && normalizer.name() != "identity") ||
      !normalizer.precompiled_charsmap().empty() ||
      normalizer.remove_extra_whitespaces() ||
      !normalizer.escape_whitespaces() ||
      trainer.treat_whitespace_as_suffix()) {
    return absl::UnimplementedError(absl::StrCat(
        "tokenizer.model: normalizer '", normalizer.name(),
        "' with these options is not supported (Llama-family models use "
        "identity, no whitespace removal)"));
  }
  const int n = model.pieces_size();
  if (n == 0 || n > (1 << 22)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer.model: vocabulary of ", n, " pieces"));
  }
  Vocab vocab;
  vocab.kind = Vocab::Kind::kSpm;
  vocab.add_space_prefix = normalizer.add_dummy_prefix();
  vocab.tokens.reserve(n);
  vocab.scores.reserve(n);
  vocab.types.reserve(n);
  for (const auto& p : model.pieces()) {
    vocab.tokens.push_back(p.piece());
    vocab.scores.push_back(p.score());
    vocab.types.push_back(static_cast<TokenType>(p.type()));
  }
  auto id_or_none = [n](int id) { return id >= 0 && id < n ? id : -1; };
  vocab.unk_id = id_or_none(trainer.unk_id());
  const int32_t bos = id_or_none(trainer.bos_id());
  const int32_t eos = id_or_none(trainer.eos_id());
  // Llama 2 prompts start with BOS.
  return VocabTokenizer::Create(std::move(vocab), bos, eos,
                                /*add_bos_default=*/bos >= 0, {});
}

}  // namespace tpserve
