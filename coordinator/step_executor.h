// What the engine drives: something that runs a planned step on every
// tensor-parallel rank and returns rank 0's sampled tokens. WorkerGroup
// (worker processes over tpserve.worker.v1) is the real one; tests drive
// the engine with a fake (tests/engine_test.cc). Core types only: the
// worker protocol is WorkerGroup's translation, not the engine's.
#ifndef TPSERVE_COORDINATOR_STEP_EXECUTOR_H_
#define TPSERVE_COORDINATOR_STEP_EXECUTOR_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/sampling.h"

namespace tpserve {

// One sequence's part of a step: a prefill chunk or a single decode token.
struct SequenceWork {
  uint64_t seq_id = 0;
  std::vector<int32_t> tokens;  // Fed at positions position, position+1, ...
  int32_t position = 0;
  std::vector<int32_t> block_table;  // The sequence's KV blocks, in order.
  bool sample = false;        // Sample a token after the last one of `tokens`.
  int32_t prompt_tokens = 0;  // The sequence's prompt length.
  // Set on the sequence's first chunk (the ranks create its sampler then);
  // unset after.
  std::optional<SamplingParams> sampling;
};

struct StepWork {
  uint64_t step_id = 0;  // 1, 2, ... over the engine's life.
  // Sequences whose KV blocks and sampler the ranks drop before the step.
  std::vector<uint64_t> free_seq_ids;
  std::vector<SequenceWork> sequences;
};

// A token sampled for a sequence with `sample` set.
struct SampledToken {
  uint64_t seq_id = 0;
  int32_t token_id = 0;
  float logprob = 0;
  std::vector<int32_t> top_ids;  // Most likely candidates, when asked for.
  std::vector<float> top_logprobs;
};

class StepExecutor {
 public:
  virtual ~StepExecutor() = default;

  // KV blocks every rank holds (the scheduler plans with at most this).
  virtual int64_t kv_blocks() const = 0;

  // Runs `step` on every rank and fills `sampled` from rank 0. One caller
  // (the engine thread). Any error means the executor is broken: the engine
  // rebuilds it and re-prefills every running sequence.
  virtual absl::Status Step(const StepWork& step,
                            std::vector<SampledToken>* sampled) = 0;

  // Health of every rank, each within `deadline`: "" when all answer, else
  // which did not. Thread-safe (the engine's health monitor calls it).
  virtual std::string Probe(std::chrono::milliseconds deadline) const = 0;

  // Declares the executor broken (a worker exited or missed its health
  // probes): a step in flight fails at once, later ones too. Thread-safe.
  virtual void MarkBroken(const std::string& reason) = 0;
};

// Builds the executor of `epoch` 1, 2, ... (each rebuild after a failure
// is a new epoch, with fresh worker processes and rendezvous keys).
using ExecutorFactory =
    std::function<absl::StatusOr<std::unique_ptr<StepExecutor>>(int epoch)>;

}  // namespace tpserve

#endif  // TPSERVE_COORDINATOR_STEP_EXECUTOR_H_
