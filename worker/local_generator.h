// Runs a model without servers: N tensor-parallel ranks as threads of this
// process, each with its own CPU backend and a Gloo communicator over
// loopback, in lockstep. Rank 0 samples and broadcasts each next token.
// This is what `tpserve generate` and the engine tests use; the worker
// processes of `tpserve serve` run the same LlamaShard per rank.
#ifndef TPSERVE_WORKER_LOCAL_GENERATOR_H_
#define TPSERVE_WORKER_LOCAL_GENERATOR_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/model_weights.h"
#include "common/sampling.h"

namespace tpserve {

struct GenerateOptions {
  int tp = 1;       // Tensor-parallel ranks (threads).
  int threads = 0;  // Compute threads in all; 0 = one per core.
  int max_tokens = 64;
  SamplingParams sampling;
  // Token ids that end generation (not emitted), e.g. the tokenizer's EOG.
  std::vector<int32_t> stop_ids;
  int64_t block_size = 16;
  // Keep every step's logits in GenerateResult::step_logits (tests, tools).
  bool record_logits = false;
};

struct GeneratedToken {
  int32_t id;
  float logprob;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // Generated, without stop tokens.
  // Logits of the first generated position (for tests and tools).
  std::vector<float> first_logits;
  // Every step's logits, when GenerateOptions::record_logits.
  std::vector<std::vector<float>> step_logits;
  int prompt_tokens = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;  // All steps after the first token.
  bool stopped = false;       // Ended by a stop token rather than the limit.
};

// Generates from `prompt` (token ids). `on_token` (may be empty) sees each
// generated token as it is produced, on the calling thread of rank 0;
// returning false stops generation.
absl::StatusOr<GenerateResult> Generate(
    const ModelWeights& model, absl::Span<const int32_t> prompt,
    const GenerateOptions& options,
    const std::function<bool(const GeneratedToken&)>& on_token);

}  // namespace tpserve

#endif  // TPSERVE_WORKER_LOCAL_GENERATOR_H_
