// Sampler::Sample over one 49152-token vocabulary (the default model's):
// greedy, top_k=40 and top_p=0.9 (no top_logprobs, no penalties).
// Logits: "confident" (unit normal noise plus ten tokens at 16..12.4 above it,
// the shape of a trained model's next-token distribution, so the top_p
// nucleus is small) or plain normal noise with standard deviation 3 or 1
// (a nucleus of thousands of tokens: top_p's slow path, a partial sort).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "common/sampling.h"

namespace {

constexpr int32_t kVocab = 49152;

// stddev 0 means "confident".
std::vector<float> Logits(float stddev) {
  std::mt19937_64 rng(1);
  std::normal_distribution<float> normal(0.0f, stddev > 0 ? stddev : 1.0f);
  std::vector<float> v(kVocab);
  for (float& x : v) x = normal(rng);
  if (stddev == 0) {
    for (int i = 0; i < 10; ++i) v[(i * 7919) % kVocab] = 16.0f - 0.4f * i;
  }
  return v;
}

// range(0): 0 greedy, 1 top_k=40, 2 top_p=0.9; range(1): logits stddev.
void BM_Sample(benchmark::State& state) {
  tpserve::SamplingParams p;
  p.has_seed = true;
  p.seed = 1;
  switch (state.range(0)) {
    case 0:
      p.temperature = 0;
      state.SetLabel("greedy");
      break;
    case 1:
      p.top_k = 40;
      state.SetLabel("top_k=40");
      break;
    default:
      p.top_p = 0.9f;
      state.SetLabel("top_p=0.9");
      break;
  }
  tpserve::Sampler sampler(p, kVocab);
  // No penalties or bias are set, so Sample leaves the logits unchanged
  // and the same vector serves every iteration.
  std::vector<float> logits = Logits(static_cast<float>(state.range(1)));
  const std::vector<int32_t> previous = {1, 2, 3};
  for (auto _ : state) {
    auto r = sampler.Sample(absl::MakeSpan(logits), previous);
    benchmark::DoNotOptimize(r.token);
  }
}
BENCHMARK(BM_Sample)
    ->ArgsProduct({{0, 1, 2}, {0}})
    ->Args({2, 3})
    ->Args({2, 1})
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
