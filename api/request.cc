#include "api/request.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/field_error.h"
#include "common/json_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/unicode.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/unknown_field_set.h"

namespace tpserve {
namespace {

using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Message;
using ::google::protobuf::Reflection;

constexpr float kMaxLogitBias = 100.0f;

// Untrusted bytes quoted into an error message: escaped (no control
// characters or invalid UTF-8 reach logs) and cut short.
std::string Quote(absl::string_view s) {
  constexpr size_t kMax = 64;
  std::string out = absl::CHexEscape(s.substr(0, kMax));
  if (s.size() > kMax) out += "...";
  return absl::StrCat("\"", out, "\"");
}

std::mt19937_64& Rng() {
  // Per thread, so concurrent requests need no lock; seeded from the OS so
  // ids and seeds differ across processes and restarts.
  thread_local std::mt19937_64 rng = [] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }();
  return rng;
}

// Fails on the first message (depth first) holding fields this server's
// schema does not know: a newer client relying on such a field would
// otherwise get silently different behaviour.
absl::Status CheckNoUnknownFieldsAt(const Message& msg,
                                    const std::string& path) {
  const Reflection* reflection = msg.GetReflection();
  const auto& unknown = reflection->GetUnknownFields(msg);
  if (!unknown.empty()) {
    std::string message = absl::StrCat(
        path.empty() ? "the request" : path, " has a field this server does ",
        "not know (number ", unknown.field(0).number(),
        "); the client may be newer than the server");
    if (path.empty()) return absl::InvalidArgumentError(message);
    return FieldError(path, message);
  }
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(msg, &fields);
  for (const FieldDescriptor* field : fields) {
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    const std::string name =
        path.empty() ? field->name() : absl::StrCat(path, ".", field->name());
    if (field->is_map()) {
      // An entry's own schema (key, value) never gains fields, and the
      // parser drops unknown fields inside one; only message values can
      // hold any (none of ours today: logit_bias maps to floats).
      const FieldDescriptor* value = field->message_type()->map_value();
      if (value->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
      const int n = reflection->FieldSize(msg, field);
      for (int i = 0; i < n; ++i) {
        const Message& entry = reflection->GetRepeatedMessage(msg, field, i);
        absl::Status s = CheckNoUnknownFieldsAt(
            entry.GetReflection()->GetMessage(entry, value),
            absl::StrCat(name, "[", i, "]"));
        if (!s.ok()) return s;
      }
    } else if (field->is_repeated()) {
      const int n = reflection->FieldSize(msg, field);
      for (int i = 0; i < n; ++i) {
        absl::Status s = CheckNoUnknownFieldsAt(
            reflection->GetRepeatedMessage(msg, field, i),
            absl::StrCat(name, "[", i, "]"));
        if (!s.ok()) return s;
      }
    } else {
      absl::Status s =
          CheckNoUnknownFieldsAt(reflection->GetMessage(msg, field), name);
      if (!s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ResolveRequestId(const std::string& given,
                                             const RequestLimits& limits) {
  if (given.empty()) {
    return absl::StrFormat("req-%016x", Rng()());
  }
  if (given.size() > limits.max_request_id_bytes) {
    return FieldError("request_id", absl::StrCat("request_id is ", given.size(),
                                                 " bytes, over the limit of ",
                                                 limits.max_request_id_bytes));
  }
  for (char c : given) {
    if (!absl::ascii_isgraph(static_cast<unsigned char>(c))) {
      return FieldError(
          "request_id",
          absl::StrCat(
              "request_id must be printable ASCII without spaces, got ",
              Quote(given)));
    }
  }
  return given;
}

absl::StatusOr<SamplingParams> ResolveSampling(const v1::SamplingParameters& s,
                                               const RequestLimits& limits) {
  SamplingParams p;
  if (s.has_temperature()) p.temperature = s.temperature();
  // ValidateSamplingParams accepts any top_k >= 0; the API bounds it by the
  // vocabulary so a typo'd huge value is an error, not silently "all".
  if (s.top_k() < 0 || s.top_k() > limits.vocab_size) {
    return FieldError(
        "sampling.top_k",
        absl::StrCat("sampling.top_k must be in [0, ", limits.vocab_size,
                     "] (0 = off), got ", s.top_k()));
  }
  p.top_k = s.top_k();
  if (s.has_top_p()) p.top_p = s.top_p();
  p.min_p = s.min_p();
  if (s.has_repetition_penalty()) p.repetition_penalty = s.repetition_penalty();
  p.presence_penalty = s.presence_penalty();
  p.frequency_penalty = s.frequency_penalty();
  if (s.logit_bias_size() > limits.max_logit_bias) {
    return FieldError(
        "sampling.logit_bias",
        absl::StrCat("sampling.logit_bias has ", s.logit_bias_size(),
                     " entries, over the limit of ", limits.max_logit_bias));
  }
  p.logit_bias.reserve(s.logit_bias_size());
  for (const auto& [id, bias] : s.logit_bias()) {
    if (id < 0 || id >= limits.vocab_size) {
      return FieldError(
          "sampling.logit_bias",
          absl::StrCat("sampling.logit_bias key ", id,
                       " is not a token id in [0, ", limits.vocab_size, ")"));
    }
    if (!std::isfinite(bias) || bias < -kMaxLogitBias || bias > kMaxLogitBias) {
      const std::string field = absl::StrCat("sampling.logit_bias[", id, "]");
      return FieldError(
          field, absl::StrCat(field, " must be finite and in [-100, 100], got ",
                              bias));
    }
    p.logit_bias.emplace_back(id, bias);
  }
  // Map iteration order is unspecified; sorted, the resolved request is the
  // same however the client's library serialized it.
  std::sort(p.logit_bias.begin(), p.logit_bias.end());
  p.has_seed = true;
  p.seed = s.has_seed() ? s.seed() : Rng()();
  p.top_logprobs = s.top_logprobs();
  absl::Status status = ValidateSamplingParams(p, limits.vocab_size);
  if (!status.ok()) return PrefixField("sampling.", status);
  return p;
}

absl::Status CheckStops(const v1::GenerateRequest& request,
                        const RequestLimits& limits) {
  if (request.stop_size() > limits.max_stop_strings) {
    return FieldError("stop", absl::StrCat("stop has ", request.stop_size(),
                                           " strings, over the limit of ",
                                           limits.max_stop_strings));
  }
  for (int i = 0; i < request.stop_size(); ++i) {
    const std::string& s = request.stop(i);
    const std::string field = absl::StrCat("stop[", i, "]");
    if (s.empty() || s.size() > limits.max_stop_bytes) {
      return FieldError(
          field, absl::StrCat(field, " must be 1 to ", limits.max_stop_bytes,
                              " bytes, got ", s.size()));
    }
    if (!IsValidUtf8(s)) {
      return FieldError(field, absl::StrCat(field, " is not valid UTF-8"));
    }
  }
  if (request.stop_token_ids_size() > limits.max_stop_token_ids) {
    return FieldError(
        "stop_token_ids",
        absl::StrCat("stop_token_ids has ", request.stop_token_ids_size(),
                     " ids, over the limit of ", limits.max_stop_token_ids));
  }
  for (int i = 0; i < request.stop_token_ids_size(); ++i) {
    const int32_t id = request.stop_token_ids(i);
    if (id < 0 || id >= limits.vocab_size) {
      const std::string field = absl::StrCat("stop_token_ids[", i, "]");
      return FieldError(
          field, absl::StrCat(field, " = ", id, " is not a token id in [0, ",
                              limits.vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

// Tokens that only special-token parsing produces from text (the tokenizer
// turns user-defined tokens into ids even in plain text, so those are text
// as far as a prompt is concerned).
bool IsControl(const Tokenizer& tokenizer, int32_t id) {
  const TokenType type = tokenizer.token_type(id);
  return type == TokenType::kControl || type == TokenType::kUnknown;
}

std::vector<int32_t> ControlTokens(const Tokenizer& tokenizer,
                                   const std::vector<int32_t>& ids) {
  std::vector<int32_t> out;
  for (int32_t id : ids) {
    if (IsControl(tokenizer, id)) out.push_back(id);
  }
  return out;
}

absl::StatusOr<std::vector<int32_t>> TokenizeText(const std::string& text,
                                                  const Tokenizer& tokenizer,
                                                  const RequestLimits& limits) {
  if (text.empty()) {
    return FieldError("text", "text must not be empty");
  }
  if (text.size() > limits.max_prompt_bytes) {
    return FieldError("text", absl::StrCat("text is ", text.size(),
                                           " bytes, over the limit of ",
                                           limits.max_prompt_bytes));
  }
  if (!IsValidUtf8(text)) {
    return FieldError("text", "text is not valid UTF-8");
  }
  EncodeOptions options;
  options.add_bos = tokenizer.add_bos_by_default();
  options.parse_special = false;  // Control-token text stays plain text.
  auto ids = tokenizer.Encode(text, options);
  if (!ids.ok()) {
    return FieldError("text", absl::StrCat("text: ", ids.status().message()));
  }
  return ids;
}

// Roles are the template's business (it refuses what it does not know),
// but they are printed into the prompt: a short identifier, no markup.
bool IsValidRole(absl::string_view role) {
  if (role.empty() || role.size() > 32) return false;
  for (char c : role) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '-') return false;
  }
  return true;
}

// The conversation of `chat_messages` as the template takes it, and the
// text fields of it that come from users (checked for control tokens).
struct ChatFields {
  ChatPrompt prompt;
  // (field path, text) of every string the template may print.
  std::vector<std::pair<std::string, std::string>> texts;
};

absl::StatusOr<ChatFields> ReadChat(const v1::ChatMessages& chat_messages,
                                    const RequestLimits& limits) {
  const int n = chat_messages.messages_size();
  if (n == 0) {
    return FieldError("chat.messages", "chat.messages must not be empty");
  }
  if (n > limits.max_chat_messages) {
    return FieldError(
        "chat.messages",
        absl::StrCat("chat.messages has ", n, " messages, over the limit of ",
                     limits.max_chat_messages));
  }
  ChatFields out;
  size_t total = 0;
  auto text = [&](std::string field, const std::string& value) -> absl::Status {
    if (!IsValidUtf8(value)) {
      return FieldError(field, absl::StrCat(field, " is not valid UTF-8"));
    }
    total += value.size();
    if (total > limits.max_prompt_bytes) {
      // Named "chat" (the whole conversation), the message says where.
      return FieldError(
          "chat",
          absl::StrCat("chat: the conversation exceeds the limit of ",
                       limits.max_prompt_bytes, " bytes (at ", field, ")"));
    }
    if (!value.empty()) out.texts.emplace_back(std::move(field), value);
    return absl::OkStatus();
  };
  // JSON fields (tools, kwargs, tool call arguments) reach the prompt as
  // their decoded strings (tojson writes non-ASCII as is), so "\u003c|..."
  // is checked as "<|...": every string key and value is a text of its own.
  auto json_texts = [&](const std::string& field, const std::string& value) {
    if (value.empty()) return;
    absl::StatusOr<nlohmann::json> doc =
        ParseUntrustedJson(value, field, JsonLimits());
    if (!doc.ok()) return;  // Used as text, or refused by the template.
    std::vector<const nlohmann::json*> stack = {&*doc};
    while (!stack.empty()) {
      const nlohmann::json* v = stack.back();
      stack.pop_back();
      if (v->is_string()) {
        out.texts.emplace_back(field, v->get<std::string>());
      } else if (v->is_object()) {
        for (auto it = v->begin(); it != v->end(); ++it) {
          out.texts.emplace_back(field, it.key());
          stack.push_back(&it.value());
        }
      } else if (v->is_array()) {
        for (const nlohmann::json& item : *v) stack.push_back(&item);
      }
    }
  };
  for (int i = 0; i < n; ++i) {
    const v1::ChatMessage& m = chat_messages.messages(i);
    const std::string at = absl::StrCat("chat.messages[", i, "]");
    if (!IsValidRole(m.role())) {
      return FieldError(
          at + ".role",
          absl::StrCat(
              at,
              ".role must be 1-32 letters, digits, '_' or '-' (system, user, "
              "assistant, tool, ...), got ",
              Quote(m.role())));
    }
    ChatMessage msg;
    msg.role = m.role();
    TP_RETURN_IF_ERROR(text(at + ".content", m.content()));
    msg.content = m.content();
    TP_RETURN_IF_ERROR(text(at + ".reasoning_content", m.reasoning_content()));
    msg.reasoning_content = m.reasoning_content();
    TP_RETURN_IF_ERROR(text(at + ".name", m.name()));
    msg.name = m.name();
    TP_RETURN_IF_ERROR(text(at + ".tool_call_id", m.tool_call_id()));
    msg.tool_call_id = m.tool_call_id();
    if (m.tool_calls_size() > limits.max_tool_calls) {
      return FieldError(
          at + ".tool_calls",
          absl::StrCat(at, ".tool_calls has ", m.tool_calls_size(),
                       " calls, over the limit of ", limits.max_tool_calls));
    }
    for (int j = 0; j < m.tool_calls_size(); ++j) {
      const v1::ChatToolCall& c = m.tool_calls(j);
      const std::string call = absl::StrCat(at, ".tool_calls[", j, "]");
      TP_RETURN_IF_ERROR(text(call + ".id", c.id()));
      TP_RETURN_IF_ERROR(text(call + ".name", c.name()));
      TP_RETURN_IF_ERROR(text(call + ".arguments", c.arguments()));
      json_texts(call + ".arguments", c.arguments());
      msg.tool_calls.push_back({c.id(), c.name(), c.arguments()});
    }
    out.prompt.messages.push_back(std::move(msg));
  }
  TP_RETURN_IF_ERROR(text("chat.tools_json", chat_messages.tools_json()));
  json_texts("chat.tools_json", chat_messages.tools_json());
  out.prompt.tools_json = chat_messages.tools_json();
  TP_RETURN_IF_ERROR(text("chat.chat_template_kwargs_json",
                          chat_messages.chat_template_kwargs_json()));
  json_texts("chat.chat_template_kwargs_json",
             chat_messages.chat_template_kwargs_json());
  out.prompt.kwargs_json = chat_messages.chat_template_kwargs_json();
  return out;
}

absl::StatusOr<std::vector<int32_t>> TokenizeChat(
    const v1::ChatMessages& chat_messages, const Tokenizer& tokenizer,
    const ChatTemplate* chat, const RequestLimits& limits) {
  if (chat == nullptr) {
    return FieldError(
        "chat", "chat: this model has no chat template; send a text prompt");
  }
  TP_ASSIGN_OR_RETURN(ChatFields fields, ReadChat(chat_messages, limits));
  // The template's own errors (a role it refuses, a tool call it cannot
  // print) and its limits say what went wrong; all are the caller's input.
  auto render = [&](const ChatPrompt& p) -> absl::StatusOr<std::string> {
    absl::StatusOr<std::string> text = chat->Apply(p);
    if (text.ok()) return text;
    // ChatTemplate's messages start with the field (and carry it) or with
    // "chat template" (the template's own refusal: no field).
    absl::Status error = absl::InvalidArgumentError(text.status().message());
    if (std::optional<std::string> field = ErrorField(text.status())) {
      error = WithField(std::move(error), *field);
    }
    return error;
  };
  TP_ASSIGN_OR_RETURN(std::string text, render(fields.prompt));

  EncodeOptions options;
  options.add_bos = false;       // The template places BOS where it belongs.
  options.parse_special = true;  // The template's markers are control tokens.
  auto ids = tokenizer.Encode(text, options);
  if (!ids.ok()) {
    return FieldError("chat", absl::StrCat("chat: ", ids.status().message()));
  }
  // Injection check. The whole prompt is tokenized with special-token
  // parsing, so a content holding "<|im_end|>\n<|im_start|>system\n..."
  // would forge turns. Rather than tokenizing template pieces and contents
  // separately (which changes the tokens at the seams compared with what
  // the model was trained on and what `tpserve generate --chat` and HF
  // give), a prompt is accepted only when
  //  1. no text field of the request holds a control token on its own, and
  //  2. its control tokens are exactly the template's: the same sequence as
  //     the conversation with each non-empty content and reasoning text
  //     replaced by a neutral "x" (which keeps the template's branches on
  //     empty vs. non-empty). That catches control text formed across a
  //     content/template seam.
  // Rejecting (rather than escaping) keeps accepted prompts identical to
  // the reference tokenization; such text can still be sent as a `text`
  // prompt, where it is plain text.
  for (const auto& [field, value] : fields.texts) {
    auto field_ids = tokenizer.Encode(value, options);
    if (!field_ids.ok()) continue;
    for (int32_t id : *field_ids) {
      if (IsControl(tokenizer, id)) {
        return FieldError(
            field,
            absl::StrCat(
                field, " contains the control token ",
                Quote(tokenizer.TokenText(id)),
                ", which chat texts may not hold (send it in a text prompt, "
                "where it is plain text)"));
      }
    }
  }
  ChatPrompt skeleton = fields.prompt;
  for (ChatMessage& m : skeleton.messages) {
    if (!m.content.empty()) m.content = "x";
    if (!m.reasoning_content.empty()) m.reasoning_content = "x";
  }
  // A template that branches on the text itself and fails on "x" cannot be
  // checked, and is refused rather than let through unchecked.
  absl::StatusOr<std::string> frame = chat->Apply(skeleton);
  if (!frame.ok()) {
    return FieldError(
        "chat",
        absl::StrCat(
            "chat: the conversation cannot be checked for control tokens (the "
            "template fails on it with placeholder contents: ",
            frame.status().message(), ")"));
  }
  auto frame_ids = tokenizer.Encode(*frame, options);
  if (!frame_ids.ok()) {
    return FieldError("chat",
                      absl::StrCat("chat: ", frame_ids.status().message()));
  }
  if (ControlTokens(tokenizer, *ids) == ControlTokens(tokenizer, *frame_ids)) {
    return ids;
  }
  return FieldError(
      "chat.messages",
      "chat.messages: the contents combine with the chat template into "
      "control tokens, which chat contents may not form");
}

absl::Status NoRoomError(int64_t prompt_tokens, const RequestLimits& limits) {
  return FieldError(
      "prompt",
      absl::StrCat("prompt: ", prompt_tokens,
                   " tokens leave no room to generate in the ",
                   "model's context of ", limits.max_context, " tokens"));
}

}  // namespace

absl::Status CheckNoUnknownFields(const Message& message) {
  return CheckNoUnknownFieldsAt(message, "");
}

absl::StatusOr<PreparedRequest> PrepareRequest(
    const v1::GenerateRequest& request, const Tokenizer& tokenizer,
    const ChatTemplate* chat, const RequestLimits& limits) {
  // Our bug, not the client's, otherwise: the limits come from the model.
  TP_CHECK(limits.max_context > 0 && limits.vocab_size > 0)
      << "PrepareRequest: bad limits (context " << limits.max_context
      << ", vocab " << limits.vocab_size << ")";
  if (absl::Status s = CheckNoUnknownFields(request); !s.ok()) return s;

  PreparedRequest out;
  auto id = ResolveRequestId(request.request_id(), limits);
  if (!id.ok()) return id.status();
  out.request_id = std::move(*id);

  auto sampling = ResolveSampling(request.sampling(), limits);
  if (!sampling.ok()) return sampling.status();
  out.sampling = std::move(*sampling);
  out.logprobs =
      request.sampling().logprobs() || request.sampling().top_logprobs() > 0;

  if (absl::Status s = CheckStops(request, limits); !s.ok()) return s;
  out.stop.assign(request.stop().begin(), request.stop().end());
  for (int32_t id : request.stop_token_ids()) {
    if (std::find(out.stop_ids.begin(), out.stop_ids.end(), id) ==
        out.stop_ids.end()) {
      out.stop_ids.push_back(id);
    }
  }
  if (!request.ignore_eos()) {
    for (int32_t id : tokenizer.end_of_generation_ids()) {
      if (std::find(out.stop_ids.begin(), out.stop_ids.end(), id) ==
          out.stop_ids.end()) {
        out.stop_ids.push_back(id);
      }
    }
  }
  out.render_special = request.render_special_tokens();

  // Checked before tokenizing, which is the expensive part.
  if (request.max_tokens() < 0 || request.max_tokens() >= limits.max_context) {
    return FieldError(
        "max_tokens",
        absl::StrCat("max_tokens must be in [0, ", limits.max_context - 1,
                     "] (the model's context is ", limits.max_context,
                     " tokens; 0 = until it is full), got ",
                     request.max_tokens()));
  }

  switch (request.prompt_case()) {
    case v1::GenerateRequest::kText: {
      auto ids = TokenizeText(request.text(), tokenizer, limits);
      if (!ids.ok()) return ids.status();
      out.prompt = std::move(*ids);
      break;
    }
    case v1::GenerateRequest::kTokenIds: {
      const auto& ids = request.token_ids().ids();
      if (ids.empty()) {
        return FieldError("token_ids.ids", "token_ids.ids must not be empty");
      }
      if (ids.size() >= limits.max_context) {
        return NoRoomError(ids.size(), limits);
      }
      for (int i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || ids[i] >= limits.vocab_size) {
          const std::string field = absl::StrCat("token_ids.ids[", i, "]");
          return FieldError(field, absl::StrCat(field, " = ", ids[i],
                                                " is not a token id in [0, ",
                                                limits.vocab_size, ")"));
        }
      }
      out.prompt.assign(ids.begin(), ids.end());
      break;
    }
    case v1::GenerateRequest::kChat: {
      auto ids = TokenizeChat(request.chat(), tokenizer, chat, limits);
      if (!ids.ok()) return ids.status();
      out.prompt = std::move(*ids);
      break;
    }
    case v1::GenerateRequest::PROMPT_NOT_SET:
      return FieldError("prompt",
                        "prompt: one of text, token_ids or chat is required");
  }
  const int64_t prompt_tokens = static_cast<int64_t>(out.prompt.size());
  if (prompt_tokens == 0) {
    return FieldError("prompt",
                      "prompt: the prompt is empty after tokenization");
  }
  if (prompt_tokens >= limits.max_context) {
    return NoRoomError(prompt_tokens, limits);
  }
  if (request.max_tokens() == 0) {
    out.max_tokens = static_cast<int32_t>(
        std::min<int64_t>(limits.max_context - prompt_tokens,
                          std::numeric_limits<int32_t>::max()));
  } else if (prompt_tokens + request.max_tokens() > limits.max_context) {
    return FieldError(
        "max_tokens",
        absl::StrCat("max_tokens: the prompt's ", prompt_tokens,
                     " tokens + max_tokens ", request.max_tokens(),
                     " exceed the model's context of ", limits.max_context,
                     " tokens"));
  } else {
    out.max_tokens = request.max_tokens();
  }
  return out;
}

absl::StatusOr<std::vector<int32_t>> TokenizePrompt(
    const v1::TokenizeRequest& request, const Tokenizer& tokenizer,
    const ChatTemplate* chat, const RequestLimits& limits) {
  if (absl::Status s = CheckNoUnknownFields(request); !s.ok()) return s;
  absl::StatusOr<std::vector<int32_t>> ids;
  switch (request.prompt_case()) {
    case v1::TokenizeRequest::kText:
      ids = TokenizeText(request.text(), tokenizer, limits);
      break;
    case v1::TokenizeRequest::kChat:
      ids = TokenizeChat(request.chat(), tokenizer, chat, limits);
      break;
    case v1::TokenizeRequest::PROMPT_NOT_SET:
      return FieldError("prompt", "prompt: one of text or chat is required");
  }
  if (ids.ok() && ids->empty()) {
    return FieldError("prompt",
                      "prompt: the prompt is empty after tokenization");
  }
  return ids;
}

}  // namespace tpserve
