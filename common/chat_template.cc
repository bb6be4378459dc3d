#include "common/chat_template.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/field_error.h"
#include "common/json_util.h"
#include "common/status_macros.h"

namespace tpserve {
namespace {

using jinja::Dict;
using jinja::Value;

// Built-in templates, as their model families ship them (jinja2 renders
// these sources in tests/golden/chat_templates.json).
struct Builtin {
  const char* name;
  const char* source;
};
constexpr Builtin kBuiltins[] = {
    {"chatml",
     "{% for message in messages %}{{ '<|im_start|>' + message['role'] + "
     "'\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
     "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
     "{% endif %}"},
    // Meta's Llama 3 Instruct template.
    {"llama3",
     "{% set loop_messages = messages %}{% for message in loop_messages %}"
     "{% set content = '<|start_header_id|>' + message['role'] + "
     "'<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}"
     "{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
     "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
     "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"},
    // Meta's Llama 2 chat template.
    {"llama2",
     "{% if messages[0]['role'] == 'system' %}"
     "{% set loop_messages = messages[1:] %}"
     "{% set system_message = messages[0]['content'] %}{% else %}"
     "{% set loop_messages = messages %}{% set system_message = false %}"
     "{% endif %}{% for message in loop_messages %}"
     "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
     "{{ raise_exception('Conversation roles must alternate "
     "user/assistant/user/assistant/...') }}{% endif %}"
     "{% if loop.index0 == 0 and system_message != false %}"
     "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + "
     "message['content'] %}{% else %}{% set content = message['content'] %}"
     "{% endif %}{% if message['role'] == 'user' %}"
     "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
     "{% elif message['role'] == 'assistant' %}"
     "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"},
};

// The variables transformers sets itself; chat_template_kwargs may not
// replace them.
constexpr const char* kReserved[] = {
    "messages",  "tools",     "add_generation_prompt",
    "bos_token", "eos_token", "unk_token",
    "pad_token", "documents"};

constexpr uint64_t kMaxJsonBytes = 1u << 20;

absl::StatusOr<nlohmann::ordered_json> ParseJsonField(absl::string_view text,
                                                      absl::string_view what) {
  JsonLimits limits;
  limits.max_bytes = kMaxJsonBytes;
  limits.max_values = 1u << 16;
  absl::StatusOr<nlohmann::ordered_json> out =
      ParseUntrustedOrderedJson(text, what, limits);
  // `what` is the field path; the message starts with it.
  if (!out.ok()) return WithField(out.status(), what);
  return out;
}

absl::StatusOr<Value> MessageValue(const ChatMessage& m, size_t index) {
  Dict d;
  d.Set("role", Value::String(m.role));
  d.Set("content", Value::String(m.content));
  if (!m.reasoning_content.empty()) {
    d.Set("reasoning_content", Value::String(m.reasoning_content));
  }
  if (!m.name.empty()) d.Set("name", Value::String(m.name));
  if (!m.tool_call_id.empty()) {
    d.Set("tool_call_id", Value::String(m.tool_call_id));
  }
  if (!m.tool_calls.empty()) {
    std::vector<Value> calls;
    for (size_t j = 0; j < m.tool_calls.size(); ++j) {
      const ChatToolCall& c = m.tool_calls[j];
      Value arguments = Value::String(c.arguments);
      if (!c.arguments.empty()) {
        // Hugging Face templates print arguments as a dict (`| tojson`);
        // OpenAI sends them as JSON text. Objects become dicts; text that
        // is not a JSON object stays text.
        auto parsed = ParseJsonField(
            c.arguments, absl::StrCat("messages[", index, "].tool_calls[", j,
                                      "].function.arguments"));
        if (parsed.ok() && parsed->is_object()) {
          arguments = Value::FromJson(*parsed);
        }
      }
      Dict function;
      function.Set("name", Value::String(c.name));
      function.Set("arguments", std::move(arguments));
      Dict call;
      if (!c.id.empty()) call.Set("id", Value::String(c.id));
      call.Set("type", Value::String("function"));
      call.Set("function", Value::MakeDict(std::move(function)));
      calls.push_back(Value::MakeDict(std::move(call)));
    }
    d.Set("tool_calls", Value::List(std::move(calls)));
  }
  return Value::MakeDict(std::move(d));
}

}  // namespace

absl::StatusOr<ChatTemplate> ChatTemplate::FromSource(absl::string_view source,
                                                      SpecialTokens tokens,
                                                      std::string name) {
  absl::StatusOr<jinja::Template> t = jinja::Template::Parse(source);
  if (!t.ok()) {
    return absl::Status(
        t.status().code(),
        absl::StrCat("chat template (", name, "): ", t.status().message()));
  }
  return ChatTemplate(std::move(*t), std::move(tokens), std::move(name));
}

absl::StatusOr<ChatTemplate> ChatTemplate::Builtin(absl::string_view name,
                                                   SpecialTokens tokens) {
  for (const auto& b : kBuiltins) {
    if (name == b.name) return FromSource(b.source, std::move(tokens), b.name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("chat: unknown chat template '", name,
                   "'; built-in: ", absl::StrJoin(BuiltinNames(), ", "),
                   ", or the path of a Jinja template file"));
}

absl::Status ChatTemplate::SetToolUseSource(absl::string_view source) {
  absl::StatusOr<jinja::Template> t = jinja::Template::Parse(source);
  if (!t.ok()) {
    return absl::Status(t.status().code(),
                        absl::StrCat("chat template (", name_,
                                     ", tool_use): ", t.status().message()));
  }
  tool_use_ = std::move(*t);
  return absl::OkStatus();
}

std::vector<std::string> ChatTemplate::BuiltinNames() {
  std::vector<std::string> names;
  for (const auto& b : kBuiltins) names.push_back(b.name);
  return names;
}

absl::StatusOr<ChatTemplate> ChatTemplate::FromFlag(const std::string& value,
                                                    SpecialTokens tokens) {
  for (const auto& b : kBuiltins) {
    if (value == b.name) return Builtin(value, std::move(tokens));
  }
  std::ifstream in(value, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--chat-template '", value, "' is neither a built-in template (",
        absl::StrJoin(BuiltinNames(), ", "), ") nor a readable file"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return FromSource(ss.str(), std::move(tokens), value);
}

absl::StatusOr<std::string> ChatTemplate::Apply(
    const ChatPrompt& prompt) const {
  if (prompt.messages.empty()) {
    return FieldError("chat", "chat: no messages");
  }
  Dict vars;
  std::vector<Value> messages;
  for (size_t i = 0; i < prompt.messages.size(); ++i) {
    TP_ASSIGN_OR_RETURN(Value m, MessageValue(prompt.messages[i], i));
    messages.push_back(std::move(m));
  }
  vars.Set("messages", Value::List(std::move(messages)));
  Value tools = Value::None();
  if (!prompt.tools_json.empty()) {
    TP_ASSIGN_OR_RETURN(nlohmann::ordered_json t,
                        ParseJsonField(prompt.tools_json, "chat.tools_json"));
    if (!t.is_array()) {
      return FieldError(
          "chat.tools_json",
          "chat.tools_json must be a JSON array of tool definitions");
    }
    if (!t.empty()) tools = Value::FromJson(t);
  }
  vars.Set("tools", tools);
  vars.Set("add_generation_prompt", Value::Bool(prompt.add_generation_prompt));
  vars.Set("bos_token", Value::String(tokens_.bos));
  vars.Set("eos_token", Value::String(tokens_.eos));
  if (!tokens_.unk.empty()) vars.Set("unk_token", Value::String(tokens_.unk));
  if (!tokens_.pad.empty()) vars.Set("pad_token", Value::String(tokens_.pad));
  if (!prompt.kwargs_json.empty()) {
    TP_ASSIGN_OR_RETURN(
        nlohmann::ordered_json kw,
        ParseJsonField(prompt.kwargs_json, "chat.chat_template_kwargs_json"));
    if (!kw.is_object()) {
      return FieldError("chat.chat_template_kwargs_json",
                        "chat.chat_template_kwargs_json must be a JSON object");
    }
    for (const auto& [key, value] : kw.items()) {
      for (const char* r : kReserved) {
        if (key == r) {
          return FieldError(
              "chat.chat_template_kwargs_json",
              absl::StrCat("chat.chat_template_kwargs_json may not set '", key,
                           "' (it comes from the request and the model)"));
        }
      }
      vars.Set(key, Value::FromJson(value));
    }
  }
  jinja::RenderOptions options;
  options.limits = limits_;
  options.now = now_;
  options.time_zone = zone_;
  const jinja::Template& t =
      tool_use_.has_value() && !tools.is_none() ? *tool_use_ : template_;
  absl::StatusOr<std::string> text = t.Render(vars, options);
  if (!text.ok()) {
    return absl::Status(
        text.status().code(),
        absl::StrCat("chat template (", name_, "): ", text.status().message()));
  }
  return text;
}

}  // namespace tpserve
