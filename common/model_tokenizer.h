// Finds and loads the tokenizer and chat template that come with a model:
// a GGUF file's metadata, or a Hugging Face folder's tokenizer.json
// (byte-level BPE) / tokenizer.model (SentencePiece) and
// tokenizer_config.json.
#ifndef TPSERVE_COMMON_MODEL_TOKENIZER_H_
#define TPSERVE_COMMON_MODEL_TOKENIZER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/tokenizer.h"

namespace tpserve {

class GgufFile;

// `path` is a .gguf file (vocabulary-only files work) or an HF folder.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(
    const std::string& path);

// The Jinja source of the model's chat template, or NotFound.
absl::StatusOr<std::string> LoadChatTemplateSource(const std::string& path);

// "gpt2, pre 'smollm'", "tokenizer.json", ... for display.
std::string DescribeTokenizerSource(const std::string& path);

// The same for a model already open: `gguf` when it is a GGUF file (no
// second open and validation), else nullptr and `folder` is the HF folder.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(
    const GgufFile* gguf, const std::string& folder);
absl::StatusOr<std::string> LoadChatTemplateSource(const GgufFile* gguf,
                                                   const std::string& folder);
std::string DescribeTokenizerSource(const GgufFile* gguf,
                                    const std::string& folder);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_MODEL_TOKENIZER_H_
