// OpenAI's JSON wire format <-> tpserve.v1.GenerateRequest and generation
// output, for the HTTP door (api/http_server.h). Pure functions: no
// sockets, no engine, so the mapping is unit-tested on its own
// (tests/openai_json_test.cc).
//
// Only JSON types are checked here (a string where a number belongs, a
// malformed prompt list, a feature we do not have). Ranges and limits are
// PrepareRequest's (api/request.h), the same code the gRPC service
// runs, so both doors accept and refuse exactly the same requests; its
// errors carry the proto field at fault (common/field_error.h), which
// ApiErrorFromStatus renames to the OpenAI parameter the client sent
// ("sampling.temperature" -> "temperature").
#ifndef TPSERVE_API_OPENAI_JSON_H_
#define TPSERVE_API_OPENAI_JSON_H_

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "coordinator/generation.h"
#include "tpserve/v1/inference.pb.h"

namespace tpserve::openai {

enum class Endpoint {
  kCompletions,      // POST /v1/completions: prompt -> text.
  kChatCompletions,  // POST /v1/chat/completions: messages -> message.
};

struct ParseLimits {
  int max_n = 128;        // Choices per prompt.
  int max_choices = 128;  // Prompts x n: each is its own generation.
};

// One OpenAI request, mapped.
struct ParsedRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::optional<std::string> model;  // As sent (absent: the served model).
  // One per prompt (a chat has one). The seed, when given, is that of
  // choice 0; choice i uses seed + i so that the n choices differ.
  std::vector<v1::GenerateRequest> prompts;
  int n = 1;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage.
  // Log-probabilities to return, and how many alternatives per token.
  bool logprobs = false;
  int top_logprobs = 0;
};

// Maps a parsed JSON body. Errors are InvalidArgument whose message starts
// with the OpenAI parameter ("temperature is a string, expected a number").
absl::StatusOr<ParsedRequest> ParseRequest(const nlohmann::json& body,
                                           Endpoint endpoint,
                                           const ParseLimits& limits = {});

// Responses are ordered_json so keys come out in OpenAI's order ("id"
// first), which people reading curl output expect.

// An error response: {"error": {"message", "type", "param", "code"}}.
struct ApiError {
  int http_status = 500;
  std::string message;
  std::string type;   // "invalid_request_error", "server_error", ...
  std::string param;  // Empty: null.
  std::string code;   // Empty: null.
};

// The HTTP status, type and code for `status` (InvalidArgument -> 400,
// Unauthenticated -> 401, NotFound -> 404, ResourceExhausted -> 429,
// Unavailable -> 503, DeadlineExceeded -> 504, otherwise 500). When the
// status carries a field (ErrorField, common/field_error.h), `param` is its
// OpenAI parameter (400s only) and the message's leading field path, if it
// starts with it, is renamed to OpenAI's; without one the message is as is
// and there is no `param`.
ApiError ApiErrorFromStatus(const absl::Status& status);
// A 4xx/5xx with `message` and the type that goes with `http_status`.
ApiError MakeApiError(int http_status, std::string message,
                      std::string param = "", std::string code = "");
nlohmann::ordered_json ErrorJson(const ApiError& error);

// JSON text of `value`; never throws (bytes that are not UTF-8, e.g. a
// token that is half a character, become U+FFFD).
std::string Dump(const nlohmann::ordered_json& value);
// One Server-Sent Event: "data: <json>\n\n".
std::string SseData(const nlohmann::ordered_json& value);

// What every response object carries.
struct ResponseMeta {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string id;       // "cmpl-..." / "chatcmpl-...".
  int64_t created = 0;  // Unix seconds.
  std::string model;
  bool logprobs = false;  // Whether log-probabilities were asked for.
  int top_logprobs = 0;
};

// The bytes a token stands for (tokens may be part of a character).
using TokenBytes = std::function<std::string(int32_t token_id)>;

// One finished choice of a non-streaming response.
struct ChoiceResult {
  int index = 0;
  std::string text;
  std::vector<TokenLogprob> logprobs;
  FinishReason finish_reason = FinishReason::kNone;
};

// {"prompt_tokens", "completion_tokens", "total_tokens"}.
nlohmann::ordered_json UsageJson(int64_t prompt_tokens,
                                 int64_t completion_tokens);

// A whole response: object "text_completion" or "chat.completion".
nlohmann::ordered_json ResponseJson(const ResponseMeta& meta,
                                    const std::vector<ChoiceResult>& choices,
                                    const nlohmann::ordered_json& usage,
                                    const TokenBytes& token_bytes);

// One streamed chunk for choice `index` ("text_completion" /
// "chat.completion.chunk"): `text` and its logprobs, the assistant role
// (chat's first chunk), or the finish reason (the choice's last chunk;
// kNone: null). `with_usage` adds "usage": null, as OpenAI does on
// every chunk when the client asked for a usage chunk.
struct ChunkPart {
  int index = 0;
  std::string text;
  absl::Span<const TokenLogprob> logprobs;
  int text_offset = 0;  // Completions logprobs: offset of this text.
  bool role = false;
  FinishReason finish_reason = FinishReason::kNone;
};
nlohmann::ordered_json ChunkJson(const ResponseMeta& meta,
                                 const ChunkPart& part, bool with_usage,
                                 const TokenBytes& token_bytes);
// The last chunk when the client asked for usage: no choices, only usage.
nlohmann::ordered_json UsageChunkJson(const ResponseMeta& meta,
                                      const nlohmann::ordered_json& usage);

// "finish_reason": "stop" / "length" / null.
nlohmann::ordered_json FinishReasonJson(FinishReason reason);

}  // namespace tpserve::openai

#endif  // TPSERVE_API_OPENAI_JSON_H_
