// MatMul of the default model's shapes on the CPU backend: Q4_1 (the model's
// weights) and Q8_0 (its tied lm_head), decode (n = 1) and a small batch
// (n = 8), 1 and 2 threads; Q5_0 and Q5_1 (the fall-backs of K-quant
// mixes) on the same shapes; and the K-quants Q4_K, Q5_K, Q6_K on shapes
// whose cols are a multiple of 256. Reports weight bytes read per second
// ("bytes_per_second", the memory-bound figure for decode) and GFLOP/s
// (2 * rows * cols * n per call). Random weights with sane scales: speed
// does not depend on the values.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "common/ggml_blocks.h"
#include "common/ggml_types.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/matmul.h"

namespace tpserve {
namespace {

struct Shape {
  int64_t rows, cols;
};
// attn_q/attn_output, ffn_gate/up, ffn_down, lm_head.
constexpr Shape kShapes[] = {
    {576, 576}, {1536, 576}, {576, 1536}, {49152, 576}};
// K-quant rows need cols % 256 == 0: SmolLM2's ffn_down, and a 2048-wide
// model's attention and MLP (TinyLlama's) shapes.
constexpr Shape kKShapes[] = {{576, 1536}, {2048, 2048}, {5632, 2048}};

std::vector<uint8_t> MakeWeights(GgmlType type, int64_t rows, int64_t cols) {
  const size_t row_bytes = *GgmlRowBytes(type, cols);
  std::vector<uint8_t> data(rows * row_bytes);
  std::mt19937 rng(1);
  for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
  const GgmlTypeTraits& tr = GetGgmlType(type);
  const GgmlHalf d = Fp32ToFp16(0.01f), m = Fp32ToFp16(-0.05f);
  // Q6_K keeps its d last; the others start with d (and m or dmin).
  const size_t d_off = type == GgmlType::kQ6_K ? offsetof(BlockQ6_K, d) : 0;
  const bool has_m = type == GgmlType::kQ4_1 || type == GgmlType::kQ5_1 ||
                     type == GgmlType::kQ4_K || type == GgmlType::kQ5_K;
  for (size_t off = 0; off < data.size(); off += tr.type_size) {
    std::memcpy(&data[off + d_off], &d, 2);
    if (has_m) std::memcpy(&data[off + 2], &m, 2);
  }
  return data;
}

// Args: shape index, n, threads.
void BM_MatMul(benchmark::State& state, GgmlType type) {
  const bool k_quant = type == GgmlType::kQ4_K || type == GgmlType::kQ5_K ||
                       type == GgmlType::kQ6_K;
  const Shape shape =
      k_quant ? kKShapes[state.range(0)] : kShapes[state.range(0)];
  const int64_t n = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  std::vector<uint8_t> data = MakeWeights(type, shape.rows, shape.cols);
  const WeightMatrix w{type, shape.rows, shape.cols, data.data(),
                       data.size() / shape.rows};
  std::unique_ptr<Backend> backend = MakeCpuBackend(threads);
  std::vector<float> x(n * shape.cols), y(n * shape.rows);
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> dist(-1, 1);
  for (float& v : x) v = dist(rng);
  for (auto _ : state) {
    if (!backend->MatMul(w, x.data(), n, y.data()).ok()) {
      state.SkipWithError("MatMul failed");
      break;
    }
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(data.size()));
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * shape.rows * shape.cols * n * state.iterations() / 1e9,
      benchmark::Counter::kIsRate);
  state.SetLabel(cpu::MatMulTargetName());
}

void ArgsFor(benchmark::internal::Benchmark* b, int shapes) {
  b->ArgNames({"shape", "n", "threads"});
  for (int s = 0; s < shapes; ++s) {
    for (int n : {1, 8}) {
      for (int t : {1, 2}) b->Args({s, n, t});
    }
  }
  b->UseRealTime();
}

void Args(benchmark::internal::Benchmark* b) { ArgsFor(b, 4); }
void KArgs(benchmark::internal::Benchmark* b) { ArgsFor(b, 3); }

BENCHMARK_CAPTURE(BM_MatMul, q4_1, GgmlType::kQ4_1)->Apply(Args);
BENCHMARK_CAPTURE(BM_MatMul, q8_0, GgmlType::kQ8_0)->Apply(Args);
BENCHMARK_CAPTURE(BM_MatMul, q5_0, GgmlType::kQ5_0)->Apply(Args);
BENCHMARK_CAPTURE(BM_MatMul, q5_1, GgmlType::kQ5_1)->Apply(Args);
BENCHMARK_CAPTURE(BM_MatMul, q4_k, GgmlType::kQ4_K)->Apply(KArgs);
BENCHMARK_CAPTURE(BM_MatMul, q5_k, GgmlType::kQ5_K)->Apply(KArgs);
BENCHMARK_CAPTURE(BM_MatMul, q6_k, GgmlType::kQ6_K)->Apply(KArgs);

}  // namespace
}  // namespace tpserve

BENCHMARK_MAIN();
