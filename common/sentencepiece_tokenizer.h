// Tokenizer over a SentencePiece tokenizer.model (Llama 2 / TinyLlama
// Hugging Face folders) through libsentencepiece.
#ifndef TPSERVE_COMMON_SENTENCEPIECE_TOKENIZER_H_
#define TPSERVE_COMMON_SENTENCEPIECE_TOKENIZER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/tokenizer.h"

namespace tpserve {

// `serialized` is the content of tokenizer.model (untrusted: a bad file is
// an InvalidArgument error).
absl::StatusOr<std::unique_ptr<Tokenizer>> SentencePieceTokenizerFromModel(
    const std::string& serialized);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_SENTENCEPIECE_TOKENIZER_H_
