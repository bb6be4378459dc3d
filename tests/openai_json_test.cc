// OpenAI JSON <-> GenerateRequest mapping (api/openai_json.h):
// which JSON shapes map to which proto fields, which are refused here (type
// errors, unsupported features), how PrepareRequest's messages are renamed
// to OpenAI's parameters, and the exact shape of every response object.
#include "api/openai_json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>

#include "common/field_error.h"

namespace tpserve::openai {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;
using ::testing::HasSubstr;
using ::testing::StartsWith;

ParsedRequest Parse(const std::string& body, Endpoint endpoint) {
  absl::StatusOr<ParsedRequest> r = ParseRequest(json::parse(body), endpoint);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : ParsedRequest();
}

// A refusal, with the message as a std::string for the matchers.
struct Refusal {
  absl::Status status;
  std::string message() const { return std::string(status.message()); }
};

Refusal ParseError(const std::string& body, Endpoint endpoint) {
  absl::StatusOr<ParsedRequest> r = ParseRequest(json::parse(body), endpoint);
  EXPECT_FALSE(r.ok()) << body;
  return {r.status()};
}

TEST(ParseRequestTest, CompletionMapsEveryField) {
  ParsedRequest r = Parse(R"({
      "model": "m", "prompt": "Hello", "max_tokens": 7, "temperature": 0.5,
      "top_p": 0.9, "top_k": 40, "min_p": 0.05, "presence_penalty": 0.5,
      "frequency_penalty": -0.5, "repetition_penalty": 1.1, "seed": 42,
      "logit_bias": {"15": -100, "7": 2.5}, "stop": ["\n", "END"],
      "stop_token_ids": [3], "ignore_eos": true, "skip_special_tokens": false,
      "logprobs": 3, "n": 2, "stream": true,
      "stream_options": {"include_usage": true}, "user": "ignored",
      "some_future_field": {"x": 1}})",
                          Endpoint::kCompletions);
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.prompts.size(), 1u);
  const v1::GenerateRequest& g = r.prompts[0];
  EXPECT_EQ(g.text(), "Hello");
  EXPECT_EQ(g.max_tokens(), 7);
  EXPECT_FLOAT_EQ(g.sampling().temperature(), 0.5f);
  EXPECT_FLOAT_EQ(g.sampling().top_p(), 0.9f);
  EXPECT_EQ(g.sampling().top_k(), 40);
  EXPECT_FLOAT_EQ(g.sampling().min_p(), 0.05f);
  EXPECT_FLOAT_EQ(g.sampling().presence_penalty(), 0.5f);
  EXPECT_FLOAT_EQ(g.sampling().frequency_penalty(), -0.5f);
  EXPECT_FLOAT_EQ(g.sampling().repetition_penalty(), 1.1f);
  EXPECT_EQ(g.sampling().seed(), 42u);
  EXPECT_EQ(g.sampling().logit_bias().size(), 2u);
  EXPECT_FLOAT_EQ(g.sampling().logit_bias().at(15), -100.0f);
  EXPECT_FLOAT_EQ(g.sampling().logit_bias().at(7), 2.5f);
  EXPECT_THAT(g.stop(), ::testing::ElementsAre("\n", "END"));
  EXPECT_THAT(g.stop_token_ids(), ::testing::ElementsAre(3));
  EXPECT_TRUE(g.ignore_eos());
  EXPECT_TRUE(g.render_special_tokens());
  EXPECT_TRUE(g.sampling().logprobs());
  EXPECT_EQ(g.sampling().top_logprobs(), 3);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 3);
  EXPECT_EQ(r.n, 2);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
}

TEST(ParseRequestTest, DefaultsAndNulls) {
  // OpenAI clients send null for "not set".
  ParsedRequest c = Parse(
      R"({"prompt": "x", "temperature": null, "stop": null, "seed": null,
          "max_tokens": null, "logprobs": null, "n": null})",
      Endpoint::kCompletions);
  ASSERT_EQ(c.prompts.size(), 1u);
  EXPECT_EQ(c.prompts[0].max_tokens(), 16);  // OpenAI's completions default.
  EXPECT_FALSE(c.prompts[0].sampling().has_temperature());
  EXPECT_FALSE(c.prompts[0].sampling().has_seed());
  EXPECT_EQ(c.prompts[0].stop_size(), 0);
  EXPECT_FALSE(c.logprobs);
  EXPECT_EQ(c.n, 1);
  EXPECT_FALSE(c.stream);
  EXPECT_FALSE(c.model.has_value());
  EXPECT_FALSE(c.prompts[0].render_special_tokens());

  ParsedRequest chat =
      Parse(R"({"messages": [{"role": "user", "content": "hi"}]})",
            Endpoint::kChatCompletions);
  ASSERT_EQ(chat.prompts.size(), 1u);
  EXPECT_EQ(chat.prompts[0].max_tokens(), 0);  // The rest of the context.
}

TEST(ParseRequestTest, MaxCompletionTokensWins) {
  ParsedRequest r = Parse(
      R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5,
          "max_completion_tokens": 9})",
      Endpoint::kChatCompletions);
  EXPECT_EQ(r.prompts[0].max_tokens(), 9);
}

TEST(ParseRequestTest, PromptShapes) {
  ParsedRequest strings =
      Parse(R"({"prompt": ["a", "b", "c"]})", Endpoint::kCompletions);
  ASSERT_EQ(strings.prompts.size(), 3u);
  EXPECT_EQ(strings.prompts[2].text(), "c");

  ParsedRequest ids = Parse(R"({"prompt": [1, 2, 3]})", Endpoint::kCompletions);
  ASSERT_EQ(ids.prompts.size(), 1u);
  EXPECT_THAT(ids.prompts[0].token_ids().ids(),
              ::testing::ElementsAre(1, 2, 3));

  ParsedRequest lists =
      Parse(R"({"prompt": [[1, 2], [3]]})", Endpoint::kCompletions);
  ASSERT_EQ(lists.prompts.size(), 2u);
  EXPECT_THAT(lists.prompts[1].token_ids().ids(), ::testing::ElementsAre(3));

  // Every prompt carries the shared fields.
  ParsedRequest shared = Parse(R"({"prompt": ["a", "b"], "max_tokens": 3})",
                               Endpoint::kCompletions);
  EXPECT_EQ(shared.prompts[1].max_tokens(), 3);

  EXPECT_THAT(
      ParseError(R"({"prompt": ["a", 1]})", Endpoint::kCompletions).message(),
      StartsWith("prompt[1] is an integer"));
  EXPECT_THAT(ParseError(R"({"prompt": []})", Endpoint::kCompletions).message(),
              HasSubstr("empty"));
  EXPECT_THAT(ParseError(R"({"prompt": 5})", Endpoint::kCompletions).message(),
              StartsWith("prompt is an integer"));
  EXPECT_THAT(
      ParseError(R"({"max_tokens": 5})", Endpoint::kCompletions).message(),
      StartsWith("prompt is required"));
  EXPECT_THAT(
      ParseError(R"({"prompt": [1, 5000000000]})", Endpoint::kCompletions)
          .message(),
      StartsWith("prompt[1] = 5000000000 is out of range"));
}

TEST(ParseRequestTest, ChatMessages) {
  ParsedRequest r = Parse(R"({"messages": [
      {"role": "developer", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "one"},
                                   {"type": "text", "text": "two"}],
       "name": "Ann"},
      {"role": "assistant", "content": null},
      {"role": "user", "content": "three"}]})",
                          Endpoint::kChatCompletions);
  ASSERT_EQ(r.prompts.size(), 1u);
  const v1::ChatMessages& chat = r.prompts[0].chat();
  ASSERT_EQ(chat.messages_size(), 4);
  EXPECT_EQ(chat.messages(0).role(), "system");
  EXPECT_EQ(chat.messages(1).content(), "one\ntwo");
  EXPECT_EQ(chat.messages(1).name(), "Ann");
  EXPECT_EQ(chat.messages(2).role(), "assistant");
  EXPECT_EQ(chat.messages(2).content(), "");
  EXPECT_EQ(chat.messages(3).content(), "three");

  EXPECT_THAT(
      ParseError(R"({"messages": [{"role": "user", "content": [
          {"type": "image_url", "image_url": {"url": "x"}}]}]})",
                 Endpoint::kChatCompletions)
          .message(),
      StartsWith("messages[0].content[0].type \"image_url\" is not supported"));
  EXPECT_THAT(ParseError(R"({"messages": [{"role": "user"}]})",
                         Endpoint::kChatCompletions)
                  .message(),
              StartsWith("messages[0].content is required"));
  EXPECT_THAT(ParseError(R"({"messages": [{"content": "x"}]})",
                         Endpoint::kChatCompletions)
                  .message(),
              StartsWith("messages[0].role is required"));
  EXPECT_THAT(
      ParseError(R"({"messages": "hi"})", Endpoint::kChatCompletions).message(),
      StartsWith("messages is a string"));
  EXPECT_THAT(
      ParseError(R"({"prompt": "hi"})", Endpoint::kChatCompletions).message(),
      StartsWith("messages is required"));
}

TEST(ParseRequestTest, ChatToolCallsToolResultsAndTemplateKwargs) {
  ParsedRequest r = Parse(R"({"messages": [
      {"role": "user", "content": "Weather?"},
      {"role": "assistant", "content": null, "reasoning_content": "hm",
       "tool_calls": [
         {"id": "c1", "type": "function",
          "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}},
         {"id": "c2", "function": {"name": "now", "arguments": {"tz": "UTC"}}}]},
      {"role": "tool", "tool_call_id": "c1", "content": "sunny"}],
      "chat_template_kwargs": {"enable_thinking": false}})",
                          Endpoint::kChatCompletions);
  const v1::ChatMessages& chat = r.prompts[0].chat();
  ASSERT_EQ(chat.messages_size(), 3);
  const v1::ChatMessage& call = chat.messages(1);
  EXPECT_EQ(call.reasoning_content(), "hm");
  ASSERT_EQ(call.tool_calls_size(), 2);
  EXPECT_EQ(call.tool_calls(0).id(), "c1");
  EXPECT_EQ(call.tool_calls(0).name(), "get_weather");
  EXPECT_EQ(call.tool_calls(0).arguments(), R"({"city": "Oslo"})");
  // An object (not OpenAI's JSON text) is passed on as its JSON.
  EXPECT_EQ(call.tool_calls(1).arguments(), R"({"tz":"UTC"})");
  EXPECT_EQ(chat.messages(2).role(), "tool");
  EXPECT_EQ(chat.messages(2).tool_call_id(), "c1");
  EXPECT_EQ(chat.chat_template_kwargs_json(), R"({"enable_thinking":false})");

  EXPECT_THAT(ParseError(R"({"messages": [{"role": "assistant", "tool_calls":
                             [{"id": "c1", "type": "code"}]}]})",
                         Endpoint::kChatCompletions)
                  .message(),
              StartsWith("messages[0].tool_calls[0].type \"code\" is not "
                         "supported"));
  EXPECT_THAT(ParseError(R"({"messages": [{"role": "user", "content": "x"}],
                             "chat_template_kwargs": "x"})",
                         Endpoint::kChatCompletions)
                  .message(),
              StartsWith("chat_template_kwargs is a string"));
  // PrepareRequest's messages about them name the OpenAI parameter.
  ApiError e = ApiErrorFromStatus(
      FieldError("chat.chat_template_kwargs_json",
                 "chat.chat_template_kwargs_json: invalid JSON"));
  EXPECT_EQ(e.param, "chat_template_kwargs");
  EXPECT_EQ(e.message, "chat_template_kwargs: invalid JSON");
}

TEST(ParseRequestTest, TypeErrorsNameTheParameter) {
  struct Case {
    const char* body;
    const char* prefix;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"prompt": "x", "temperature": "0.5"})",
            "temperature is a string"},
           {R"({"prompt": "x", "temperature": "NaN"})",
            "temperature is a string"},
           {R"({"prompt": "x", "max_tokens": 1.5})",
            "max_tokens is a floating"},
           {R"({"prompt": "x", "max_tokens": "5"})", "max_tokens is a string"},
           {R"({"prompt": "x", "stream": "yes"})", "stream is a string"},
           {R"({"prompt": "x", "stop": 5})", "stop is an integer"},
           {R"({"prompt": "x", "stop": ["a", 5]})", "stop[1] is an integer"},
           {R"({"prompt": "x", "seed": 1.5})", "seed is a floating"},
           {R"({"prompt": "x", "logit_bias": [1]})", "logit_bias is an array"},
           {R"({"prompt": "x", "logit_bias": {"abc": 1}})",
            "logit_bias key \"abc\" is not a token id"},
           {R"({"prompt": "x", "logit_bias": {"7": 1, "07": 2}})",
            "logit_bias names token 7 more than once"},
           {R"({"prompt": "x", "logit_bias": {"7": "1"}})",
            "logit_bias[\"7\"] is a string"},
           {R"({"prompt": "x", "model": 5})", "model is an integer"},
           {R"({"prompt": "x", "n": 0})", "n must be in [1, 128]"},
           {R"({"prompt": "x", "stream_options": true})",
            "stream_options is a boolean"},
           {R"({"prompt": "x", "logprobs": true})", "logprobs is a boolean"},
       }) {
    Refusal r = ParseError(c.body, Endpoint::kCompletions);
    EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument) << c.body;
    EXPECT_THAT(r.message(), StartsWith(c.prefix)) << c.body;
    ApiError e = ApiErrorFromStatus(r.status);
    EXPECT_EQ(e.http_status, 400);
    EXPECT_EQ(e.type, "invalid_request_error");
    EXPECT_FALSE(e.param.empty()) << c.body;
  }
  EXPECT_THAT(ParseError("[1, 2]", Endpoint::kCompletions).message(),
              HasSubstr("expected a JSON object"));
}

TEST(ParseRequestTest, ValuesAreLeftToPrepareRequest) {
  // Ranges are PrepareRequest's: these map as given.
  ParsedRequest r = Parse(
      R"({"prompt": "x", "max_tokens": -5, "temperature": 1e300,
          "top_k": -1, "seed": -1})",
      Endpoint::kCompletions);
  EXPECT_EQ(r.prompts[0].max_tokens(), -5);
  EXPECT_TRUE(std::isinf(r.prompts[0].sampling().temperature()));
  EXPECT_EQ(r.prompts[0].sampling().top_k(), 0);  // vLLM's -1 = off.
  EXPECT_EQ(r.prompts[0].sampling().seed(),
            std::numeric_limits<uint64_t>::max());
  ParsedRequest big = Parse(R"({"prompt": "x", "seed": 18446744073709551615})",
                            Endpoint::kCompletions);
  EXPECT_EQ(big.prompts[0].sampling().seed(),
            std::numeric_limits<uint64_t>::max());
}

TEST(ParseRequestTest, ChoiceLimits) {
  EXPECT_EQ(Parse(R"({"prompt": "x", "n": 128})", Endpoint::kCompletions).n,
            128);
  EXPECT_THAT(
      ParseError(R"({"prompt": ["a", "b"], "n": 100})", Endpoint::kCompletions)
          .message(),
      HasSubstr("over the limit of 128"));
  EXPECT_THAT(
      ParseError(R"({"prompt": "x", "best_of": 3})", Endpoint::kCompletions)
          .message(),
      HasSubstr("best_of other than n is not supported"));
  EXPECT_EQ(
      Parse(R"({"prompt": "x", "best_of": 2, "n": 2})", Endpoint::kCompletions)
          .n,
      2);
}

TEST(ParseRequestTest, ChatLogprobs) {
  ParsedRequest r = Parse(
      R"({"messages": [{"role": "user", "content": "hi"}], "logprobs": true,
          "top_logprobs": 2})",
      Endpoint::kChatCompletions);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 2);
  EXPECT_TRUE(r.prompts[0].sampling().logprobs());
  EXPECT_EQ(r.prompts[0].sampling().top_logprobs(), 2);
  EXPECT_THAT(ParseError(R"({"messages": [{"role": "user", "content": "hi"}],
                             "top_logprobs": 2})",
                         Endpoint::kChatCompletions)
                  .message(),
              HasSubstr("requires logprobs"));
}

TEST(ParseRequestTest, UnsupportedFeaturesAreRefused) {
  for (const char* body : {
           R"({"prompt": "x", "echo": true})",
           R"({"prompt": "x", "suffix": "end"})",
           R"({"prompt": "x", "tools": [{"type": "function"}]})",
           R"({"prompt": "x", "response_format": {"type": "json_object"}})",
       }) {
    EXPECT_THAT(ParseError(body, Endpoint::kCompletions).message(),
                HasSubstr("not supported"))
        << body;
  }
  // ... but their harmless values are accepted.
  Parse(R"({"prompt": "x", "echo": false, "suffix": "", "tools": [],
            "response_format": {"type": "text"}, "tool_choice": "none"})",
        Endpoint::kCompletions);
}

TEST(ApiErrorTest, RenamesProtoFieldsAndMapsCodes) {
  ApiError e = ApiErrorFromStatus(FieldError(
      "sampling.temperature",
      "sampling.temperature must be a finite number in [0, 100], got nan"));
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.message,
            "temperature must be a finite number in [0, 100], got nan");
  EXPECT_EQ(e.param, "temperature");

  e = ApiErrorFromStatus(
      FieldError("chat.messages[2].role",
                 "chat.messages[2].role must be system, user or assistant"));
  EXPECT_EQ(e.message, "messages[2].role must be system, user or assistant");
  EXPECT_EQ(e.param, "messages");

  e = ApiErrorFromStatus(
      FieldError("token_ids.ids[3]",
                 "token_ids.ids[3] = 99999 is not a token id in [0, 100)"));
  EXPECT_EQ(e.message, "prompt[3] = 99999 is not a token id in [0, 100)");
  EXPECT_EQ(e.param, "prompt");

  e = ApiErrorFromStatus(FieldError("text", "text is not valid UTF-8"));
  EXPECT_EQ(e.message, "prompt is not valid UTF-8");
  EXPECT_EQ(e.param, "prompt");

  e = ApiErrorFromStatus(
      FieldError("max_tokens", "max_tokens must be in [0, 8191], got -1"));
  EXPECT_EQ(e.param, "max_tokens");

  e = ApiErrorFromStatus(
      FieldError("chat.tools_json", "chat.tools_json must be a JSON array"));
  EXPECT_EQ(e.message, "tools must be a JSON array");
  EXPECT_EQ(e.param, "tools");

  e = ApiErrorFromStatus(FieldError(
      "chat", "chat: the conversation exceeds the limit of 10 bytes"));
  EXPECT_EQ(e.message,
            "messages: the conversation exceeds the limit of 10 bytes");
  EXPECT_EQ(e.param, "messages");

  // A proto field with no OpenAI parameter: renamed, but no `param`.
  e = ApiErrorFromStatus(FieldError("request_id", "request_id is too long"));
  EXPECT_EQ(e.message, "request_id is too long");
  EXPECT_EQ(e.param, "");

  struct Case {
    absl::Status status;
    int http;
    const char* type;
  };
  for (const Case& c : std::vector<Case>{
           {absl::ResourceExhaustedError("the queue is full"), 429,
            "rate_limit_error"},
           {absl::UnavailableError("draining"), 503, "server_error"},
           {absl::DeadlineExceededError("late"), 504, "server_error"},
           {absl::UnauthenticatedError("no key"), 401, "invalid_request_error"},
           {absl::NotFoundError("no model"), 404, "invalid_request_error"},
           {absl::InternalError("bug"), 500, "server_error"},
           {absl::CancelledError("cancelled"), 500, "server_error"},
       }) {
    ApiError e = ApiErrorFromStatus(c.status);
    EXPECT_EQ(e.http_status, c.http) << c.status;
    EXPECT_EQ(e.type, c.type) << c.status;
    EXPECT_EQ(e.param, "") << c.status;
    EXPECT_EQ(e.message, c.status.message());
  }
}

TEST(ApiErrorTest, ParamComesFromTheFieldNotTheMessage) {
  // The field, not the message text, gives `param`: a message that does not
  // start with the field keeps its words and still gets the parameter.
  ApiError e = ApiErrorFromStatus(FieldError(
      "sampling.temperature", "the sampling temperature must be finite"));
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.param, "temperature");
  EXPECT_EQ(e.message, "the sampling temperature must be finite");

  // Re-scoped (PrefixField) errors of a sub-validator.
  e = ApiErrorFromStatus(PrefixField(
      "sampling.", FieldError("top_p", "top_p must be in (0, 1], got 2")));
  EXPECT_EQ(e.param, "top_p");
  EXPECT_EQ(e.message, "top_p must be in (0, 1], got 2");

  // Only the whole path is renamed: "textual" does not start with "text".
  e = ApiErrorFromStatus(
      FieldError("text", "textual prompts must not be empty"));
  EXPECT_EQ(e.message, "textual prompts must not be empty");
  EXPECT_EQ(e.param, "prompt");

  // No field: no `param`, and the message as it is, whatever its first word.
  for (const char* message :
       {"temperature must be a finite number in [0, 100], got nan",
        "sampling.temperature must be a finite number", "text is empty",
        "chat template (x): Conversation roles must alternate",
        "max_tokens must be in [0, 8191], got -1"}) {
    e = ApiErrorFromStatus(absl::InvalidArgumentError(message));
    EXPECT_EQ(e.http_status, 400) << message;
    EXPECT_EQ(e.param, "") << message;
    EXPECT_EQ(e.message, message);
  }

  // A field on an error that is not the client's input (not a 400): no
  // `param`, though the message is still renamed.
  e = ApiErrorFromStatus(WithField(absl::InternalError("text: bug"), "text"));
  EXPECT_EQ(e.http_status, 500);
  EXPECT_EQ(e.param, "");
}

TEST(ApiErrorTest, ParseRequestErrorsCarryTheParameter) {
  struct Case {
    const char* body;
    Endpoint endpoint;
    const char* field;
  };
  for (
      const Case& c : std::vector<Case>{
          {R"({"prompt": "x", "temperature": "0.5"})", Endpoint::kCompletions,
           "temperature"},
          {R"({"prompt": "x", "stop": ["a", 5]})", Endpoint::kCompletions,
           "stop[1]"},
          {R"({"prompt": "x", "stop_token_ids": [1, "2"]})",
           Endpoint::kCompletions, "stop_token_ids[1]"},
          {R"({"prompt": [[1], "a"]})", Endpoint::kCompletions, "prompt[1]"},
          {R"({"prompt": "x", "echo": true})", Endpoint::kCompletions, "echo"},
          {R"({"prompt": "x", "best_of": 3})", Endpoint::kCompletions,
           "best_of"},
          {R"({"messages": [{"role": "user", "content": [{"type": "image"}]}]})",
           Endpoint::kChatCompletions, "messages[0].content[0].type"},
          {R"({"messages": [{"role": 5}]})", Endpoint::kChatCompletions,
           "messages[0].role"},
      }) {
    Refusal r = ParseError(c.body, c.endpoint);
    EXPECT_EQ(ErrorField(r.status), c.field) << c.body;
    EXPECT_THAT(r.message(), StartsWith(c.field)) << c.body;
  }
  // The body as a whole is no field.
  EXPECT_EQ(ErrorField(ParseError("[1, 2]", Endpoint::kCompletions).status),
            std::nullopt);
}

TEST(ApiErrorTest, ErrorJsonShape) {
  ordered_json j = ErrorJson(MakeApiError(404, "The model `x` does not exist",
                                          "model", "model_not_found"));
  EXPECT_EQ(Dump(j), R"({"error":{"message":"The model `x` does not exist",)"
                     R"("type":"invalid_request_error","param":"model",)"
                     R"("code":"model_not_found"}})");
  j = ErrorJson(MakeApiError(500, "bug"));
  EXPECT_TRUE(j["error"]["param"].is_null());
  EXPECT_TRUE(j["error"]["code"].is_null());
}

TEST(DumpTest, NeverThrowsOnInvalidUtf8) {
  ordered_json j;
  j["text"] = std::string("a\xff\xe2\x82");
  EXPECT_EQ(Dump(j), "{\"text\":\"a\xEF\xBF\xBD\xEF\xBF\xBD\"}");
  EXPECT_EQ(SseData(j).substr(0, 6), "data: ");
  EXPECT_EQ(SseData(j).substr(SseData(j).size() - 2), "\n\n");
}

std::string FakeToken(int32_t id) { return "t" + std::to_string(id); }

TokenLogprob Lp(int32_t id, float lp,
                std::vector<std::pair<int32_t, float>> top) {
  TokenLogprob out;
  out.token_id = id;
  out.logprob = lp;
  out.top = std::move(top);
  return out;
}

ResponseMeta Meta(Endpoint endpoint) {
  ResponseMeta m;
  m.endpoint = endpoint;
  m.id = "id-1";
  m.created = 1700000000;
  m.model = "smol";
  return m;
}

TEST(ResponseJsonTest, Completion) {
  ResponseMeta meta = Meta(Endpoint::kCompletions);
  ChoiceResult c;
  c.index = 0;
  c.text = "Paris.";
  c.finish_reason = FinishReason::kLength;
  EXPECT_EQ(Dump(ResponseJson(meta, {c}, UsageJson(5, 2), FakeToken)),
            R"({"id":"id-1","object":"text_completion","created":1700000000,)"
            R"("model":"smol","choices":[{"index":0,"text":"Paris.",)"
            R"("logprobs":null,"finish_reason":"length"}],)"
            R"("usage":{"prompt_tokens":5,"completion_tokens":2,)"
            R"("total_tokens":7}})");
}

TEST(ResponseJsonTest, ChatWithLogprobs) {
  ResponseMeta meta = Meta(Endpoint::kChatCompletions);
  meta.logprobs = true;
  meta.top_logprobs = 1;
  ChoiceResult c;
  c.text = "Hi";
  c.finish_reason = FinishReason::kStop;
  c.logprobs = {Lp(4, -0.5f, {{4, -0.5f}}),
                Lp(9, -std::numeric_limits<float>::infinity(), {})};
  ordered_json j = ResponseJson(meta, {c}, UsageJson(1, 2), FakeToken);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Hi");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  const ordered_json& content = j["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 2u);
  EXPECT_EQ(content[0]["token"], "t4");
  EXPECT_DOUBLE_EQ(content[0]["logprob"].get<double>(), -0.5);
  EXPECT_EQ(content[0]["bytes"], ordered_json({116, 52}));
  EXPECT_EQ(content[0]["top_logprobs"][0]["token"], "t4");
  // JSON has no -inf.
  EXPECT_DOUBLE_EQ(content[1]["logprob"].get<double>(), -9999.0);
  EXPECT_TRUE(content[1]["top_logprobs"].empty());
}

TEST(ResponseJsonTest, CompletionLogprobs) {
  ResponseMeta meta = Meta(Endpoint::kCompletions);
  meta.logprobs = true;
  meta.top_logprobs = 2;
  ChoiceResult c;
  c.text = "t1t22";
  c.logprobs = {Lp(1, -1, {{1, -1}, {2, -2}}), Lp(22, -3, {{22, -3}, {5, -4}})};
  ordered_json lp = ResponseJson(meta, {c}, UsageJson(1, 2),
                                 FakeToken)["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"], ordered_json({"t1", "t22"}));
  EXPECT_EQ(lp["token_logprobs"], ordered_json({-1.0, -3.0}));
  EXPECT_EQ(lp["text_offset"], ordered_json({0, 2}));
  EXPECT_DOUBLE_EQ(lp["top_logprobs"][1]["t5"].get<double>(), -4.0);
  // logprobs: 0 asks for no alternatives.
  meta.top_logprobs = 0;
  lp = ResponseJson(meta, {c}, UsageJson(1, 2),
                    FakeToken)["choices"][0]["logprobs"];
  EXPECT_TRUE(lp["top_logprobs"].is_null());
}

TEST(ChunkJsonTest, ChatChunks) {
  ResponseMeta meta = Meta(Endpoint::kChatCompletions);
  ChunkPart role;
  role.role = true;
  EXPECT_EQ(Dump(ChunkJson(meta, role, false, FakeToken)),
            R"({"id":"id-1","object":"chat.completion.chunk",)"
            R"("created":1700000000,"model":"smol","choices":[{"index":0,)"
            R"("delta":{"role":"assistant","content":""},"logprobs":null,)"
            R"("finish_reason":null}]})");
  ChunkPart text;
  text.index = 1;
  text.text = "Hel";
  ordered_json j = ChunkJson(meta, text, true, FakeToken);
  EXPECT_EQ(j["choices"][0]["index"], 1);
  EXPECT_EQ(Dump(j["choices"][0]["delta"]), R"({"content":"Hel"})");
  EXPECT_TRUE(j.contains("usage"));
  EXPECT_TRUE(j["usage"].is_null());
  ChunkPart end;
  end.finish_reason = FinishReason::kLength;
  j = ChunkJson(meta, end, false, FakeToken);
  EXPECT_EQ(Dump(j["choices"][0]["delta"]), "{}");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_FALSE(j.contains("usage"));
}

TEST(ChunkJsonTest, CompletionChunksAndUsage) {
  ResponseMeta meta = Meta(Endpoint::kCompletions);
  meta.logprobs = true;
  ChunkPart part;
  part.text = "t7";
  const std::vector<TokenLogprob> lps = {Lp(7, -0.25f, {})};
  part.logprobs = lps;
  part.text_offset = 10;
  ordered_json j = ChunkJson(meta, part, false, FakeToken);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], "t7");
  EXPECT_EQ(j["choices"][0]["logprobs"]["text_offset"], ordered_json({10}));
  EXPECT_TRUE(j["choices"][0]["finish_reason"].is_null());

  ordered_json u = UsageChunkJson(meta, UsageJson(3, 4));
  EXPECT_TRUE(u["choices"].is_array());
  EXPECT_TRUE(u["choices"].empty());
  EXPECT_EQ(u["usage"]["total_tokens"], 7);
}

}  // namespace
}  // namespace tpserve::openai
