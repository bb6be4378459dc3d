// Finds and loads the tokenizer and chat template that come with a model:
// a GGUF file's metadata, or a Hugging Face folder's tokenizer.json
// (byte-level BPE) / tokenizer.model (SentencePiece) and
// tokenizer_config.json.
#ifndef TPSERVE_COMMON_MODEL_TOKENIZER_H_
#define TPSERVE_COMMON_MODEL_TOKENIZER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/chat_template.h"
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

// Named chat templates beside the default (tokenizer_config.json's list of
// {name, template}; GGUF's `tokenizer.chat_template.NAME`): the "tool_use"
// one, or NotFound.
absl::StatusOr<std::string> LoadToolUseChatTemplateSource(
    const GgufFile* gguf, const std::string& folder);

// The chat template prompts are rendered with: `flag` (--chat-template
// NAME|FILE) when set, else the model's own (with its tool_use variant);
// NotFound when the model has none. A template that does not parse is an
// InvalidArgument naming the line and construct. Special tokens come from
// `tokenizer`.
absl::StatusOr<ChatTemplate> LoadChatTemplate(const GgufFile* gguf,
                                              const std::string& folder,
                                              const std::string& flag,
                                              const Tokenizer& tokenizer);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_MODEL_TOKENIZER_H_
