#include "cli/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "api/http_server.h"
#include "api/inference_service.h"
#include "api/model_info.h"
#include "common/chat_template.h"
#include "common/logging.h"
#include "common/model_tokenizer.h"
#include "common/model_weights.h"
#include "common/status_macros.h"
#include "coordinator/engine.h"
#include "coordinator/metrics.h"
#include "coordinator/rendezvous_service.h"
#include "coordinator/worker_group.h"
#include "coordinator/worker_pool.h"

namespace tpserve {
namespace {

sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

// The chat template prompts are rendered with, or null when there is none
// (chat requests then get a clear error). --chat-template that fails is an
// error; the model's own template failing leaves serving up for text
// prompts, with a warning saying why chat is off.
absl::StatusOr<std::unique_ptr<ChatTemplate>> LoadChat(
    const CoordinatorOptions& options, const ModelWeights& model,
    const Tokenizer& tok) {
  absl::StatusOr<ChatTemplate> t = LoadChatTemplate(
      model.gguf(), options.model_path, options.chat_template, tok);
  if (!t.ok()) {
    if (!options.chat_template.empty()) return t.status();
    if (!absl::IsNotFound(t.status())) {
      TP_LOG(WARNING) << "chat requests disabled: " << t.status().message()
                      << " (pass --chat-template NAME|FILE to use another)";
    }
    return std::unique_ptr<ChatTemplate>();
  }
  // A first conversation, so that a template that cannot render even that
  // is said at startup rather than on the first request.
  ChatPrompt probe;
  probe.messages.push_back({"user", "Hello"});
  absl::StatusOr<std::string> text = t->Apply(probe);
  if (!text.ok()) {
    TP_LOG(WARNING)
        << text.status().message()
        << " (on a one-message conversation; chat requests it cannot "
           "render will be refused)";
  }
  return std::make_unique<ChatTemplate>(std::move(*t));
}

std::string HostOf(const std::string& address) {
  const size_t colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

// The public port: the Inference and Rendezvous services, TLS when a
// certificate is given, health checking and reflection.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartGrpcServer(
    const CoordinatorOptions& options,
    const std::vector<grpc::Service*>& services, int* port) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  std::shared_ptr<grpc::ServerCredentials> credentials =
      grpc::InsecureServerCredentials();
  if (!options.tls_cert_file.empty() || !options.tls_key_file.empty()) {
    TP_ASSIGN_OR_RETURN(std::string cert, ReadSecretFile(options.tls_cert_file,
                                                         "TLS certificate"));
    TP_ASSIGN_OR_RETURN(std::string key,
                        ReadSecretFile(options.tls_key_file, "TLS key"));
    grpc::SslServerCredentialsOptions o(
        GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    o.pem_key_cert_pairs.push_back({key, cert});
    credentials = grpc::SslServerCredentials(o);
  }
  builder.AddListeningPort(options.listen, credentials, port);
  builder.SetMaxReceiveMessageSize(16 << 20);
  for (grpc::Service* service : services) builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || *port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "could not listen on ", options.listen,
        " (address in use? pass --listen HOST:PORT with a free port)"));
  }
  return server;
}

// The worker group's options; `rendezvous` is how ranks reach us.
WorkerGroupOptions GroupOptions(const CoordinatorOptions& options,
                                const std::string& rendezvous) {
  WorkerGroupOptions o;
  o.rendezvous_address = rendezvous;
  o.model_path = options.model_path;
  o.backend = options.backend;
  o.threads = options.threads;
  o.block_size = options.block_size;
  o.kv_cache_bytes = options.kv_cache_bytes;
  o.max_step_tokens = options.max_step_tokens;
  o.max_step_sequences = options.max_step_sequences;
  o.step_timeout = std::chrono::milliseconds(options.step_timeout_ms);
  o.collective_timeout =
      std::chrono::milliseconds(options.collective_timeout_ms);
  o.security = options.worker_security;
  o.rendezvous_tls = !options.tls_cert_file.empty();
  return o;
}

}  // namespace

void BlockTerminationSignals() {
  sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

absl::Status RunCoordinator(
    const CoordinatorOptions& options, WorkerPool* pool,
    const std::function<void(const std::string& address)>& on_ready) {
  TP_ASSIGN_OR_RETURN(std::unique_ptr<ModelWeights> model,
                      OpenModel(options.model_path));
  TP_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer,
                      LoadTokenizer(model->gguf(), options.model_path));
  TP_ASSIGN_OR_RETURN(std::unique_ptr<ChatTemplate> chat,
                      LoadChat(options, *model, *tokenizer));
  TP_ASSIGN_OR_RETURN(v1::ModelInfo info, DescribeModel(*model));

  RequestLimits limits;
  limits.max_context = model->config().max_positions;
  limits.vocab_size = static_cast<int32_t>(model->config().vocab_size);
  InferenceService inference(info);
  inference.SetTokenizer(tokenizer.get(), chat.get(), limits);
  RendezvousLimits rendezvous_limits;
  rendezvous_limits.token = options.worker_security.token;
  RendezvousService rendezvous(rendezvous_limits);
  inference.SetApiKeys(options.api_keys);

  int port = 0;
  TP_ASSIGN_OR_RETURN(
      std::unique_ptr<grpc::Server> server,
      StartGrpcServer(options, {&inference, &rendezvous}, &port));
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  // Readiness is the overall status ("") and the Inference service's;
  // "liveness" stays SERVING while this process runs (Kubernetes probes).
  auto set_ready = [health](bool ready) {
    health->SetServingStatus("", ready);
    health->SetServingStatus("tpserve.v1.Inference", ready);
  };
  set_ready(false);  // Not ready until the workers are.
  health->SetServingStatus("liveness", true);
  const std::string host = HostOf(options.listen);
  const std::string address = absl::StrCat(host, ":", port);
  std::string advertise = options.advertise_host;
  if (advertise.empty()) {
    advertise = (host == "0.0.0.0" || host == "[::]") ? "127.0.0.1" : host;
  }
  TP_LOG(INFO) << "coordinator listening on " << address;

  const WorkerGroupOptions group_options =
      GroupOptions(options, absl::StrCat(advertise, ":", port));
  // Epoch `epoch` of the group: live workers (restarted or waited for), a
  // fresh rendezvous prefix, load, warm up. Also how the engine rebuilds
  // after a failure.
  std::unique_ptr<Metrics> metrics = MakePrometheusMetrics();
  if (!options.metrics_listen.empty()) {
    TP_ASSIGN_OR_RETURN(std::string at, metrics->Serve(options.metrics_listen));
    std::cout << "tpserve metrics on " << at << std::endl;
  }
  int64_t restarts_seen = 0;
  auto make_group =
      [&, group_options](
          int epoch) -> absl::StatusOr<std::unique_ptr<WorkerGroup>> {
    WorkerGroupOptions o = group_options;
    TP_ASSIGN_OR_RETURN(o.addresses, pool->Ensure(o.connect_timeout));
    const int64_t restarts = pool->restarts();
    if (restarts > restarts_seen) {
      metrics->WorkerRestarted(restarts - restarts_seen);
      restarts_seen = restarts;
    }
    o.group_id = absl::StrCat("group-", epoch);
    auto group = WorkerGroup::Start(
        o, [](int rank, const worker::v1::LoadModelProgress& p) {
          TP_LOG(INFO) << absl::StrFormat("rank %d: %s (%.0f%%)", rank,
                                          p.stage(), 100.0 * p.fraction());
        });
    rendezvous.Clear(o.group_id + "/");
    return group;
  };
  const auto load_start = std::chrono::steady_clock::now();
  absl::StatusOr<std::unique_ptr<WorkerGroup>> group = make_group(1);
  if (!group.ok()) {
    server->Shutdown(std::chrono::system_clock::now() +
                     std::chrono::seconds(1));
    return group.status();
  }
  const int world = (*group)->world_size();

  EngineOptions engine_options;
  SchedulerConfig& config = engine_options.scheduler;
  config.block_size = options.block_size;
  config.num_blocks = (*group)->kv_blocks();
  config.max_step_tokens = options.max_step_tokens;
  config.max_step_sequences = options.max_step_sequences;
  config.max_queue = options.max_queue;
  TP_RETURN_IF_ERROR(ValidateSchedulerConfig(config));
  engine_options.max_rebuild_attempts = options.max_rebuild_attempts;
  engine_options.metrics = metrics.get();
  engine_options.exited_probe = [pool] { return pool->CheckExited(); };
  engine_options.on_readiness = [set_ready](bool ready, const std::string&) {
    set_ready(ready);
  };
  ExecutorFactory rebuild =
      [&make_group](
          int epoch) -> absl::StatusOr<std::unique_ptr<StepExecutor>> {
    TP_ASSIGN_OR_RETURN(std::unique_ptr<WorkerGroup> g, make_group(epoch));
    return std::unique_ptr<StepExecutor>(std::move(g));
  };
  auto engine = std::make_unique<Engine>(std::move(*group), rebuild,
                                         tokenizer.get(), engine_options);
  inference.Serve(engine.get(), world);
  // The OpenAI-compatible HTTP door on the same engine (destroyed before
  // it); not ready while the engine is not, nor once draining starts.
  std::atomic<bool> draining{false};
  HttpServer http;
  if (!options.http_listen.empty()) {
    HttpServerOptions o;
    o.listen = options.http_listen;
    o.model_name = options.served_model_name.empty()
                       ? ModelNameFromPath(options.model_path)
                       : options.served_model_name;
    o.api_keys = options.api_keys;
    TP_ASSIGN_OR_RETURN(
        std::string http_address,
        http.Start(o, engine.get(), tokenizer.get(), chat.get(), limits,
                   [&engine, &draining] {
                     return draining ? absl::UnavailableError("draining")
                                     : engine->readiness();
                   }));
    std::cout << "tpserve http on " << http_address << std::endl;
  }
  set_ready(true);
  TP_LOG(INFO) << absl::StrFormat(
      "ready in %.1f s: TP %d, KV cache %d blocks x %d tokens",
      std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                    load_start)
          .count(),
      world, config.num_blocks, config.block_size);
  if (on_ready) on_ready(address);

  // Wait for SIGTERM/SIGINT (blocked in every thread; see
  // BlockTerminationSignals), then drain.
  sigset_t set = TerminationSignals();
  int sig = 0;
  sigwait(&set, &sig);
  TP_LOG(INFO) << "signal " << sig << ": draining (up to "
               << options.drain_seconds << " s)";
  set_ready(false);
  draining = true;
  inference.StopServing();
  const auto drain_end = std::chrono::steady_clock::now() +
                         std::chrono::seconds(options.drain_seconds);
  engine->WaitIdle(drain_end);
  // Shutdown cancels the calls still open after its deadline; their
  // reactors tell the engine, which must still be running to finish them.
  http.Stop();  // Cancels what is left; the engine still runs.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  engine.reset();
  TP_LOG(INFO) << "stopped";
  return absl::OkStatus();
}

}  // namespace tpserve
