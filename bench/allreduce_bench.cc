// Per-call latency of GlooCommunicator::AllReduceSum between 2 ranks on
// loopback (threads of this process): 576 floats is one decode token's
// hidden state for the default model, 8192 a larger model's or a short
// prefill's. The peer rank runs on a thread and makes exactly as many calls
// as the timed loop, so iteration counts are fixed.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <thread>
#include <vector>

#include "gloo/rendezvous/hash_store.h"
#include "worker/gloo_communicator.h"

namespace {

constexpr int64_t kIterations = 2000;
constexpr int kWarmup = 20;

void BM_GlooAllReduce(benchmark::State& state) {
  const size_t count = static_cast<size_t>(state.range(0));
  gloo::rendezvous::HashStore store;
  tpserve::GlooOptions options;  // Loopback, 30 s timeout.
  std::thread peer([&] {
    auto comm =
        tpserve::GlooCommunicator::Create(store, "bench/", 1, 2, options);
    if (!comm.ok()) return;
    std::vector<float> data(count, 1.0f);
    for (int64_t i = 0; i < kWarmup + kIterations; ++i) {
      if (!(*comm)->AllReduceSum(data.data(), count).ok()) return;
    }
  });
  auto comm = tpserve::GlooCommunicator::Create(store, "bench/", 0, 2, options);
  if (!comm.ok()) {
    peer.join();
    return state.SkipWithError("Create failed");
  }
  std::vector<float> data(count, 1.0f);
  for (int i = 0; i < kWarmup; ++i) {
    if (!(*comm)->AllReduceSum(data.data(), count).ok()) break;
  }
  for (auto _ : state) {
    if (!(*comm)->AllReduceSum(data.data(), count).ok()) {
      state.SkipWithError("AllReduceSum failed");
      break;
    }
    benchmark::DoNotOptimize(data.data());
  }
  peer.join();
  state.SetBytesProcessed(state.iterations() * count * sizeof(float));
}
BENCHMARK(BM_GlooAllReduce)
    ->Arg(576)
    ->Arg(8192)
    ->Iterations(kIterations)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
