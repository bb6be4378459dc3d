#include "api/openai_json.h"

#include <cctype>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/field_error.h"
#include "common/json_util.h"
#include "common/status_macros.h"

namespace tpserve::openai {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// `name` in `body`, or null when absent or JSON null: OpenAI clients send
// null for "not set", and OpenAI treats both alike.
const json* Get(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

// A refusal naming the parameter `field` (an OpenAI path such as
// "messages[0].content"), which ApiErrorFromStatus reports as `param`.
absl::Status Invalid(absl::string_view field, absl::string_view message) {
  return FieldError(field, message);
}

// `what` starts with the parameter `field` ("best_of other than n").
absl::Status Unsupported(absl::string_view field, absl::string_view what) {
  return Invalid(field, absl::StrCat(what, " is not supported by this server"));
}

absl::Status Unsupported(absl::string_view field) {
  return Unsupported(field, field);
}

// json_util's conversions name `field` in their messages; these also carry
// it as the error's field.
template <typename T>
absl::StatusOr<T> Named(absl::StatusOr<T> value, absl::string_view field) {
  if (!value.ok()) return WithField(value.status(), field);
  return value;
}

absl::StatusOr<double> ToDouble(const json& v, absl::string_view field) {
  return Named(JsonToDouble(v, field), field);
}

absl::StatusOr<bool> ToBool(const json& v, absl::string_view field) {
  return Named(JsonToBool(v, field), field);
}

absl::StatusOr<std::string> ToString(const json& v, absl::string_view field) {
  return Named(JsonToString(v, field), field);
}

// double -> float without undefined behaviour: out of float's range becomes
// infinity, which PrepareRequest refuses naming the field.
float ToFloat(double d) {
  constexpr double kMax = std::numeric_limits<float>::max();
  if (d > kMax) return std::numeric_limits<float>::infinity();
  if (d < -kMax) return -std::numeric_limits<float>::infinity();
  return static_cast<float>(d);
}

absl::StatusOr<std::optional<float>> OptFloat(const json& body,
                                              const char* name) {
  const json* v = Get(body, name);
  if (v == nullptr) return std::optional<float>();
  TP_ASSIGN_OR_RETURN(double d, ToDouble(*v, name));
  return std::optional<float>(ToFloat(d));
}

absl::StatusOr<int32_t> ToInt32(const json& v, absl::string_view name) {
  TP_ASSIGN_OR_RETURN(int64_t i, Named(JsonToInt(v, name), name));
  if (i < std::numeric_limits<int32_t>::min() ||
      i > std::numeric_limits<int32_t>::max()) {
    return Invalid(name, absl::StrCat(name, " = ", i, " is out of range"));
  }
  return static_cast<int32_t>(i);
}

absl::StatusOr<std::optional<int32_t>> OptInt32(const json& body,
                                                const char* name) {
  const json* v = Get(body, name);
  if (v == nullptr) return std::optional<int32_t>();
  TP_ASSIGN_OR_RETURN(int32_t i, ToInt32(*v, name));
  return std::optional<int32_t>(i);
}

absl::StatusOr<std::optional<bool>> OptBool(const json& body,
                                            const char* name) {
  const json* v = Get(body, name);
  if (v == nullptr) return std::optional<bool>();
  TP_ASSIGN_OR_RETURN(bool b, ToBool(*v, name));
  return std::optional<bool>(b);
}

// Sampling fields shared by both endpoints.
absl::Status ParseSampling(const json& body, v1::SamplingParameters* s) {
  TP_ASSIGN_OR_RETURN(auto temperature, OptFloat(body, "temperature"));
  if (temperature) s->set_temperature(*temperature);
  TP_ASSIGN_OR_RETURN(auto top_p, OptFloat(body, "top_p"));
  if (top_p) s->set_top_p(*top_p);
  TP_ASSIGN_OR_RETURN(auto top_k, OptInt32(body, "top_k"));
  // vLLM spells "off" -1; ours is 0. Other negatives reach PrepareRequest.
  if (top_k) s->set_top_k(*top_k == -1 ? 0 : *top_k);
  TP_ASSIGN_OR_RETURN(auto min_p, OptFloat(body, "min_p"));
  if (min_p) s->set_min_p(*min_p);
  TP_ASSIGN_OR_RETURN(auto presence, OptFloat(body, "presence_penalty"));
  if (presence) s->set_presence_penalty(*presence);
  TP_ASSIGN_OR_RETURN(auto frequency, OptFloat(body, "frequency_penalty"));
  if (frequency) s->set_frequency_penalty(*frequency);
  TP_ASSIGN_OR_RETURN(auto repetition, OptFloat(body, "repetition_penalty"));
  if (repetition) s->set_repetition_penalty(*repetition);

  if (const json* v = Get(body, "seed")) {
    // Any 64-bit integer: negative seeds are as good as positive ones and
    // wrap to the same uint64 every time.
    if (v->is_number_unsigned()) {
      s->set_seed(v->get<uint64_t>());
    } else if (v->is_number_integer()) {
      s->set_seed(static_cast<uint64_t>(v->get<int64_t>()));
    } else {
      return Invalid("seed", absl::StrCat("seed is ", JsonTypeName(*v),
                                          ", expected an integer"));
    }
  }

  if (const json* v = Get(body, "logit_bias")) {
    if (!v->is_object()) {
      return Invalid("logit_bias",
                     absl::StrCat("logit_bias is ", JsonTypeName(*v),
                                  ", expected an object of token id -> bias"));
    }
    auto* bias = s->mutable_logit_bias();
    for (auto it = v->begin(); it != v->end(); ++it) {
      int32_t id = 0;
      if (!absl::SimpleAtoi(it.key(), &id)) {
        return Invalid("logit_bias", absl::StrCat("logit_bias key \"",
                                                  EscapeForMessage(it.key()),
                                                  "\" is not a token id"));
      }
      TP_ASSIGN_OR_RETURN(
          double b,
          ToDouble(it.value(), absl::StrCat("logit_bias[\"", id, "\"]")));
      // "7" and "07" are one token; saying it twice is a client bug.
      if (!bias->insert({id, ToFloat(b)}).second) {
        return Invalid("logit_bias", absl::StrCat("logit_bias names token ", id,
                                                  " more than once"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ParseStop(const json& body, v1::GenerateRequest* r) {
  const json* v = Get(body, "stop");
  if (v == nullptr) return absl::OkStatus();
  if (v->is_string()) {
    r->add_stop(v->get<std::string>());
    return absl::OkStatus();
  }
  if (!v->is_array()) {
    return Invalid("stop",
                   absl::StrCat("stop is ", JsonTypeName(*v),
                                ", expected a string or a list of strings"));
  }
  for (size_t i = 0; i < v->size(); ++i) {
    TP_ASSIGN_OR_RETURN(std::string stop,
                        ToString((*v)[i], absl::StrCat("stop[", i, "]")));
    r->add_stop(std::move(stop));
  }
  return absl::OkStatus();
}

absl::Status ParseTokenIds(const json& list, absl::string_view name,
                           v1::TokenIds* out) {
  for (size_t i = 0; i < list.size(); ++i) {
    TP_ASSIGN_OR_RETURN(int32_t id,
                        ToInt32(list[i], absl::StrCat(name, "[", i, "]")));
    out->add_ids(id);
  }
  return absl::OkStatus();
}

// "prompt": a string, a list of strings, a list of token ids, or a list of
// lists of token ids; one GenerateRequest per prompt.
absl::Status ParsePrompts(const json& body, const v1::GenerateRequest& base,
                          std::vector<v1::GenerateRequest>* out) {
  const json* p = Get(body, "prompt");
  if (p == nullptr) return Invalid("prompt", "prompt is required");
  if (p->is_string()) {
    out->push_back(base);
    out->back().set_text(p->get<std::string>());
    return absl::OkStatus();
  }
  constexpr char kShapes[] =
      "expected a string, a list of strings, a list of token ids or a list of "
      "token id lists";
  if (!p->is_array()) {
    return Invalid("prompt",
                   absl::StrCat("prompt is ", JsonTypeName(*p), ", ", kShapes));
  }
  if (p->empty()) return Invalid("prompt", "prompt must not be an empty list");
  const json& first = p->front();
  if (first.is_number()) {
    out->push_back(base);
    return ParseTokenIds(*p, "prompt", out->back().mutable_token_ids());
  }
  for (size_t i = 0; i < p->size(); ++i) {
    const json& item = (*p)[i];
    out->push_back(base);
    if (first.is_string() && item.is_string()) {
      out->back().set_text(item.get<std::string>());
    } else if (first.is_array() && item.is_array()) {
      TP_RETURN_IF_ERROR(ParseTokenIds(item, absl::StrCat("prompt[", i, "]"),
                                       out->back().mutable_token_ids()));
    } else {
      return Invalid(absl::StrCat("prompt[", i, "]"),
                     absl::StrCat("prompt[", i, "] is ", JsonTypeName(item),
                                  " in a list starting with ",
                                  JsonTypeName(first), "; ", kShapes));
    }
  }
  return absl::OkStatus();
}

// "content": a string or a list of parts, of which only {"type": "text"}
// ones are supported; text parts are joined with newlines (as vLLM does).
absl::StatusOr<std::string> ParseContent(const json& content,
                                         const std::string& field) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) {
    return Invalid(field,
                   absl::StrCat(field, " is ", JsonTypeName(content),
                                ", expected a string or a list of parts"));
  }
  std::vector<std::string> texts;
  for (size_t j = 0; j < content.size(); ++j) {
    const std::string part_field = absl::StrCat(field, "[", j, "]");
    const json& part = content[j];
    if (!part.is_object()) {
      return Invalid(part_field,
                     absl::StrCat(part_field, " is ", JsonTypeName(part),
                                  ", expected an object"));
    }
    const json* type = Get(part, "type");
    if (type == nullptr)
      return Invalid(part_field + ".type", part_field + ".type is required");
    TP_ASSIGN_OR_RETURN(std::string t, ToString(*type, part_field + ".type"));
    if (t != "text") {
      return Invalid(part_field + ".type",
                     absl::StrCat(part_field, ".type \"", EscapeForMessage(t),
                                  "\" is not supported: only text parts are"));
    }
    const json* text = Get(part, "text");
    if (text == nullptr)
      return Invalid(part_field + ".text", part_field + ".text is required");
    TP_ASSIGN_OR_RETURN(std::string s, ToString(*text, part_field + ".text"));
    texts.push_back(std::move(s));
  }
  return absl::StrJoin(texts, "\n");
}

// An assistant turn's "tool_calls": [{"id", "type": "function",
// "function": {"name", "arguments"}}], arguments being JSON text (an
// object is accepted too and passed on as its JSON).
absl::Status ParseToolCalls(const json& calls, const std::string& field,
                            v1::ChatMessage* out) {
  if (!calls.is_array()) {
    return Invalid(field, absl::StrCat(field, " is ", JsonTypeName(calls),
                                       ", expected a list of tool calls"));
  }
  for (size_t j = 0; j < calls.size(); ++j) {
    const std::string at = absl::StrCat(field, "[", j, "]");
    const json& call = calls[j];
    if (!call.is_object()) {
      return Invalid(at, absl::StrCat(at, " is ", JsonTypeName(call),
                                      ", expected an object"));
    }
    v1::ChatToolCall* c = out->add_tool_calls();
    if (const json* id = Get(call, "id")) {
      TP_ASSIGN_OR_RETURN(*c->mutable_id(), ToString(*id, at + ".id"));
    }
    if (const json* type = Get(call, "type")) {
      TP_ASSIGN_OR_RETURN(std::string t, ToString(*type, at + ".type"));
      if (t != "function") {
        return Invalid(at + ".type",
                       absl::StrCat(at, ".type \"", EscapeForMessage(t),
                                    "\" is not supported: only function"));
      }
    }
    const json* function = Get(call, "function");
    if (function == nullptr || !function->is_object()) {
      return Invalid(at + ".function",
                     at + ".function is required (an object)");
    }
    const json* name = Get(*function, "name");
    if (name == nullptr)
      return Invalid(at + ".function.name", at + ".function.name is required");
    TP_ASSIGN_OR_RETURN(*c->mutable_name(),
                        ToString(*name, at + ".function.name"));
    if (const json* args = Get(*function, "arguments")) {
      if (args->is_string()) {
        c->set_arguments(args->get<std::string>());
      } else if (args->is_object()) {
        c->set_arguments(args->dump());
      } else {
        return Invalid(
            at + ".function.arguments",
            absl::StrCat(at, ".function.arguments is ", JsonTypeName(*args),
                         ", expected JSON text or an object"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ParseMessages(const json& body, v1::ChatMessages* out) {
  const json* m = Get(body, "messages");
  if (m == nullptr) return Invalid("messages", "messages is required");
  if (!m->is_array()) {
    return Invalid("messages", absl::StrCat("messages is ", JsonTypeName(*m),
                                            ", expected a list of messages"));
  }
  for (size_t i = 0; i < m->size(); ++i) {
    const std::string field = absl::StrCat("messages[", i, "]");
    const json& msg = (*m)[i];
    if (!msg.is_object()) {
      return Invalid(field, absl::StrCat(field, " is ", JsonTypeName(msg),
                                         ", expected an object"));
    }
    const json* role = Get(msg, "role");
    if (role == nullptr)
      return Invalid(field + ".role", field + ".role is required");
    TP_ASSIGN_OR_RETURN(std::string r, ToString(*role, field + ".role"));
    // OpenAI's newer name for the system prompt.
    if (r == "developer") r = "system";
    v1::ChatMessage* out_msg = out->add_messages();
    out_msg->set_role(std::move(r));
    for (const char* key : {"name", "tool_call_id", "reasoning_content"}) {
      const json* v = Get(msg, key);
      if (v == nullptr || v->is_null()) continue;
      TP_ASSIGN_OR_RETURN(std::string text,
                          ToString(*v, absl::StrCat(field, ".", key)));
      if (std::string(key) == "name") {
        out_msg->set_name(std::move(text));
      } else if (std::string(key) == "tool_call_id") {
        out_msg->set_tool_call_id(std::move(text));
      } else {
        out_msg->set_reasoning_content(std::move(text));
      }
    }
    if (const json* calls = Get(msg, "tool_calls");
        calls != nullptr && !calls->is_null()) {
      TP_RETURN_IF_ERROR(
          ParseToolCalls(*calls, field + ".tool_calls", out_msg));
    }
    const json* content = Get(msg, "content");
    if (content == nullptr || content->is_null()) {
      // An assistant turn that only called tools has no content.
      if (out_msg->role() == "assistant") continue;
      return Invalid(field + ".content", field + ".content is required");
    }
    TP_ASSIGN_OR_RETURN(std::string text,
                        ParseContent(*content, field + ".content"));
    out_msg->set_content(std::move(text));
  }
  // vLLM's and SGLang's extension: extra variables for the chat template.
  if (const json* kwargs = Get(body, "chat_template_kwargs");
      kwargs != nullptr && !kwargs->is_null()) {
    if (!kwargs->is_object()) {
      return Invalid(
          "chat_template_kwargs",
          absl::StrCat("chat_template_kwargs is ", JsonTypeName(*kwargs),
                       ", expected an object"));
    }
    out->set_chat_template_kwargs_json(kwargs->dump());
  }
  return absl::OkStatus();
}

// Features a client relies on that we do not have: refusing beats silently
// answering something else.
absl::Status RefuseUnsupported(const json& body, Endpoint endpoint) {
  if (endpoint == Endpoint::kCompletions) {
    TP_ASSIGN_OR_RETURN(auto echo, OptBool(body, "echo"));
    if (echo.value_or(false)) return Unsupported("echo");
    if (const json* v = Get(body, "suffix")) {
      TP_ASSIGN_OR_RETURN(std::string suffix, ToString(*v, "suffix"));
      if (!suffix.empty()) return Unsupported("suffix");
    }
  }
  for (const char* name : {"tools", "functions"}) {
    const json* v = Get(body, name);
    if (v != nullptr && !(v->is_array() && v->empty())) {
      return Unsupported(name);
    }
  }
  if (const json* v = Get(body, "response_format")) {
    const json* type = v->is_object() ? Get(*v, "type") : nullptr;
    if (type == nullptr || !type->is_string() ||
        type->get<std::string>() != "text") {
      return Unsupported("response_format",
                         "response_format other than {\"type\": \"text\"}");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ParsedRequest> ParseRequest(const json& body, Endpoint endpoint,
                                           const ParseLimits& limits) {
  if (!body.is_object()) {
    // Not one parameter: no field.
    return absl::InvalidArgumentError(absl::StrCat("the request body is ",
                                                   JsonTypeName(body),
                                                   ", expected a JSON object"));
  }
  ParsedRequest out;
  out.endpoint = endpoint;
  const bool chat = endpoint == Endpoint::kChatCompletions;
  if (const json* v = Get(body, "model")) {
    TP_ASSIGN_OR_RETURN(std::string model, ToString(*v, "model"));
    out.model = std::move(model);
  }
  TP_RETURN_IF_ERROR(RefuseUnsupported(body, endpoint));

  v1::GenerateRequest base;
  TP_RETURN_IF_ERROR(ParseSampling(body, base.mutable_sampling()));
  TP_RETURN_IF_ERROR(ParseStop(body, &base));
  if (const json* v = Get(body, "stop_token_ids")) {
    if (!v->is_array()) {
      return Invalid("stop_token_ids",
                     absl::StrCat("stop_token_ids is ", JsonTypeName(*v),
                                  ", expected a list of token ids"));
    }
    for (size_t i = 0; i < v->size(); ++i) {
      TP_ASSIGN_OR_RETURN(
          int32_t id,
          ToInt32((*v)[i], absl::StrCat("stop_token_ids[", i, "]")));
      base.add_stop_token_ids(id);
    }
  }
  TP_ASSIGN_OR_RETURN(auto ignore_eos, OptBool(body, "ignore_eos"));
  base.set_ignore_eos(ignore_eos.value_or(false));
  TP_ASSIGN_OR_RETURN(auto skip_special, OptBool(body, "skip_special_tokens"));
  base.set_render_special_tokens(!skip_special.value_or(true));

  // OpenAI's defaults: 16 tokens for completions, the rest of the context
  // for chat. max_completion_tokens is chat's newer name and wins.
  TP_ASSIGN_OR_RETURN(auto max_tokens, OptInt32(body, "max_tokens"));
  TP_ASSIGN_OR_RETURN(auto max_completion,
                      OptInt32(body, "max_completion_tokens"));
  base.set_max_tokens(
      max_completion.value_or(max_tokens.value_or(chat ? 0 : 16)));

  TP_ASSIGN_OR_RETURN(auto n, OptInt32(body, "n"));
  out.n = n.value_or(1);
  if (out.n < 1 || out.n > limits.max_n) {
    return Invalid(
        "n", absl::StrCat("n must be in [1, ", limits.max_n, "], got ", out.n));
  }
  if (const json* v = Get(body, "best_of")) {
    TP_ASSIGN_OR_RETURN(int32_t best_of, ToInt32(*v, "best_of"));
    if (best_of != out.n) return Unsupported("best_of", "best_of other than n");
  }

  TP_ASSIGN_OR_RETURN(auto stream, OptBool(body, "stream"));
  out.stream = stream.value_or(false);
  if (const json* v = Get(body, "stream_options")) {
    if (!v->is_object()) {
      return Invalid("stream_options",
                     absl::StrCat("stream_options is ", JsonTypeName(*v),
                                  ", expected an object"));
    }
    TP_ASSIGN_OR_RETURN(auto include_usage, OptBool(*v, "include_usage"));
    out.include_usage = include_usage.value_or(false);
  }

  v1::SamplingParameters* s = base.mutable_sampling();
  if (chat) {
    TP_ASSIGN_OR_RETURN(auto logprobs, OptBool(body, "logprobs"));
    TP_ASSIGN_OR_RETURN(auto top, OptInt32(body, "top_logprobs"));
    out.logprobs = logprobs.value_or(false);
    if (top && !out.logprobs) {
      return Invalid("top_logprobs",
                     "top_logprobs requires logprobs to be true");
    }
    out.top_logprobs = top.value_or(0);
  } else {
    // Completions: "logprobs": N asks for N alternatives (0: none).
    TP_ASSIGN_OR_RETURN(auto logprobs, OptInt32(body, "logprobs"));
    out.logprobs = logprobs.has_value();
    out.top_logprobs = logprobs.value_or(0);
  }
  s->set_logprobs(out.logprobs);
  s->set_top_logprobs(out.top_logprobs);

  if (chat) {
    out.prompts.push_back(base);
    TP_RETURN_IF_ERROR(ParseMessages(body, out.prompts.back().mutable_chat()));
  } else {
    TP_RETURN_IF_ERROR(ParsePrompts(body, base, &out.prompts));
  }
  const int64_t choices = static_cast<int64_t>(out.prompts.size()) * out.n;
  if (choices > limits.max_choices) {
    return Invalid(
        "n", absl::StrCat("n: ", out.prompts.size(), " prompt(s) x n = ", out.n,
                          " is ", choices, " completions, over the limit of ",
                          limits.max_choices));
  }
  return out;
}

}  // namespace tpserve::openai
