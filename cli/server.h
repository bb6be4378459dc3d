// The coordinator process: public API, rendezvous for the worker group,
// health and reflection, the engine, and a graceful drain on SIGTERM.
//
// Shared by `tpserve-coordinator` (workers given by address) and
// `tpserve serve` (which spawns its workers first).
#ifndef TPSERVE_CLI_SERVER_H_
#define TPSERVE_CLI_SERVER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/net/channel_security.h"
#include "coordinator/worker_pool.h"

namespace tpserve {

struct CoordinatorOptions {
  std::string model_path;  // Read by the coordinator and workers.
  std::string listen = "127.0.0.1:50051";  // Port 0: pick a free one.
  // Host the workers use to reach this coordinator's Rendezvous service;
  // default: the listen host (or 127.0.0.1 when listening on all hosts).
  std::string advertise_host;
  std::string chat_template;  // --chat-template: a built-in name or a file.
  int32_t threads = 0;        // Compute threads per worker (0: all cores).
  int32_t block_size = 16;
  uint64_t kv_cache_bytes = 512ull << 20;  // Per rank.
  int32_t max_step_tokens = 512;
  int32_t max_step_sequences = 64;
  int32_t max_queue = 256;
  int32_t drain_seconds = 30;  // Grace period for in-flight work on SIGTERM.
  int32_t step_timeout_ms = 60000;        // A slower step breaks the group.
  int32_t collective_timeout_ms = 10000;  // Per collective, in the ranks.
  int32_t max_rebuild_attempts = 3;       // Consecutive, before giving up.
  // How the coordinator authenticates to its workers (token, mTLS); the
  // Rendezvous service takes the same token.
  ChannelSecurity worker_security;
  // TLS for the public port ("" = plaintext), and API keys the public API
  // requires ("authorization: Bearer KEY"; none = open).
  std::string tls_cert_file, tls_key_file;
  std::vector<std::string> api_keys;
  // OpenAI-compatible HTTP door (api/http_server.h): HOST:PORT,
  // port 0 picks one; "" = off. It takes api_keys too. The model id it
  // serves is served_model_name, or else the model file's name.
  std::string http_listen;
  std::string served_model_name;
  // Prometheus /metrics on HOST:PORT ("" = not served).
  std::string metrics_listen;
  // Workers' compute backend: "cpu" or "cuda".
  std::string backend = "cpu";
};

// Blocks SIGTERM/SIGINT/SIGHUP in the calling thread (and so in every
// thread started after it) so the coordinator can wait for them with
// sigwait. Call first thing in main.
void BlockTerminationSignals();

// Runs the coordinator over the workers of `pool` until SIGTERM/SIGINT,
// then drains. `on_ready` is called with the public address once every rank
// has loaded and warmed up. Returns the status that ended it (OK after a
// clean drain). A broken worker group is rebuilt through `pool`.
absl::Status RunCoordinator(
    const CoordinatorOptions& options, WorkerPool* pool,
    const std::function<void(const std::string& address)>& on_ready);

}  // namespace tpserve

#endif  // TPSERVE_CLI_SERVER_H_
