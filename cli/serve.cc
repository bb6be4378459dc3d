// `tpserve serve` (coordinator + N spawned workers on this machine) and
// `tpserve coordinator` / `tpserve-coordinator` (workers given by address).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/cli.h"
#include "cli/server.h"
#include "common/net/channel_security.h"
#include "coordinator/worker_pool.h"

namespace tpserve::cli {
namespace {

// clang-format off
const std::vector<std::string> kCoordinatorFlags = {
    "model", "listen", "advertise-host", "chat-template", "threads",
    "block-size", "kv-cache-mb", "max-step-tokens", "max-step-seqs",
    "max-queue", "drain-seconds", "step-timeout-ms", "collective-timeout-ms",
    "max-rebuild-attempts", "worker-token-file", "worker-tls-cert",
    "worker-tls-key", "worker-tls-ca", "worker-tls-server-name", "tls-cert",
    "tls-key", "api-keys-file", "http-listen", "served-model-name",
    "metrics-listen", "backend"};
// clang-format on

absl::Status IntFlag(const Flags& flags, const std::string& name, int64_t lo,
                     int64_t hi, int64_t* out) {
  const std::string v = flags.Get(name);
  if (v.empty()) return absl::OkStatus();
  int64_t x = 0;
  if (!absl::SimpleAtoi(v, &x) || x < lo || x > hi) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " takes an integer in [", lo, ", ", hi,
                     "], got '", v, "'"));
  }
  *out = x;
  return absl::OkStatus();
}

absl::StatusOr<CoordinatorOptions> OptionsFromFlags(const Flags& flags) {
  CoordinatorOptions o;
  o.model_path = flags.Get("model");
  if (o.model_path.empty()) {
    return absl::InvalidArgumentError("--model MODEL is required");
  }
  if (!flags.Get("listen").empty()) o.listen = flags.Get("listen");
  o.advertise_host = flags.Get("advertise-host");
  o.chat_template = flags.Get("chat-template");
  int64_t threads = o.threads, block = o.block_size,
          kv_mb = static_cast<int64_t>(o.kv_cache_bytes >> 20),
          step_tokens = o.max_step_tokens, step_seqs = o.max_step_sequences,
          queue = o.max_queue, drain = o.drain_seconds,
          step_timeout = o.step_timeout_ms,
          collective_timeout = o.collective_timeout_ms,
          rebuilds = o.max_rebuild_attempts;
  for (absl::Status s :
       {IntFlag(flags, "threads", 0, 1024, &threads),
        IntFlag(flags, "block-size", 1, 1024, &block),
        IntFlag(flags, "kv-cache-mb", 1, 1 << 24, &kv_mb),
        IntFlag(flags, "max-step-tokens", 1, 1 << 20, &step_tokens),
        IntFlag(flags, "max-step-seqs", 1, 4096, &step_seqs),
        IntFlag(flags, "max-queue", 0, 1 << 20, &queue),
        IntFlag(flags, "drain-seconds", 0, 3600, &drain),
        IntFlag(flags, "step-timeout-ms", 100, 3600000, &step_timeout),
        IntFlag(flags, "collective-timeout-ms", 100, 3600000,
                &collective_timeout),
        IntFlag(flags, "max-rebuild-attempts", 0, 1000, &rebuilds)}) {
    if (!s.ok()) return s;
  }
  o.threads = static_cast<int32_t>(threads);
  o.block_size = static_cast<int32_t>(block);
  o.kv_cache_bytes = static_cast<uint64_t>(kv_mb) << 20;
  o.max_step_tokens = static_cast<int32_t>(step_tokens);
  o.max_step_sequences = static_cast<int32_t>(step_seqs);
  o.max_queue = static_cast<int32_t>(queue);
  o.drain_seconds = static_cast<int32_t>(drain);
  o.step_timeout_ms = static_cast<int32_t>(step_timeout);
  o.collective_timeout_ms = static_cast<int32_t>(collective_timeout);
  o.max_rebuild_attempts = static_cast<int32_t>(rebuilds);
  absl::StatusOr<ChannelSecurity> security = LoadChannelSecurity(
      flags.Get("worker-token-file"), flags.Get("worker-tls-cert"),
      flags.Get("worker-tls-key"), flags.Get("worker-tls-ca"));
  if (!security.ok()) return security.status();
  o.worker_security = *std::move(security);
  o.worker_security.tls_server_name = flags.Get("worker-tls-server-name");
  o.metrics_listen = flags.Get("metrics-listen");
  if (!flags.Get("backend").empty()) o.backend = flags.Get("backend");
  if (o.backend != "cpu" && o.backend != "cuda") {
    return absl::InvalidArgumentError(
        absl::StrCat("--backend takes cpu or cuda, got '", o.backend, "'"));
  }
  o.tls_cert_file = flags.Get("tls-cert");
  o.tls_key_file = flags.Get("tls-key");
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS for the public port needs both --tls-cert and --tls-key");
  }
  if (!flags.Get("api-keys-file").empty()) {
    absl::StatusOr<std::string> keys =
        ReadSecretFile(flags.Get("api-keys-file"), "API keys");
    if (!keys.ok()) return keys.status();
    for (absl::string_view line : absl::StrSplit(*keys, '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (!line.empty() && line[0] != '#') o.api_keys.emplace_back(line);
    }
    if (o.api_keys.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the API keys file ", flags.Get("api-keys-file"), " has no keys"));
    }
  }
  o.http_listen = flags.Get("http-listen");
  o.served_model_name = flags.Get("served-model-name");
  return o;
}

void PrintReady(const std::string& address) {
  // One machine-readable line on stdout (scripts and tests wait for it).
  std::cout << "tpserve ready on " << address << std::endl;
}

std::string Dirname(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

bool Executable(const std::string& path) {
  return access(path.c_str(), X_OK) == 0;
}

// The tpserve-worker binary: --worker-bin, $TPSERVE_WORKER_BIN, next to
// this binary, in the sibling worker/ folder of a build tree, or on PATH.
absl::StatusOr<std::string> FindWorkerBinary(const Flags& flags) {
  if (!flags.Get("worker-bin").empty()) return flags.Get("worker-bin");
  if (const char* env = std::getenv("TPSERVE_WORKER_BIN")) return env;
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = '\0';
    const std::string dir = Dirname(self);
    for (const std::string& c :
         {dir + "/tpserve-worker", dir + "/../worker/tpserve-worker"}) {
      if (Executable(c)) return c;
    }
  }
  if (const char* path = std::getenv("PATH")) {
    for (absl::string_view d : absl::StrSplit(path, ':')) {
      const std::string c = absl::StrCat(d, "/tpserve-worker");
      if (Executable(c)) return c;
    }
  }
  return absl::NotFoundError(
      "cannot find the tpserve-worker binary; pass --worker-bin PATH");
}

}  // namespace

int Serve(int argc, char** argv) {
  BlockTerminationSignals();
  std::vector<std::string> with_value = kCoordinatorFlags;
  with_value.push_back("tp");
  with_value.push_back("worker-bin");
  auto flags = ParseFlags(argc, argv, with_value, {});
  if (!flags.ok()) return Fail(flags.status());
  if (!flags->positional.empty()) {
    return Fail(absl::InvalidArgumentError(
        "serve takes no positional arguments: tpserve serve --model MODEL "
        "[--tp N] [--listen HOST:PORT]"));
  }
  auto options = OptionsFromFlags(*flags);
  if (!options.ok()) return Fail(options.status());
  int64_t tp = 1;
  if (absl::Status s = IntFlag(*flags, "tp", 1, 64, &tp); !s.ok()) {
    return Fail(s);
  }
  auto bin = FindWorkerBinary(*flags);
  if (!bin.ok()) return Fail(bin.status());
  // Threads per worker: the cores shared out, unless given.
  const int cores =
      std::max(1, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
  const int per_worker = options->threads > 0
                             ? options->threads
                             : std::max(1, cores / static_cast<int>(tp));
  options->threads = per_worker;

  // The spawned workers only talk to this coordinator: a fresh random token
  // unless one was given, and this coordinator's certificate for mTLS.
  if (options->worker_security.token.empty()) {
    options->worker_security.token = RandomHex128();
  }
  std::vector<std::string> worker_args = {"--threads",
                                          std::to_string(per_worker)};
  if (options->worker_security.tls()) {
    for (const char* f : {"worker-tls-cert", "worker-tls-key", "worker-tls-ca",
                          "worker-tls-server-name"}) {
      if (flags->Get(f).empty()) continue;
      worker_args.push_back(std::string("--") + (f + 7));  // Drop "worker-".
      worker_args.push_back(flags->Get(f));
    }
  }
  SpawnedWorkerPool pool(*bin, static_cast<int>(tp), worker_args,
                         options->worker_security);
  absl::Status s = RunCoordinator(*options, &pool, PrintReady);
  pool.StopAll();
  if (!s.ok()) return Fail(s);
  return 0;
}

int Coordinator(int argc, char** argv) {
  BlockTerminationSignals();
  std::vector<std::string> with_value = kCoordinatorFlags;
  with_value.push_back("workers");
  auto flags = ParseFlags(argc, argv, with_value, {});
  if (!flags.ok()) return Fail(flags.status());
  auto options = OptionsFromFlags(*flags);
  if (!options.ok()) return Fail(options.status());
  std::vector<std::string> workers;
  for (absl::string_view w :
       absl::StrSplit(flags->Get("workers"), ',', absl::SkipEmpty())) {
    workers.emplace_back(w);
  }
  if (workers.empty()) {
    return Fail(absl::InvalidArgumentError(
        "no workers: pass --workers HOST:PORT,... (or use `tpserve serve`)"));
  }
  StaticWorkerPool pool(std::move(workers), options->worker_security);
  absl::Status s = RunCoordinator(*options, &pool, PrintReady);
  if (!s.ok()) return Fail(s);
  return 0;
}

}  // namespace tpserve::cli
