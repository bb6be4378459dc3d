// The coordinator's engine: continuous batching over one worker group.
//
// One thread runs the loop: take cancellations and expired deadlines, ask
// the Scheduler for the next step (new requests join the running batch at
// the next step; prefill chunks and decodes share a step under the token
// budget; the newest sequences are preempted when KV blocks run out), send
// it to every rank, and turn rank 0's sampled tokens into text through each
// request's OutputText (stop strings end generation exactly). RPC threads
// only Submit and Cancel; both are short and never wait for a step.
#ifndef TPSERVE_COORDINATOR_ENGINE_H_
#define TPSERVE_COORDINATOR_ENGINE_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "common/tokenizer.h"
#include "coordinator/generation.h"
#include "coordinator/metrics.h"
#include "coordinator/output_text.h"
#include "coordinator/scheduler.h"
#include "coordinator/step_executor.h"

namespace tpserve {

struct EngineStats {
  uint64_t steps = 0;
  uint64_t group_failures = 0;  // Steps lost to a broken group.
  uint64_t recoveries = 0;      // Groups rebuilt.
  uint64_t tokens_generated = 0;
  int32_t max_step_sequences = 0;  // Most sequences seen in one step.
  uint64_t preemptions = 0;
  size_t waiting = 0;
  size_t running = 0;
};

struct EngineOptions {
  SchedulerConfig scheduler;
  // Consecutive group failures (without a successful step between them)
  // before the engine stops rebuilding.
  int max_rebuild_attempts = 3;
  // ... and only once no step has completed for this long.
  std::chrono::seconds give_up_after{60};
  // Pause between two failed rebuilds.
  std::chrono::milliseconds rebuild_pause{1000};
  // How often the health monitor probes the workers, and how long a probe
  // may take; two failed probes in a row break the group.
  std::chrono::milliseconds health_interval{500};
  std::chrono::milliseconds health_deadline{2000};
  // Polled by the health monitor: a known dead worker ("" if none).
  std::function<std::string()> exited_probe;
  // Told when readiness changes (health service, HTTP /health).
  std::function<void(bool ready, const std::string& why)> on_readiness;
  // Where events are counted (may be null); outlives the engine.
  Metrics* metrics = nullptr;
};

class Engine {
 public:
  // `executor` is the running epoch-1 executor (a worker group); `rebuild`
  // makes later ones. `tokenizer` must outlive the engine. Starts the loop
  // and the monitor.
  Engine(std::unique_ptr<StepExecutor> executor, ExecutorFactory rebuild,
         const Tokenizer* tokenizer, EngineOptions options);
  // Stops the loop; unfinished generations end with UNAVAILABLE.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a generation (assigning its id): InvalidArgument if it can never
  // fit the KV cache, ResourceExhausted at once when the queue is full,
  // Unavailable when the engine has stopped or its group broke.
  absl::Status Submit(const std::shared_ptr<Generation>& generation);
  // Ends the generation with CANCELLED within a step and frees its blocks.
  // Safe to call for ids that already finished.
  void Cancel(uint64_t id);

  EngineStats stats() const;
  // Until no generation is queued or running, or `deadline`; true if idle.
  // (Draining: the doors stop admitting first.)
  bool WaitIdle(std::chrono::steady_clock::time_point deadline);
  // Counts a request refused before it reached the engine (validation).
  void RecordRejected(const absl::Status& status);
  // OK while serving; Unavailable with the reason otherwise.
  absl::Status readiness() const;
  int64_t kv_capacity_tokens() const { return capacity_tokens_; }

 private:
  struct Active {
    std::shared_ptr<Generation> generation;
    std::unique_ptr<OutputText> text;
    int32_t generated = 0;
    int32_t max_step_sequences = 0;
    int32_t preemptions = 0;
    std::chrono::steady_clock::time_point admitted;
    std::chrono::steady_clock::time_point last_token;
    double ttft_ms = -1;
  };

  void Loop();
  // Health monitor thread: worker exits and health probes.
  void Monitor();
  // After a failed step (`lock` held): rebuild the group, or give up.
  void Recover(const absl::Status& failure, std::unique_lock<std::mutex>& lock);
  void SetReadyLocked(bool ready, const std::string& why);
  std::shared_ptr<StepExecutor> executor() const;
  // Ends `id` (holding mu_): frees it in the scheduler, tells the workers
  // to drop it at the next step, and finishes its generation.
  void FinishLocked(uint64_t id, absl::Status status, FinishReason reason,
                    std::string matched_stop);
  void HandleToken(const SampledToken& token);
  StepWork BuildStep(const Scheduler::Step& plan);

  const ExecutorFactory rebuild_;
  const Tokenizer* const tokenizer_;
  const EngineOptions options_;
  const int64_t capacity_tokens_;

  mutable std::mutex executor_mu_;
  // Guarded by executor_mu_; null while a rebuild runs.
  std::shared_ptr<StepExecutor> executor_;
  int epoch_ = 1;                 // Engine thread only.
  int consecutive_failures_ = 0;  // Engine thread only.
  // Engine thread only: when a step last completed.
  std::chrono::steady_clock::time_point last_success_ =
      std::chrono::steady_clock::now();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Scheduler scheduler_;                // Guarded by mu_.
  std::map<uint64_t, Active> active_;  // Guarded by mu_.
  std::vector<uint64_t> cancels_;      // Guarded by mu_.
  std::vector<uint64_t> frees_;        // Guarded by mu_.
  uint64_t next_id_ = 1;               // Guarded by mu_.
  uint64_t next_step_ = 1;             // Engine thread only.
  bool stop_ = false;                  // Guarded by mu_.
  absl::Status broken_;                // Guarded by mu_.
  EngineStats stats_;                  // Guarded by mu_.
  bool ready_ = true;                  // Guarded by mu_.
  std::string not_ready_why_;          // Guarded by mu_.
  std::condition_variable stop_cv_;    // Signalled with stop_.
  std::condition_variable idle_cv_;    // Signalled when active_ empties.
  std::thread loop_;
  std::thread monitor_;
};

}  // namespace tpserve

#endif  // TPSERVE_COORDINATOR_ENGINE_H_
