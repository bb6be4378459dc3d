// libFuzzer target for the two request doors. The first byte picks the mode:
//   0: the rest is a serialized tpserve.v1.GenerateRequest (gRPC door);
//   1: the rest is an OpenAI /v1/completions JSON body (HTTP door);
//   2: the rest is an OpenAI /v1/chat/completions JSON body.
// Whatever parses goes through PrepareRequest (validation + tokenization,
// with the committed tiny byte-level BPE and the ChatML template). Nothing
// may crash, leak or hang; errors must be InvalidArgument (or, for the HTTP
// mapping, the statuses it documents).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "api/openai_json.h"
#include "api/request.h"
#include "common/chat_template.h"
#include "common/json_util.h"
#include "common/tokenizer.h"

namespace {

const tpserve::Tokenizer* TinyBpe() {
  static const tpserve::Tokenizer* tok = [] {
    std::ifstream in("tests/golden/hf_tiny_bpe/tokenizer.json");
    std::stringstream ss;
    ss << in.rdbuf();
    auto t = tpserve::Tokenizer::FromHfTokenizerJson(ss.str(), 0, 1);
    if (!t.ok()) std::abort();  // Run from the repository root.
    return t->release();
  }();
  return tok;
}

const tpserve::ChatTemplate* ChatMl() {
  static const tpserve::ChatTemplate* chat = [] {
    auto t = tpserve::ChatTemplate::Builtin("chatml", {});
    if (!t.ok()) std::abort();
    return new tpserve::ChatTemplate(*t);
  }();
  return chat;
}

void Prepare(const tpserve::v1::GenerateRequest& request) {
  tpserve::RequestLimits limits;
  limits.max_context = 2048;
  limits.vocab_size = TinyBpe()->vocab_size();
  absl::StatusOr<tpserve::PreparedRequest> p =
      tpserve::PrepareRequest(request, *TinyBpe(), ChatMl(), limits);
  if (!p.ok() && p.status().code() != absl::StatusCode::kInvalidArgument) {
    std::abort();  // PrepareRequest only ever refuses as InvalidArgument.
  }
  if (p.ok() && (p->prompt.empty() ||
                 static_cast<int64_t>(p->prompt.size()) + p->max_tokens >
                     limits.max_context)) {
    std::abort();  // Accepted requests must fit the context.
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      tpserve::v1::GenerateRequest request;
      if (request.ParseFromString(rest)) Prepare(request);
      break;
    }
    default: {
      absl::StatusOr<nlohmann::json> body = tpserve::ParseUntrustedJson(
          rest, "request body", tpserve::JsonLimits());
      if (!body.ok()) break;
      const auto endpoint = data[0] % 3 == 1
                                ? tpserve::openai::Endpoint::kCompletions
                                : tpserve::openai::Endpoint::kChatCompletions;
      absl::StatusOr<tpserve::openai::ParsedRequest> parsed =
          tpserve::openai::ParseRequest(*body, endpoint);
      if (!parsed.ok()) break;
      for (const tpserve::v1::GenerateRequest& r : parsed->prompts) Prepare(r);
      break;
    }
  }
  return 0;
}
