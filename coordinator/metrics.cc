#include "coordinator/metrics.h"

#include <netdb.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace tpserve {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;

// Pre-created so that every series exists (at 0) from the first scrape:
// rate() and absent() misbehave on series that appear only after the first
// event.
constexpr const char* kOutcomes[] = {
    "ok",
    "cancelled",
    "deadline_exceeded",
    "invalid_argument",
    "resource_exhausted",
    "unavailable",
    "error",
};
constexpr const char* kGroupStates[] = {"ready", "recovering", "failed",
                                        "draining"};

// From a fast first token on a short prompt (5 ms) to a long prompt queued
// behind a full batch or a recovery (60 s).
const Histogram::BucketBoundaries& TtftBuckets() {
  static const auto* buckets = new Histogram::BucketBoundaries{
      0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75,
      1.0,   1.5,  2.0,   3.0,  5.0,   7.5, 10,   20,  30,  60};
  return *buckets;
}

// A decode step of a small model on a GPU (1 ms) to a step stalled by a
// long prefill chunk or a slow rank (5 s).
const Histogram::BucketBoundaries& ItlBuckets() {
  static const auto* buckets = new Histogram::BucketBoundaries{
      0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05,
      0.075, 0.1,    0.15,  0.2,    0.3,  0.5,   0.75, 1.0,   2.5,  5.0};
  return *buckets;
}

// Like inter-token latency, with room for a step of many prefill chunks.
const Histogram::BucketBoundaries& StepBuckets() {
  static const auto* buckets = new Histogram::BucketBoundaries{
      0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05,
      0.075, 0.1,    0.15,  0.2,    0.3,  0.5,   0.75, 1.0,   2.5,  5.0,  10.0};
  return *buckets;
}

// Powers of two up to well past any max_num_seqs; le="1" isolates steps that
// ran a single sequence.
const Histogram::BucketBoundaries& SequenceBuckets() {
  static const auto* buckets = new Histogram::BucketBoundaries{
      1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  return *buckets;
}

// Connects to host:port every 10 ms until `stop`, to wake a civetweb
// listener that is shutting down. Failures are ignored: at worst civetweb
// stops on its own poll timeout.
void WakeListenerUntil(const std::string& host, int port,
                       const std::atomic<bool>& stop) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) !=
      0) {
    return;
  }
  while (!stop.load()) {
    const int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
      connect(fd, found->ai_addr, found->ai_addrlen);
      close(fd);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  freeaddrinfo(found);
}

class PrometheusMetrics : public Metrics {
 public:
  PrometheusMetrics()
      : registry_(std::make_shared<prometheus::Registry>()),
        requests_(BuildCounter()
                      .Name("tpserve_requests_total")
                      .Help("Requests finished, by outcome (ok, cancelled, "
                            "deadline_exceeded, invalid_argument, "
                            "resource_exhausted, unavailable, error).")
                      .Register(*registry_)),
        ttft_(BuildHistogram()
                  .Name("tpserve_time_to_first_token_seconds")
                  .Help("From a request's arrival to its first output token.")
                  .Register(*registry_)
                  .Add({}, TtftBuckets())),
        itl_(BuildHistogram()
                 .Name("tpserve_inter_token_latency_seconds")
                 .Help("Between consecutive output tokens of a request.")
                 .Register(*registry_)
                 .Add({}, ItlBuckets())),
        step_seconds_(BuildHistogram()
                          .Name("tpserve_step_duration_seconds")
                          .Help("Wall time of one engine step (schedule, run "
                                "on every rank, sample).")
                          .Register(*registry_)
                          .Add({}, StepBuckets())),
        step_sequences_(BuildHistogram()
                            .Name("tpserve_step_sequences")
                            .Help("Sequences run in one engine step.")
                            .Register(*registry_)
                            .Add({}, SequenceBuckets())),
        prefill_tokens_(BuildCounter()
                            .Name("tpserve_prefill_tokens_total")
                            .Help("Prompt tokens run through the model "
                                  "(recomputation after preemption counts "
                                  "again).")
                            .Register(*registry_)
                            .Add({})),
        decode_tokens_(BuildCounter()
                           .Name("tpserve_decode_tokens_total")
                           .Help("Tokens run through the model in decode "
                                 "(one per decoding sequence per step).")
                           .Register(*registry_)
                           .Add({})),
        generated_tokens_(BuildCounter()
                              .Name("tpserve_generated_tokens_total")
                              .Help("Output tokens sampled and sent.")
                              .Register(*registry_)
                              .Add({})),
        preemptions_(BuildCounter()
                         .Name("tpserve_preemptions_total")
                         .Help("Running sequences preempted for lack of KV "
                               "blocks (recomputed later).")
                         .Register(*registry_)
                         .Add({})),
        waiting_(BuildGauge()
                     .Name("tpserve_sequences_waiting")
                     .Help("Sequences waiting for admission (new or "
                           "preempted).")
                     .Register(*registry_)
                     .Add({})),
        running_(BuildGauge()
                     .Name("tpserve_sequences_running")
                     .Help("Sequences holding KV blocks and being run.")
                     .Register(*registry_)
                     .Add({})),
        kv_used_(BuildGauge()
                     .Name("tpserve_kv_blocks_used")
                     .Help("KV-cache blocks in use.")
                     .Register(*registry_)
                     .Add({})),
        kv_free_(BuildGauge()
                     .Name("tpserve_kv_blocks_free")
                     .Help("KV-cache blocks free.")
                     .Register(*registry_)
                     .Add({})),
        group_state_(BuildGauge()
                         .Name("tpserve_group_state")
                         .Help("1 for the worker group's current state "
                               "(ready, recovering, failed, draining), 0 for "
                               "the others.")
                         .Register(*registry_)),
        group_failures_(BuildCounter()
                            .Name("tpserve_group_failures_total")
                            .Help("Times the worker group failed (a rank "
                                  "crashed, hung or became unreachable).")
                            .Register(*registry_)
                            .Add({})),
        worker_restarts_(BuildCounter()
                             .Name("tpserve_worker_restarts_total")
                             .Help("Worker processes restarted.")
                             .Register(*registry_)
                             .Add({})) {
    for (const char* outcome : kOutcomes) {
      outcome_counters_.emplace(outcome,
                                &requests_.Add({{"outcome", outcome}}));
    }
    for (const char* state : kGroupStates) {
      group_state_.Add({{"state", state}}).Set(0);
    }
  }

  ~PrometheusMetrics() override {
    absl::MutexLock lock(&serve_mu_);
    if (exposer_ == nullptr) return;
    // civetweb's listener re-checks its stop flag only between 2-second
    // polls, so a plain reset would hold up every shutdown by up to 2 s;
    // connecting to the port wakes the poll. (The exposer's threads read
    // the registry, so it must stop before the registry goes anyway.)
    std::atomic<bool> stopped{false};
    std::thread waker(WakeListenerUntil, wake_host_, port_, std::cref(stopped));
    exposer_.reset();
    stopped.store(true);
    waker.join();
  }

  absl::StatusOr<std::string> Serve(const std::string& listen) override {
    int port = 0;
    const size_t colon = listen.rfind(':');
    if (colon == std::string::npos || colon == 0 ||
        !absl::SimpleAtoi(absl::string_view(listen).substr(colon + 1), &port) ||
        port < 0 || port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--metrics-listen: expected HOST:PORT, got \"", listen, "\""));
    }
    const absl::string_view host = absl::string_view(listen).substr(0, colon);
    if (absl::StrContains(host, ',')) {
      // civetweb would read a list and listen on several ports.
      return absl::InvalidArgumentError(absl::StrCat(
          "--metrics-listen: expected one HOST:PORT, got \"", listen, "\""));
    }
    if (absl::StartsWith(host, "[")) {
      // Debian's civetweb is built without IPv6 (mg_check_feature(8) is 0).
      return absl::InvalidArgumentError(absl::StrCat(
          "--metrics-listen: IPv6 is not supported (got \"", listen,
          "\"); use an IPv4 address, e.g. 0.0.0.0:", port));
    }
    absl::MutexLock lock(&serve_mu_);
    if (exposer_ != nullptr) {
      return absl::FailedPreconditionError("metrics are already served");
    }
    std::unique_ptr<prometheus::Exposer> exposer;
    try {
      // civetweb's "listening_ports" takes the same HOST:PORT syntax. It
      // throws when it cannot bind (or resolve HOST).
      exposer = std::make_unique<prometheus::Exposer>(listen);
    } catch (const std::exception& e) {
      return absl::UnavailableError(absl::StrCat(
          "cannot serve metrics on ", listen, " (", e.what(),
          "): is the port in use? Pick another with --metrics-listen"));
    }
    const std::vector<int> ports = exposer->GetListeningPorts();
    if (ports.empty() || ports[0] <= 0) {
      return absl::InternalError(absl::StrCat("metrics server on ", listen,
                                              " reports no listening port"));
    }
    exposer->RegisterCollectable(registry_);
    exposer_ = std::move(exposer);
    port_ = ports[0];
    // The wildcard address is not a destination: reach it via loopback.
    wake_host_ = host == "0.0.0.0" ? "127.0.0.1" : std::string(host);
    return absl::StrCat(host, ":", ports[0]);
  }

  void RequestFinished(const std::string& outcome) override {
    auto it = outcome_counters_.find(outcome);
    if (it != outcome_counters_.end()) {
      it->second->Increment();
      return;
    }
    // Not one of the documented outcomes: still counted, under its own
    // label (Family::Add is thread-safe and returns the existing series).
    requests_.Add({{"outcome", outcome}}).Increment();
  }

  void TimeToFirstToken(double seconds) override { ttft_.Observe(seconds); }

  void InterTokenLatency(double seconds) override { itl_.Observe(seconds); }

  void Step(double seconds, int sequences, int prefill_tokens,
            int decode_tokens) override {
    step_seconds_.Observe(seconds);
    step_sequences_.Observe(sequences);
    prefill_tokens_.Increment(prefill_tokens);
    decode_tokens_.Increment(decode_tokens);
  }

  void TokensGenerated(int64_t n) override {
    generated_tokens_.Increment(static_cast<double>(n));
  }

  void Preempted(int64_t n) override {
    preemptions_.Increment(static_cast<double>(n));
  }

  void SetQueue(int64_t waiting, int64_t running) override {
    waiting_.Set(static_cast<double>(waiting));
    running_.Set(static_cast<double>(running));
  }

  void SetKvBlocks(int64_t used, int64_t free) override {
    kv_used_.Set(static_cast<double>(used));
    kv_free_.Set(static_cast<double>(free));
  }

  void SetGroupState(const std::string& state) override {
    absl::MutexLock lock(&state_mu_);
    // Clearing the old state first: a scrape in between sees no state
    // rather than two.
    if (current_state_ != nullptr) current_state_->Set(0);
    current_state_ = &group_state_.Add({{"state", state}});
    current_state_->Set(1);
  }

  void GroupFailed() override { group_failures_.Increment(); }

  void WorkerRestarted(int64_t n) override {
    worker_restarts_.Increment(static_cast<double>(n));
  }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  Family<Counter>& requests_;
  Histogram& ttft_;
  Histogram& itl_;
  Histogram& step_seconds_;
  Histogram& step_sequences_;
  Counter& prefill_tokens_;
  Counter& decode_tokens_;
  Counter& generated_tokens_;
  Counter& preemptions_;
  Gauge& waiting_;
  Gauge& running_;
  Gauge& kv_used_;
  Gauge& kv_free_;
  Family<Gauge>& group_state_;
  Counter& group_failures_;
  Counter& worker_restarts_;
  // Filled in the constructor, read-only afterwards: lock-free lookups.
  std::map<std::string, Counter*, std::less<>> outcome_counters_;

  absl::Mutex state_mu_;
  Gauge* current_state_ ABSL_GUARDED_BY(state_mu_) = nullptr;

  absl::Mutex serve_mu_;
  std::unique_ptr<prometheus::Exposer> exposer_ ABSL_GUARDED_BY(serve_mu_);
  // Where the destructor connects to wake the listener.
  std::string wake_host_ ABSL_GUARDED_BY(serve_mu_);
  int port_ ABSL_GUARDED_BY(serve_mu_) = 0;
};

}  // namespace

std::unique_ptr<Metrics> MakePrometheusMetrics() {
  return std::make_unique<PrometheusMetrics>();
}

}  // namespace tpserve
