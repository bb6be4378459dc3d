// Chat prompt formats, chosen from a model's `tokenizer.chat_template`.
//
// Models ship their prompt format as a Jinja template. Rather than run
// arbitrary Jinja (a sandboxing and correctness problem of its own), we
// recognise the template families we serve and render them in C++:
// ChatML (SmolLM2, Qwen), Llama 3, and Llama 2. An unrecognised template is
// a clear error naming the supported families, never a silent guess. The
// renderers are checked against jinja2 rendering the real templates
// (scripts/make_chat_golden.py). A Jinja engine can later slot in behind
// the same `Apply` interface.
#ifndef TPSERVE_COMMON_CHAT_TEMPLATE_H_
#define TPSERVE_COMMON_CHAT_TEMPLATE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace tpserve {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant".
  std::string content;
};

class ChatTemplate {
 public:
  enum class Family { kChatMl, kLlama3, kLlama2 };

  // Recognises the family of a Jinja template source. `bos`/`eos` are the
  // texts of the model's BOS/EOS tokens, which Llama templates emit.
  static absl::StatusOr<ChatTemplate> FromJinja(absl::string_view source,
                                                std::string bos,
                                                std::string eos);
  // By name: "chatml", "llama3", "llama2" (for models without a template).
  static absl::StatusOr<ChatTemplate> FromName(absl::string_view name,
                                               std::string bos,
                                               std::string eos);

  // The prompt text for `messages`; with `add_generation_prompt` it ends
  // where the assistant's reply begins. Tokenize it with special-token
  // parsing on and without adding BOS (the template places it).
  absl::StatusOr<std::string> Apply(absl::Span<const ChatMessage> messages,
                                    bool add_generation_prompt) const;

  Family family() const { return family_; }
  absl::string_view name() const;

 private:
  ChatTemplate(Family family, std::string bos, std::string eos)
      : family_(family), bos_(std::move(bos)), eos_(std::move(eos)) {}

  Family family_;
  std::string bos_, eos_;
  // ChatML variants (SmolLM2) insert a system message when none is given.
  std::string default_system_;
};

}  // namespace tpserve

#endif  // TPSERVE_COMMON_CHAT_TEMPLATE_H_
