// OpenAI's responses, chunks and error objects, from the core's output
// (GenerationOutput's parts) and statuses; requests are openai_json.cc.
#include <cctype>
#include <cmath>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/openai_json.h"
#include "common/field_error.h"

namespace tpserve::openai {
namespace {

using nlohmann::ordered_json;
// OpenAI parameters, for ApiErrorFromStatus's `param`.
bool IsParam(absl::string_view name) {
  static const auto* const kParams =
      new std::set<std::string, std::less<>>{"best_of",
                                             "chat_template_kwargs",
                                             "echo",
                                             "frequency_penalty",
                                             "functions",
                                             "ignore_eos",
                                             "logit_bias",
                                             "logprobs",
                                             "max_completion_tokens",
                                             "max_tokens",
                                             "messages",
                                             "min_p",
                                             "model",
                                             "n",
                                             "presence_penalty",
                                             "prompt",
                                             "repetition_penalty",
                                             "response_format",
                                             "seed",
                                             "skip_special_tokens",
                                             "stop",
                                             "stop_token_ids",
                                             "stream",
                                             "stream_options",
                                             "suffix",
                                             "temperature",
                                             "tools",
                                             "top_k",
                                             "top_logprobs",
                                             "top_p"};
  return kParams->count(name) > 0;
}

double FiniteLogprob(float lp) {
  // JSON has no -inf (it would print as null, which clients reject); vLLM
  // sends this value for impossible tokens.
  return std::isfinite(lp) ? static_cast<double>(lp) : -9999.0;
}

ordered_json BytesJson(const std::string& bytes) {
  ordered_json out = ordered_json::array();
  for (char c : bytes) out.push_back(static_cast<unsigned char>(c));
  return out;
}

// Completions' legacy shape: parallel lists.
ordered_json CompletionLogprobs(absl::Span<const TokenLogprob> lps,
                                int text_offset, int top_logprobs,
                                const TokenBytes& token_bytes) {
  ordered_json tokens = ordered_json::array();
  ordered_json token_logprobs = ordered_json::array();
  ordered_json top = ordered_json::array();
  ordered_json offsets = ordered_json::array();
  int offset = text_offset;
  for (const TokenLogprob& lp : lps) {
    const std::string text = token_bytes(lp.token_id);
    tokens.push_back(text);
    token_logprobs.push_back(FiniteLogprob(lp.logprob));
    offsets.push_back(offset);
    offset += static_cast<int>(text.size());
    ordered_json alternatives = ordered_json::object();
    for (const auto& [top_id, top_logprob] : lp.top) {
      alternatives[token_bytes(top_id)] = FiniteLogprob(top_logprob);
    }
    top.push_back(std::move(alternatives));
  }
  ordered_json out;
  out["tokens"] = std::move(tokens);
  out["token_logprobs"] = std::move(token_logprobs);
  out["top_logprobs"] = top_logprobs > 0 ? std::move(top) : ordered_json();
  out["text_offset"] = std::move(offsets);
  return out;
}

// Chat's shape: one object per token with its alternatives.
ordered_json ChatLogprobs(absl::Span<const TokenLogprob> lps,
                          const TokenBytes& token_bytes) {
  ordered_json content = ordered_json::array();
  for (const TokenLogprob& lp : lps) {
    const std::string text = token_bytes(lp.token_id);
    ordered_json entry;
    entry["token"] = text;
    entry["logprob"] = FiniteLogprob(lp.logprob);
    entry["bytes"] = BytesJson(text);
    ordered_json top = ordered_json::array();
    for (const auto& [top_id, top_logprob] : lp.top) {
      const std::string alt = token_bytes(top_id);
      ordered_json a;
      a["token"] = alt;
      a["logprob"] = FiniteLogprob(top_logprob);
      a["bytes"] = BytesJson(alt);
      top.push_back(std::move(a));
    }
    entry["top_logprobs"] = std::move(top);
    content.push_back(std::move(entry));
  }
  ordered_json out;
  out["content"] = std::move(content);
  return out;
}

ordered_json Header(const ResponseMeta& meta, const char* object) {
  ordered_json out;
  out["id"] = meta.id;
  out["object"] = object;
  out["created"] = meta.created;
  out["model"] = meta.model;
  return out;
}

}  // namespace

namespace {

// A request field path (ErrorField) as the OpenAI client spelled it:
// PrepareRequest's proto paths are renamed ("sampling.temperature" ->
// "temperature", "chat.messages[2]" -> "messages[2]"); ParseRequest's are
// OpenAI's already and pass through.
std::string OpenAiPath(const std::string& path) {
  if (absl::StartsWith(path, "sampling.")) return path.substr(9);
  if (absl::StartsWith(path, "token_ids.ids")) {
    return "prompt" + path.substr(13);
  }
  if (path == "text" || path == "token_ids") return "prompt";
  if (absl::StartsWith(path, "chat.messages")) {
    return "messages" + path.substr(13);
  }
  if (path == "chat.chat_template_kwargs_json") return "chat_template_kwargs";
  if (path == "chat.tools_json") return "tools";
  if (path == "chat") return "messages";
  return path;
}

// Whether `message` starts with the whole of `path` (not "stop" of
// "stop_token_ids").
bool StartsWithPath(absl::string_view message, absl::string_view path) {
  if (path.empty() || !absl::StartsWith(message, path)) return false;
  if (message.size() == path.size()) return true;
  const unsigned char next = message[path.size()];
  return !std::isalnum(next) && next != '_';
}

}  // namespace

ApiError ApiErrorFromStatus(const absl::Status& status) {
  std::string message(status.message());
  // The field at fault, from the error's payload (common/field_error.h);
  // the message, which names it too, names it as the client did.
  std::string param;
  if (std::optional<std::string> field = ErrorField(status)) {
    const std::string renamed = OpenAiPath(*field);
    if (StartsWithPath(message, *field)) {
      message = renamed + message.substr(field->size());
    }
    param = renamed.substr(0, renamed.find_first_of(".["));
  }
  int http_status = 500;
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
      http_status = 400;
      break;
    case absl::StatusCode::kUnauthenticated:
      http_status = 401;
      break;
    case absl::StatusCode::kPermissionDenied:
      http_status = 403;
      break;
    case absl::StatusCode::kNotFound:
      http_status = 404;
      break;
    case absl::StatusCode::kResourceExhausted:
      http_status = 429;
      break;
    case absl::StatusCode::kUnavailable:
      http_status = 503;
      break;
    case absl::StatusCode::kDeadlineExceeded:
      http_status = 504;
      break;
    default:
      break;
  }
  return MakeApiError(http_status, std::move(message),
                      http_status == 400 && IsParam(param) ? param : "");
}

ApiError MakeApiError(int http_status, std::string message, std::string param,
                      std::string code) {
  ApiError e;
  e.http_status = http_status;
  e.message = std::move(message);
  e.param = std::move(param);
  e.code = std::move(code);
  if (http_status == 429) {
    e.type = "rate_limit_error";
    if (e.code.empty()) e.code = "rate_limit_exceeded";
  } else if (http_status >= 500) {
    e.type = "server_error";
    if (e.code.empty() && http_status == 503) e.code = "service_unavailable";
  } else {
    e.type = "invalid_request_error";
    if (e.code.empty() && http_status == 401) e.code = "invalid_api_key";
  }
  return e;
}

ordered_json ErrorJson(const ApiError& error) {
  ordered_json e;
  e["message"] = error.message;
  e["type"] = error.type;
  e["param"] = error.param.empty() ? ordered_json() : ordered_json(error.param);
  e["code"] = error.code.empty() ? ordered_json() : ordered_json(error.code);
  ordered_json out;
  out["error"] = std::move(e);
  return out;
}

std::string Dump(const ordered_json& value) {
  return value.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

std::string SseData(const ordered_json& value) {
  return absl::StrCat("data: ", Dump(value), "\n\n");
}

ordered_json UsageJson(int64_t prompt_tokens, int64_t completion_tokens) {
  ordered_json out;
  out["prompt_tokens"] = prompt_tokens;
  out["completion_tokens"] = completion_tokens;
  out["total_tokens"] = prompt_tokens + completion_tokens;
  return out;
}

ordered_json FinishReasonJson(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    default:
      return nullptr;
  }
}

ordered_json ResponseJson(const ResponseMeta& meta,
                          const std::vector<ChoiceResult>& choices,
                          const ordered_json& usage,
                          const TokenBytes& token_bytes) {
  const bool chat = meta.endpoint == Endpoint::kChatCompletions;
  ordered_json out = Header(meta, chat ? "chat.completion" : "text_completion");
  ordered_json list = ordered_json::array();
  for (const ChoiceResult& c : choices) {
    ordered_json choice;
    choice["index"] = c.index;
    if (chat) {
      ordered_json message;
      message["role"] = "assistant";
      message["content"] = c.text;
      choice["message"] = std::move(message);
    } else {
      choice["text"] = c.text;
    }
    if (!meta.logprobs) {
      choice["logprobs"] = nullptr;
    } else if (chat) {
      choice["logprobs"] = ChatLogprobs(c.logprobs, token_bytes);
    } else {
      choice["logprobs"] =
          CompletionLogprobs(c.logprobs, 0, meta.top_logprobs, token_bytes);
    }
    choice["finish_reason"] = FinishReasonJson(c.finish_reason);
    list.push_back(std::move(choice));
  }
  out["choices"] = std::move(list);
  out["usage"] = usage;
  return out;
}

ordered_json ChunkJson(const ResponseMeta& meta, const ChunkPart& part,
                       bool with_usage, const TokenBytes& token_bytes) {
  const bool chat = meta.endpoint == Endpoint::kChatCompletions;
  ordered_json out =
      Header(meta, chat ? "chat.completion.chunk" : "text_completion");
  ordered_json choice;
  choice["index"] = part.index;
  if (chat) {
    ordered_json delta = ordered_json::object();
    if (part.role) delta["role"] = "assistant";
    if (part.role || !part.text.empty()) delta["content"] = part.text;
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = part.text;
  }
  if (!meta.logprobs || part.logprobs.empty()) {
    choice["logprobs"] = nullptr;
  } else if (chat) {
    choice["logprobs"] = ChatLogprobs(part.logprobs, token_bytes);
  } else {
    choice["logprobs"] = CompletionLogprobs(part.logprobs, part.text_offset,
                                            meta.top_logprobs, token_bytes);
  }
  choice["finish_reason"] = FinishReasonJson(part.finish_reason);
  out["choices"] = ordered_json::array({std::move(choice)});
  if (with_usage) out["usage"] = nullptr;
  return out;
}

ordered_json UsageChunkJson(const ResponseMeta& meta,
                            const ordered_json& usage) {
  const bool chat = meta.endpoint == Endpoint::kChatCompletions;
  ordered_json out =
      Header(meta, chat ? "chat.completion.chunk" : "text_completion");
  out["choices"] = ordered_json::array();
  out["usage"] = usage;
  return out;
}

}  // namespace tpserve::openai
