// `tpserve generate --server HOST:PORT [sampling flags] [--chat] PROMPT`:
// streams a completion from a running server to the terminal.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/cli.h"
#include "common/net/channel_security.h"
#include "tpserve/v1/inference.grpc.pb.h"

namespace tpserve::cli {
namespace {

absl::Status Number(const Flags& flags, const std::string& name,
                    const std::function<void(double)>& set) {
  const std::string v = flags.Get(name);
  if (v.empty()) return absl::OkStatus();
  double x = 0;
  if (!absl::SimpleAtod(v, &x) || !std::isfinite(x)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " takes a number, got '", v, "'"));
  }
  set(x);
  return absl::OkStatus();
}

}  // namespace

int GenerateRemote(const Flags& flags, const std::string& prompt) {
  v1::GenerateRequest request;
  if (flags.Bool("chat")) {
    v1::ChatMessages* chat = request.mutable_chat();
    if (!flags.Get("system").empty()) {
      v1::ChatMessage* m = chat->add_messages();
      m->set_role("system");
      m->set_content(flags.Get("system"));
    }
    v1::ChatMessage* m = chat->add_messages();
    m->set_role("user");
    m->set_content(prompt);
  } else {
    request.set_text(prompt);
  }
  v1::SamplingParameters* s = request.mutable_sampling();
  // Greedy unless a temperature is given, as for local generation.
  s->set_temperature(0);
  request.set_max_tokens(64);
  for (absl::Status st : {
           Number(flags, "temperature",
                  [&](double x) { s->set_temperature(static_cast<float>(x)); }),
           Number(flags, "top-k",
                  [&](double x) { s->set_top_k(static_cast<int32_t>(x)); }),
           Number(flags, "top-p",
                  [&](double x) { s->set_top_p(static_cast<float>(x)); }),
           Number(flags, "min-p",
                  [&](double x) { s->set_min_p(static_cast<float>(x)); }),
           Number(flags, "repetition-penalty",
                  [&](double x) {
                    s->set_repetition_penalty(static_cast<float>(x));
                  }),
           Number(flags, "presence-penalty",
                  [&](double x) {
                    s->set_presence_penalty(static_cast<float>(x));
                  }),
           Number(flags, "frequency-penalty",
                  [&](double x) {
                    s->set_frequency_penalty(static_cast<float>(x));
                  }),
           Number(flags, "seed",
                  [&](double x) { s->set_seed(static_cast<uint64_t>(x)); }),
           Number(flags, "max-tokens",
                  [&](double x) {
                    request.set_max_tokens(static_cast<int32_t>(x));
                  }),
       }) {
    if (!st.ok()) return Fail(st);
  }
  if (!flags.Get("stop").empty()) request.add_stop(flags.Get("stop"));
  request.set_ignore_eos(flags.Bool("ignore-eos"));
  request.set_render_special_tokens(flags.Bool("special"));

  std::shared_ptr<grpc::ChannelCredentials> creds =
      grpc::InsecureChannelCredentials();
  if (!flags.Get("tls-ca").empty()) {
    absl::StatusOr<std::string> ca =
        ReadSecretFile(flags.Get("tls-ca"), "TLS CA");
    if (!ca.ok()) return Fail(ca.status());
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = *ca;
    creds = grpc::SslCredentials(o);
  }
  auto channel = grpc::CreateChannel(flags.Get("server"), creds);
  auto stub = v1::Inference::NewStub(channel);
  grpc::ClientContext context;
  double timeout = 600;
  if (absl::Status st =
          Number(flags, "timeout", [&](double x) { timeout = x; });
      !st.ok()) {
    return Fail(st);
  }
  context.set_deadline(
      std::chrono::system_clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(timeout * 1000)));
  std::string api_key = flags.Get("api-key");
  if (api_key.empty()) {
    if (const char* env = std::getenv("TPSERVE_API_KEY")) api_key = env;
  }
  if (!api_key.empty())
    context.AddMetadata("authorization", "Bearer " + api_key);
  const auto start = std::chrono::steady_clock::now();
  auto reader = stub->GenerateStream(&context, request);
  if (!flags.Bool("chat")) std::cout << prompt << std::flush;
  v1::GenerateStreamResponse part;
  v1::Usage usage;
  v1::FinishReason reason = v1::FINISH_REASON_UNSPECIFIED;
  while (reader->Read(&part)) {
    std::cout << part.text() << std::flush;
    if (part.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      usage = part.usage();
      reason = part.finish_reason();
    }
  }
  std::cout << std::endl;
  grpc::Status status = reader->Finish();
  if (!status.ok()) {
    std::cerr << "tpserve: " << flags.Get("server") << ": "
              << status.error_message() << "\n";
    return status.error_code() == grpc::StatusCode::INVALID_ARGUMENT ? 2 : 1;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::cerr << absl::StrFormat(
      "prompt %d tokens, generated %d tokens in %.2f s (first token after "
      "%.0f ms), finish: %s\n",
      usage.prompt_tokens(), usage.completion_tokens(), seconds,
      usage.time_to_first_token_ms(), v1::FinishReason_Name(reason));
  return 0;
}

}  // namespace tpserve::cli
