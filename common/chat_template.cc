#include "common/chat_template.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tpserve {
namespace {

absl::Status CheckRoles(absl::Span<const ChatMessage> messages) {
  if (messages.empty()) {
    return absl::InvalidArgumentError("chat: no messages");
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& r = messages[i].role;
    if (r != "system" && r != "user" && r != "assistant") {
      return absl::InvalidArgumentError(
          absl::StrCat("chat: message ", i, " has role '", r,
                       "'; roles are system, user and assistant"));
    }
    if (r == "system" && i != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "chat: message ", i, " is a system message; only the first may be"));
    }
  }
  return absl::OkStatus();
}

// SmolLM2's template inserts this system turn when the conversation has
// none; it is a literal in the template source.
std::string DefaultSystemOf(absl::string_view source) {
  constexpr absl::string_view kOpen = "<|im_start|>system\n";
  const size_t open = source.find(kOpen);
  if (open == absl::string_view::npos ||
      !absl::StrContains(source, "!= 'system'")) {
    return "";
  }
  const size_t begin = open + kOpen.size();
  const size_t end = source.find("<|im_end|>", begin);
  if (end == absl::string_view::npos) return "";
  return std::string(source.substr(begin, end - begin));
}

}  // namespace

absl::StatusOr<ChatTemplate> ChatTemplate::FromJinja(absl::string_view source,
                                                     std::string bos,
                                                     std::string eos) {
  if (absl::StrContains(source, "<|im_start|>")) {
    ChatTemplate t(Family::kChatMl, std::move(bos), std::move(eos));
    t.default_system_ = DefaultSystemOf(source);
    return t;
  }
  if (absl::StrContains(source, "<|start_header_id|>") &&
      absl::StrContains(source, "<|eot_id|>")) {
    return ChatTemplate(Family::kLlama3, std::move(bos), std::move(eos));
  }
  if (absl::StrContains(source, "[INST]") &&
      absl::StrContains(source, "[/INST]")) {
    return ChatTemplate(Family::kLlama2, std::move(bos), std::move(eos));
  }
  return absl::InvalidArgumentError(
      "chat: the model's chat template is not one tpserve recognises "
      "(supported families: chatml, llama3, llama2); choose one by name, "
      "e.g. --chat-template chatml, or send a plain prompt");
}

absl::StatusOr<ChatTemplate> ChatTemplate::FromName(absl::string_view name,
                                                    std::string bos,
                                                    std::string eos) {
  if (name == "chatml") {
    return ChatTemplate(Family::kChatMl, std::move(bos), std::move(eos));
  }
  if (name == "llama3") {
    return ChatTemplate(Family::kLlama3, std::move(bos), std::move(eos));
  }
  if (name == "llama2") {
    return ChatTemplate(Family::kLlama2, std::move(bos), std::move(eos));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("chat: unknown chat template '", name,
                   "'; supported: chatml, llama3, llama2"));
}

absl::string_view ChatTemplate::name() const {
  switch (family_) {
    case Family::kChatMl:
      return "chatml";
    case Family::kLlama3:
      return "llama3";
    case Family::kLlama2:
      return "llama2";
  }
  return "";
}

absl::StatusOr<std::string> ChatTemplate::Apply(
    absl::Span<const ChatMessage> messages, bool add_generation_prompt) const {
  if (absl::Status s = CheckRoles(messages); !s.ok()) return s;
  std::string out;
  switch (family_) {
    case Family::kChatMl: {
      if (!default_system_.empty() && messages[0].role != "system") {
        absl::StrAppend(&out, "<|im_start|>system\n", default_system_,
                        "<|im_end|>\n");
      }
      for (const ChatMessage& m : messages) {
        absl::StrAppend(&out, "<|im_start|>", m.role, "\n", m.content,
                        "<|im_end|>\n");
      }
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      return out;
    }
    case Family::kLlama3: {
      // Meta's template: BOS once, contents trimmed.
      out = bos_;
      for (const ChatMessage& m : messages) {
        absl::StrAppend(&out, "<|start_header_id|>", m.role,
                        "<|end_header_id|>\n\n",
                        absl::StripAsciiWhitespace(m.content), "<|eot_id|>");
      }
      if (add_generation_prompt) {
        out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      }
      return out;
    }
    case Family::kLlama2: {
      // Meta's template: the system prompt folds into the first user turn;
      // turns must alternate user/assistant starting with user.
      size_t first = 0;
      std::string system;
      if (messages[0].role == "system") {
        system = messages[0].content;
        first = 1;
      }
      for (size_t i = first; i < messages.size(); ++i) {
        const ChatMessage& m = messages[i];
        const bool expect_user = (i - first) % 2 == 0;
        if ((m.role == "user") != expect_user) {
          return absl::InvalidArgumentError(
              "chat: Llama 2 conversations must alternate "
              "user/assistant/user/... after an optional system message");
        }
        std::string content = m.content;
        if (i == first && first == 1) {
          content =
              absl::StrCat("<<SYS>>\n", system, "\n<</SYS>>\n\n", content);
        }
        if (m.role == "user") {
          absl::StrAppend(&out, bos_, "[INST] ",
                          absl::StripAsciiWhitespace(content), " [/INST]");
        } else {
          absl::StrAppend(&out, " ", absl::StripAsciiWhitespace(content), " ",
                          eos_);
        }
      }
      // Llama 2's template has no generation prompt: the reply follows
      // "[/INST]" directly.
      return out;
    }
  }
  return absl::InternalError("chat: unknown template family");
}

}  // namespace tpserve
