// Next-token sampling over the full-vocabulary logits of one sequence (run
// on rank 0 after the vocabulary-parallel logits are gathered).
//
// Processing order, as vLLM applies it:
//   1. logit bias                      logit[id] += bias
//   2. repetition penalty (HF / llama.cpp), for every token id seen:
//                                      logit > 0 ? logit / p : logit * p
//   3. presence / frequency (OpenAI):  logit -= presence * (count > 0)
//                                              + frequency * count
//   4. temperature == 0: greedy argmax (ties go to the lowest id).
//      Otherwise: logit / temperature, top-k, top-p (nucleus over the sorted
//      probabilities, at least one token kept), min-p (relative to the most
//      likely token), renormalize, draw with the sampler's RNG.
// Penalties count every token in `previous_tokens` (prompt + generated).
//
// Reported log-probabilities are those of the processed distribution: the
// log-softmax of the logits after steps 1-3 and temperature (temperature 0
// counts as 1 here), before top-k / top-p / min-p truncation. That is vLLM's
// "processed logprobs": the sampled token's logprob is always finite, and
// the numbers describe what the sampler saw, not the raw model output.
#ifndef TPSERVE_COMMON_SAMPLING_H_
#define TPSERVE_COMMON_SAMPLING_H_

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace tpserve {

struct SamplingParams {
  float temperature = 1.0f;         // 0 = greedy.
  int top_k = 0;                    // 0 = off.
  float top_p = 1.0f;               // 1 = off.
  float min_p = 0.0f;               // 0 = off.
  float repetition_penalty = 1.0f;  // 1 = off.
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  // (token id, bias added to its logit); repeated ids add up.
  std::vector<std::pair<int32_t, float>> logit_bias;
  uint64_t seed = 0;      // Used when has_seed.
  bool has_seed = false;  // Otherwise seeded from std::random_device.
  int top_logprobs = 0;   // Most likely alternatives to report, 0-20.
};

// Checks every field against `vocab_size` (finite numbers, OpenAI / vLLM
// ranges); InvalidArgument naming the field otherwise.
absl::Status ValidateSamplingParams(const SamplingParams& params,
                                    int32_t vocab_size);

// The seed of the draw for the token at `position` of a sequence whose
// request seed is `seed` (SplitMix64 of both, so neighbouring positions get
// unrelated streams).
uint64_t PositionSeed(uint64_t seed, int64_t position);

class Sampler {
 public:
  struct Result {
    int32_t token = 0;
    float logprob = 0;  // Of `token` under the processed distribution.
    // Up to params.top_logprobs (id, logprob), most likely first (ties: lower
    // id first).
    std::vector<std::pair<int32_t, float>> top_logprobs;
  };

  // `params` must have passed ValidateSamplingParams(params, vocab_size).
  // Allocates all scratch memory here (O(vocab_size)); Sample allocates only
  // the result's top_logprobs.
  explicit Sampler(SamplingParams params, int32_t vocab_size);

  // Samples one token from `logits` (vocab_size entries; aborts otherwise).
  // Modifies `logits` in place: on return they hold the values after logit
  // bias and penalties (before temperature). NaN logits are never chosen.
  // If no logit is above -inf, returns token 0 with logprob -inf.
  Result Sample(absl::Span<float> logits,
                absl::Span<const int32_t> previous_tokens);

  // Steps 1-3 above, in place; the first step of Sample, exposed for tests.
  // Ids in `previous_tokens` outside [0, vocab_size) are ignored.
  void ApplyPenalties(absl::Span<float> logits,
                      absl::Span<const int32_t> previous_tokens);

  // Restarts the random stream from `seed`. Serving reseeds before every
  // draw with PositionSeed(request seed, position), so a sequence's output
  // does not depend on batching, preemption or which process sampled it.
  void Reseed(uint64_t seed) { rng_.seed(seed); }

  // The draw for the token at `position` of a sequence whose request seed
  // is `seed`: Reseed(PositionSeed(seed, position)), then Sample. The
  // serving workers and `tpserve generate` both sample through this, so a
  // seeded request gives the same tokens from either.
  Result SampleAt(uint64_t seed, int64_t position, absl::Span<float> logits,
                  absl::Span<const int32_t> previous_tokens) {
    Reseed(PositionSeed(seed, position));
    return Sample(logits, previous_tokens);
  }

  const SamplingParams& params() const { return params_; }

 private:
  // `value` orders candidates, larger first: the unnormalized probability
  // exp(logit - max) while sampling, the scaled logit for top_logprobs.
  struct Candidate {
    float value;
    int32_t id;
  };

  void FillTopLogprobs(absl::Span<const float> logits, float scale, float max,
                       float log_z, Result& result);
  // Applies top-p (unless done) and min-p to candidates_, then draws.
  int32_t SampleCandidates(double total, bool apply_top_p);

  const SamplingParams params_;
  const int32_t vocab_size_;
  std::mt19937_64 rng_;
  // Invariant between calls: all zero (ApplyPenalties restores it).
  std::vector<int32_t> counts_;
  // Reused every call; capacity vocab_size_ so it never reallocates.
  std::vector<Candidate> candidates_;
  // Reused for top_logprobs selection; capacity 20.
  std::vector<Candidate> top_;
  // Bounded heap of the best top_k (or nucleus probe) tokens; reserved.
  std::vector<Candidate> heap_;
};

}  // namespace tpserve

#endif  // TPSERVE_COMMON_SAMPLING_H_
