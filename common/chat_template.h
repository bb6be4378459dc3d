// Chat prompts, rendered by the model's own Jinja chat template.
//
// Models ship their prompt format as a Jinja template (GGUF
// `tokenizer.chat_template`, or tokenizer_config.json's `chat_template`),
// and tools, reasoning and multi-turn behaviour live in it. We run that
// template on our Jinja engine (common/jinja/) with the variables
// transformers' apply_chat_template gives it: `messages`, `tools`,
// `add_generation_prompt`, the special tokens (`bos_token`, `eos_token`,
// ...), and the caller's chat_template_kwargs (e.g. `enable_thinking`).
// The engine is checked byte for byte against Python jinja2 over the real
// templates of the models we serve (tests/chat_templates/README.md).
//
// Built-in templates (`chatml`, `llama3`, `llama2`) are for models without
// one; `--chat-template NAME|FILE` overrides the model's.
#ifndef TPSERVE_COMMON_CHAT_TEMPLATE_H_
#define TPSERVE_COMMON_CHAT_TEMPLATE_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/jinja/template.h"

namespace tpserve {

struct ChatToolCall {
  std::string id;
  std::string name;
  // JSON text (OpenAI's shape). An object is given to the template as a
  // dict, as Hugging Face templates expect (and vLLM does); anything else
  // stays a string.
  std::string arguments;
};

struct ChatMessage {
  ChatMessage() = default;
  ChatMessage(std::string r, std::string c)
      : role(std::move(r)), content(std::move(c)) {}

  std::string role;  // Any role the template accepts: system, user, tool...
  std::string content;
  std::string reasoning_content;  // Omitted from the message when empty.
  std::string name;               // Omitted when empty.
  std::string tool_call_id;       // Omitted when empty.
  std::vector<ChatToolCall> tool_calls;
};

struct ChatPrompt {
  std::vector<ChatMessage> messages;
  // JSON array of tool definitions (OpenAI's `tools`); empty: none (the
  // template sees `tools` as None).
  std::string tools_json;
  // JSON object of extra template variables, e.g. {"enable_thinking":
  // false}; empty: none. They cannot replace messages, tools or the
  // special tokens.
  std::string kwargs_json;
  bool add_generation_prompt = true;
};

// The texts of the model's special tokens, as templates see them.
struct SpecialTokens {
  std::string bos, eos, unk, pad;
};

class ChatTemplate {
 public:
  // A Jinja template's source; `name` says where it came from (for
  // messages). A template that does not parse is an error naming the line
  // and construct.
  static absl::StatusOr<ChatTemplate> FromSource(absl::string_view source,
                                                 SpecialTokens tokens,
                                                 std::string name);
  // A built-in template: "chatml", "llama3" or "llama2".
  static absl::StatusOr<ChatTemplate> Builtin(absl::string_view name,
                                              SpecialTokens tokens);
  // `--chat-template NAME|FILE`: a built-in name, else a file holding a
  // Jinja template.
  static absl::StatusOr<ChatTemplate> FromFlag(const std::string& value,
                                               SpecialTokens tokens);
  static std::vector<std::string> BuiltinNames();

  // Models that ship named templates (tokenizer_config.json's list, GGUF's
  // `tokenizer.chat_template.tool_use`) have a second one for prompts that
  // offer tools; transformers picks it then, and so does Apply.
  absl::Status SetToolUseSource(absl::string_view source);

  // The prompt text. Tokenize it with special-token parsing on and without
  // adding BOS (the template places it). Errors: InvalidArgument for a
  // conversation the template refuses (its raise_exception message) or
  // cannot render (naming the construct), ResourceExhausted past the
  // render limits.
  absl::StatusOr<std::string> Apply(const ChatPrompt& prompt) const;

  // Pins strftime_now() (for tests); the current local time when unset.
  void set_clock(absl::Time now, absl::TimeZone zone) {
    now_ = now;
    zone_ = zone;
  }

  // The render bounds (jinja::RenderLimits' defaults unless set).
  void set_limits(const jinja::RenderLimits& limits) { limits_ = limits; }

  const std::string& name() const { return name_; }

 private:
  ChatTemplate(jinja::Template t, SpecialTokens tokens, std::string name)
      : template_(std::move(t)),
        tokens_(std::move(tokens)),
        name_(std::move(name)) {}

  jinja::Template template_;
  std::optional<jinja::Template> tool_use_;
  SpecialTokens tokens_;
  std::string name_;
  jinja::RenderLimits limits_;
  std::optional<absl::Time> now_;
  absl::TimeZone zone_ = absl::LocalTimeZone();
};

}  // namespace tpserve

#endif  // TPSERVE_COMMON_CHAT_TEMPLATE_H_
