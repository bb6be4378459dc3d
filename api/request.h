// Turns an untrusted tpserve.v1.GenerateRequest into a validated, tokenized
// request the scheduler can run without further checks.
//
// Every field is checked here, once, at the edge: a bad value is an
// InvalidArgument whose message names the field (as the proto spells it,
// e.g. "sampling.temperature", "chat.messages[2].role"), and nothing past
// this point re-validates. Fields this server does not know (a newer
// client) are an error too, not silently ignored behaviour.
//
// Chat contents cannot smuggle control tokens: the templated prompt is
// tokenized with special-token parsing on (the template's own "<|im_start|>"
// etc. must become control tokens), so a content holding the text of a
// control token would turn into that token. Such a request is rejected (see
// PrepareRequest); accepted chats tokenize exactly as `tpserve generate
// --chat` does.
#ifndef TPSERVE_API_REQUEST_H_
#define TPSERVE_API_REQUEST_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/chat_template.h"
#include "common/sampling.h"
#include "common/tokenizer.h"
#include "coordinator/prepared_request.h"
#include "google/protobuf/message.h"
#include "tpserve/v1/inference.pb.h"

namespace tpserve {

struct RequestLimits {
  int64_t max_context = 0;  // Model context (prompt + generated must fit).
  int32_t vocab_size = 0;   // Model vocabulary (valid ids are [0, this)).
  size_t max_prompt_bytes = 1 << 20;  // text / all chat contents together.
  int max_stop_strings = 16;
  size_t max_stop_bytes = 256;
  int max_stop_token_ids = 64;
  int max_logit_bias = 1024;
  size_t max_request_id_bytes = 256;
  int max_chat_messages = 256;
  int max_tool_calls = 64;  // Per chat message.
};

// InvalidArgument when `message`, or any message inside it (set fields,
// repeated elements, map values), holds fields this server's schema does not
// know; the message names where ("sampling", "chat.messages[1]"). For every
// RPC's request, not only Generate's.
absl::Status CheckNoUnknownFields(const google::protobuf::Message& message);

// Validates every field of `request` and tokenizes its prompt:
//  - sampling: finite numbers in range (ValidateSamplingParams), top_k in
//    [0, vocab_size], logit_bias keys in [0, vocab_size) with values in
//    [-100, 100] and at most max_logit_bias entries;
//  - stop: at most max_stop_strings, each 1..max_stop_bytes bytes of UTF-8;
//    stop_token_ids: at most max_stop_token_ids, each in range;
//  - prompt: exactly one of text / token_ids / chat; text and chat contents
//    valid UTF-8, together at most max_prompt_bytes; token ids in range;
//    chat: 1..max_chat_messages messages with identifier roles (the
//    template decides which it accepts), at most max_tool_calls tool calls
//    each, no control-token text in any text field, and a conversation the
//    chat template renders (its refusals are the errors); non-empty after
//    tokenization;
//  - max_tokens >= 0 and prompt + max_tokens <= max_context (0 means the
//    rest of the context, which must be at least one token);
//  - request_id: at most max_request_id_bytes of printable ASCII (no spaces
//    or control characters: it goes into logs and headers);
//  - no unknown fields anywhere in the message tree.
// `chat` may be null (the model has no chat template): a chat prompt is then
// InvalidArgument. Every error is InvalidArgument.
absl::StatusOr<PreparedRequest> PrepareRequest(
    const v1::GenerateRequest& request, const Tokenizer& tokenizer,
    const ChatTemplate* chat, const RequestLimits& limits);

// The prompt of a Tokenize call, under the same rules as Generate's (text
// with the model's BOS rule, or chat through the template); the ids are
// exactly those PrepareRequest would produce. There is no context check: a
// caller may tokenize to learn how long a prompt is.
absl::StatusOr<std::vector<int32_t>> TokenizePrompt(
    const v1::TokenizeRequest& request, const Tokenizer& tokenizer,
    const ChatTemplate* chat, const RequestLimits& limits);

}  // namespace tpserve

#endif  // TPSERVE_API_REQUEST_H_
