// Engine speed on the CPU: prefill tokens/s, single-sequence decode
// tokens/s, and 8 sequences decoding together, at a given thread count.
// bench/engine.sh runs it next to llama.cpp on the same GGUF and threads.
//
//   engine_bench MODEL.gguf THREADS   -> one JSON object on stdout
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/model_weights.h"
#include "kernels/cpu/cpu_backend.h"
#include "worker/llama_shard.h"
#include "worker/tp_plan.h"

namespace tpserve {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int Run(const std::string& path, int threads) {
  auto model = OpenModel(path);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  const ModelConfig& c = (*model)->config();
  auto plan = MakeTpPlan(c, 1, 0);
  auto backend = MakeCpuBackend(threads);
  constexpr int kPrompt = 128, kDecode = 64, kBatch = 8, kBatchSteps = 32;
  constexpr int kBlock = 16;
  const int blocks_per_seq = (kPrompt + kDecode + kBlock - 1) / kBlock;
  // Sequence 0 is the single one; 1..kBatch decode together.
  auto shard = LlamaShard::Create(**model, *plan, backend.get(), nullptr,
                                  blocks_per_seq * (kBatch + 1), kBlock);
  if (!shard.ok()) {
    std::fprintf(stderr, "%s\n", shard.status().ToString().c_str());
    return 1;
  }
  std::vector<float> logits;
  auto fail = [](const absl::Status& s) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  };
  // Sequence s owns blocks [s * blocks_per_seq, (s + 1) * blocks_per_seq).
  auto tables = [&](StepInput& in, int n_seqs) {
    in.block_table.clear();
    in.block_offsets = {0};
    for (int s = 0; s < n_seqs; ++s) {
      for (int b = 0; b < blocks_per_seq; ++b) {
        in.block_table.push_back(s * blocks_per_seq + b);
      }
      in.block_offsets.push_back(in.block_table.size());
    }
  };

  // Prefill one sequence of kPrompt tokens (best of 3).
  double prefill = 1e9;
  for (int rep = 0; rep < 3; ++rep) {
    StepInput in;
    tables(in, 1);
    for (int i = 0; i < kPrompt; ++i) {
      in.tokens.push_back((i * 7919) % c.vocab_size);
      in.positions.push_back(i);
      in.seq.push_back(0);
    }
    in.logit_tokens = {kPrompt - 1};
    in.prompt_len = {kPrompt};
    const auto t = Clock::now();
    if (auto s = (*shard)->Forward(in, &logits); !s.ok()) return fail(s);
    prefill = std::min(prefill, Since(t));
  }
  // Decode one sequence, one token per step, after the prompt.
  StepInput one;
  tables(one, 1);
  one.seq = {0};
  one.logit_tokens = {0};
  one.prompt_len = {kPrompt};
  const auto t1 = Clock::now();
  for (int i = 0; i < kDecode; ++i) {
    one.tokens = {(i * 31) % static_cast<int>(c.vocab_size)};
    one.positions = {kPrompt + i};
    if (auto s = (*shard)->Forward(one, &logits); !s.ok()) return fail(s);
  }
  const double decode = Since(t1);
  // Decode 8 new sequences together, one token each per step, positions
  // from 0 (as the llama.cpp side must).
  StepInput batch;
  tables(batch, kBatch + 1);
  const auto t2 = Clock::now();
  for (int i = 0; i < kBatchSteps; ++i) {
    batch.tokens.clear();
    batch.positions.clear();
    batch.seq.clear();
    batch.logit_tokens.clear();
    for (int s = 0; s < kBatch; ++s) {
      batch.tokens.push_back((i * 13 + s) % c.vocab_size);
      batch.positions.push_back(i);
      batch.seq.push_back(s + 1);
      batch.logit_tokens.push_back(s);
    }
    if (auto s = (*shard)->Forward(batch, &logits); !s.ok()) return fail(s);
  }
  const double batched = Since(t2);
  std::printf(
      "{\"threads\": %d, \"prefill_tok_s\": %.1f, \"decode_tok_s\": %.2f, "
      "\"batch8_tok_s\": %.2f}\n",
      threads, kPrompt / prefill, kDecode / decode,
      kBatch * kBatchSteps / batched);
  return 0;
}

}  // namespace
}  // namespace tpserve

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: engine_bench MODEL.gguf THREADS\n");
    return 2;
  }
  return tpserve::Run(argv[1], std::atoi(argv[2]));
}
