#include "worker/local_generator.h"

#include <gloo/rendezvous/hash_store.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cpu/cpu_backend.h"
#include "worker/gloo_communicator.h"
#include "worker/llama_shard.h"
#include "worker/tp_plan.h"

namespace tpserve {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// One rank's whole generation loop. All ranks run the same steps; rank 0
// samples, and every step's next token is broadcast from it, so the ranks
// agree on what to run next (and on when to stop).
absl::Status RunRank(const ModelWeights& model,
                     absl::Span<const int32_t> prompt,
                     const GenerateOptions& options, int rank,
                     gloo::rendezvous::Store& store,
                     const std::function<bool(const GeneratedToken&)>& on_token,
                     GenerateResult* result) {
  const ModelConfig& c = model.config();
  TP_ASSIGN_OR_RETURN(TpPlan plan,
                      MakeTpPlan(c, options.tp, rank, LayerRowBlock(model)));
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  const int total = options.threads > 0 ? options.threads : cores;
  std::unique_ptr<Backend> backend =
      MakeCpuBackend(std::max(1, total / options.tp));
  std::unique_ptr<Communicator> comm;
  if (options.tp > 1) {
    TP_ASSIGN_OR_RETURN(comm, GlooCommunicator::Create(store, "generate", rank,
                                                       options.tp, {}));
  }
  const int64_t max_len =
      static_cast<int64_t>(prompt.size()) + options.max_tokens;
  if (max_len > c.max_positions) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt (", prompt.size(), " tokens) + max tokens (",
                     options.max_tokens, ") exceeds the model's context of ",
                     c.max_positions));
  }
  const int64_t blocks =
      (max_len + options.block_size - 1) / options.block_size;
  TP_ASSIGN_OR_RETURN(auto shard,
                      LlamaShard::Create(model, plan, backend.get(), comm.get(),
                                         blocks, options.block_size));
  std::unique_ptr<Sampler> sampler;
  uint64_t seed = options.sampling.seed;
  if (rank == 0 && !options.sampling.has_seed) {
    std::random_device rd;
    seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }
  if (rank == 0) {
    sampler = std::make_unique<Sampler>(options.sampling,
                                        static_cast<int32_t>(c.vocab_size));
  }

  StepInput step;
  step.block_offsets = {0, static_cast<int32_t>(blocks)};
  for (int32_t b = 0; b < blocks; ++b) step.block_table.push_back(b);
  step.tokens.assign(prompt.begin(), prompt.end());
  for (size_t i = 0; i < prompt.size(); ++i) {
    step.positions.push_back(static_cast<int32_t>(i));
  }
  step.seq.assign(prompt.size(), 0);
  step.logit_tokens = {static_cast<int32_t>(prompt.size()) - 1};
  step.prompt_len = {static_cast<int32_t>(prompt.size())};

  std::vector<int32_t> history(prompt.begin(), prompt.end());
  std::vector<float> logits;
  const auto start = Clock::now();
  auto first_token_time = start;
  for (int i = 0; i < options.max_tokens; ++i) {
    TP_RETURN_IF_ERROR(shard->Forward(step, &logits));
    // [token, stop flag]: rank 0 decides, everyone follows.
    int32_t next[2] = {0, 0};
    if (rank == 0) {
      if (i == 0) result->first_logits = logits;
      if (options.record_logits) result->step_logits.push_back(logits);
      // Seeded per position through the serving workers' SampleAt, so a
      // seeded request gives the same text here and from `tpserve serve`.
      Sampler::Result s =
          sampler->SampleAt(seed, static_cast<int64_t>(history.size()),
                            absl::MakeSpan(logits), history);
      next[0] = s.token;
      const bool stop =
          std::find(options.stop_ids.begin(), options.stop_ids.end(),
                    s.token) != options.stop_ids.end();
      if (stop) {
        result->stopped = true;
        next[1] = 1;
      } else {
        result->tokens.push_back(s.token);
        if (on_token && !on_token({s.token, s.logprob})) next[1] = 1;
      }
      if (i == 0) first_token_time = Clock::now();
    }
    if (options.tp > 1) {
      TP_RETURN_IF_ERROR(comm->Broadcast(next, sizeof(next), 0));
    }
    if (next[1] != 0) break;
    history.push_back(next[0]);
    const int32_t pos = static_cast<int32_t>(history.size()) - 1;
    step.tokens = {next[0]};
    step.positions = {pos};
    step.seq = {0};
    step.logit_tokens = {0};
  }
  if (rank == 0) {
    result->prompt_tokens = static_cast<int>(prompt.size());
    result->prefill_seconds = Seconds(start, first_token_time);
    result->decode_seconds = Seconds(first_token_time, Clock::now());
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<GenerateResult> Generate(
    const ModelWeights& model, absl::Span<const int32_t> prompt,
    const GenerateOptions& options,
    const std::function<bool(const GeneratedToken&)>& on_token) {
  if (prompt.empty()) {
    return absl::InvalidArgumentError("generate: the prompt has no tokens");
  }
  if (options.tp < 1 || options.max_tokens < 1) {
    return absl::InvalidArgumentError(
        "generate: tp and max tokens must be >= 1");
  }
  TP_RETURN_IF_ERROR(ValidateSamplingParams(
      options.sampling, static_cast<int32_t>(model.config().vocab_size)));
  // Check the TP size up front for a clear error before any thread starts.
  TP_RETURN_IF_ERROR(
      MakeTpPlan(model.config(), options.tp, 0, LayerRowBlock(model)).status());
  GenerateResult result;
  gloo::rendezvous::HashStore store;
  std::vector<absl::Status> status(options.tp);
  std::vector<std::thread> ranks;
  for (int r = 1; r < options.tp; ++r) {
    ranks.emplace_back([&, r] {
      GenerateResult unused;
      status[r] = RunRank(model, prompt, options, r, store, nullptr, &unused);
    });
  }
  status[0] = RunRank(model, prompt, options, 0, store, on_token, &result);
  for (std::thread& t : ranks) t.join();
  for (const absl::Status& s : status) {
    if (!s.ok()) return s;
  }
  return result;
}

}  // namespace tpserve
