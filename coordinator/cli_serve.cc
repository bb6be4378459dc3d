// `tpserve serve` (coordinator + N spawned workers on this machine) and
// `tpserve coordinator` / `tpserve-coordinator` (workers given by address).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "coordinator/cli.h"
#include "coordinator/server.h"

namespace tpserve::cli {
namespace {

const std::vector<std::string> kCoordinatorFlags = {
    "model",         "listen",     "advertise-host", "chat-template",
    "threads",       "block-size", "kv-cache-mb",    "max-step-tokens",
    "max-step-seqs", "max-queue",  "drain-seconds",  "step-timeout-ms"};

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
          step_timeout = o.step_timeout_ms;
  for (absl::Status s :
       {IntFlag(flags, "threads", 0, 1024, &threads),
        IntFlag(flags, "block-size", 1, 1024, &block),
        IntFlag(flags, "kv-cache-mb", 1, 1 << 24, &kv_mb),
        IntFlag(flags, "max-step-tokens", 1, 1 << 20, &step_tokens),
        IntFlag(flags, "max-step-seqs", 1, 4096, &step_seqs),
        IntFlag(flags, "max-queue", 0, 1 << 20, &queue),
        IntFlag(flags, "drain-seconds", 0, 3600, &drain),
        IntFlag(flags, "step-timeout-ms", 100, 3600000, &step_timeout)}) {
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

struct Child {
  pid_t pid = -1;
  std::string address;
};

// Starts one worker on a free loopback port and reads the address it
// prints ("tpserve-worker listening on HOST:PORT").
absl::StatusOr<Child> SpawnWorker(const std::string& bin, int rank,
                                  int threads) {
  int fds[2];
  if (pipe(fds) != 0) return absl::InternalError("pipe failed");
  const std::string threads_arg = std::to_string(threads);
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    // Child: stdout into the pipe, signals unblocked, and die with the
    // parent so no worker outlives a crashed `serve`.
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_UNBLOCK, &all, nullptr);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    execl(bin.c_str(), bin.c_str(), "--listen", "127.0.0.1:0", "--threads",
          threads_arg.c_str(), static_cast<char*>(nullptr));
    std::cerr << "tpserve: cannot run " << bin << "\n";
    _exit(127);
  }
  close(fds[1]);
  Child child;
  child.pid = pid;
  std::string line;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (line.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fds[0], POLLIN, 0};
    if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      break;
    }
    char buf[256];
    const ssize_t got = read(fds[0], buf, sizeof(buf));
    if (got <= 0) break;
    line.append(buf, static_cast<size_t>(got));
  }
  close(fds[0]);
  const std::string prefix = "tpserve-worker listening on ";
  const size_t at = line.find(prefix);
  const size_t end = line.find('\n');
  if (at == std::string::npos || end == std::string::npos) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return absl::UnavailableError(
        absl::StrCat("worker rank ", rank, " (", bin,
                     ") did not start; see its errors above"));
  }
  child.address = line.substr(at + prefix.size(), end - at - prefix.size());
  std::cerr << "tpserve: worker rank " << rank << " (pid " << pid
            << ") listening on " << child.address << "\n";
  return child;
}

void StopChildren(std::vector<Child>& children) {
  for (Child& c : children) kill(c.pid, SIGTERM);
  for (Child& c : children) {
    // Up to 5 s each for a clean exit, then SIGKILL.
    for (int i = 0; i < 100; ++i) {
      if (waitpid(c.pid, nullptr, WNOHANG) == c.pid) {
        c.pid = -1;
        break;
      }
      usleep(50000);
    }
    if (c.pid > 0) {
      kill(c.pid, SIGKILL);
      waitpid(c.pid, nullptr, 0);
    }
  }
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

  std::vector<Child> children;
  for (int r = 0; r < tp; ++r) {
    auto child = SpawnWorker(*bin, r, per_worker);
    if (!child.ok()) {
      StopChildren(children);
      return Fail(child.status());
    }
    options->workers.push_back(child->address);
    children.push_back(*child);
  }
  absl::Status s = RunCoordinator(*options, PrintReady);
  StopChildren(children);
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
  for (absl::string_view w :
       absl::StrSplit(flags->Get("workers"), ',', absl::SkipEmpty())) {
    options->workers.emplace_back(w);
  }
  absl::Status s = RunCoordinator(*options, PrintReady);
  if (!s.ok()) return Fail(s);
  return 0;
}

}  // namespace tpserve::cli
