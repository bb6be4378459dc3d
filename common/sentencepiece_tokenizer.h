// Tokenizer for a SentencePiece tokenizer.model (Llama 2 / TinyLlama
// Hugging Face folders). The model proto is parsed with the system protobuf
// (protos/sentencepiece/model.proto explains why not libsentencepiece) and
// tokenized by our SentencePiece-style BPE, the same one GGUF "llama"
// vocabularies use; tests compare it with the `sentencepiece` package.
#ifndef TPSERVE_COMMON_SENTENCEPIECE_TOKENIZER_H_
#define TPSERVE_COMMON_SENTENCEPIECE_TOKENIZER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/tokenizer.h"

namespace tpserve {

// `serialized` is the content of tokenizer.model (untrusted: a bad file is
// an InvalidArgument error; model kinds we cannot reproduce exactly, such
// as Unigram models or non-identity normalizers, are Unimplemented).
absl::StatusOr<std::unique_ptr<Tokenizer>> SentencePieceTokenizerFromModel(
    const std::string& serialized);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_SENTENCEPIECE_TOKENIZER_H_
