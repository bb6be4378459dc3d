// GPU engine benchmark on a synthetic Llama-3-8B-shaped model (hidden 4096,
// 32 layers, 32 query / 8 KV heads of 128, FFN 14336, vocabulary 128256,
// llama3 RoPE scaling) with random BF16 weights generated on the device.
// It runs the real forward pass (LlamaShard, worker/llama_shard.h) through
// the CUDA Backend: a WeightSource hands the shard the device-generated
// weights in place of a model file, so what is measured is what serves.
// It reports, as one JSON object:
//  - the card's memory bandwidth: measured (device-to-device copy, bytes
//    read + written) and theoretical (memory clock x bus width x 2);
//  - single-sequence decode tokens/s at a 512-token context and its share
//    of the bandwidth roofline: (weight bytes + KV bytes read per token) /
//    measured bandwidth, over the measured time per token;
//  - decode throughput (tokens/s) at batch 1, 8, 32, 64;
//  - prefill tokens/s for prompts of 512 and 2048 tokens.
// bench/gpu_torch_bench.py measures the same shapes with PyTorch and
// scripts/gpu-check.sh prints the ratios.
//
// Usage: gpu_bench [--device N] [--layers N] [--steps N] [--json PATH]
// (--layers 2 makes a quick smoke run on a small GPU).
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "bench/gpu_bench_init.h"
#include "common/model_config.h"
#include "common/status_macros.h"
#include "kernels/backend.h"
#include "kernels/cuda/cuda_backend.h"
#include "worker/llama_shard.h"
#include "worker/tp_plan.h"
#include "worker/weight_source.h"

namespace tpserve::bench {
namespace {

struct Shape {
  int64_t hidden = 4096, layers = 32, heads = 32, kv_heads = 8, head_dim = 128,
          ffn = 14336, vocab = 128256;
  float eps = 1e-5f;
};

struct Options {
  int device = 0;
  int64_t layers = 32;
  int steps = 16;         // Timed decode steps per batch size.
  int64_t context = 512;  // Decode context length.
  std::string json;
};

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// The synthetic model as a WeightSource: each matrix is generated in device
// memory when the shard asks for it (uniform in [-0.035, 0.035), about the
// N(0, 0.02) scale of a trained model), norm weights are ones. Owns the
// matrices, so it must outlive the shard.
class SyntheticWeights final : public WeightSource {
 public:
  SyntheticWeights(Backend* backend, const Shape& shape)
      : b_(backend), stream_(CudaBackendStream(*backend)) {
    ModelConfig& c = config_;
    c.architecture = "llama";
    c.name = "synthetic Llama-3-8B";
    c.vocab_size = shape.vocab;
    c.hidden_size = shape.hidden;
    c.intermediate_size = shape.ffn;
    c.n_layers = shape.layers;
    c.n_heads = shape.heads;
    c.n_kv_heads = shape.kv_heads;
    c.head_dim = shape.head_dim;
    c.rope_dim = shape.head_dim;
    c.max_positions = 131072;
    c.rms_eps = shape.eps;
    c.rope_theta = 500000;
    c.rope_freq_factors =
        Llama3RopeFactors(500000, shape.head_dim, 8, 1, 4, 8192);
  }
  ~SyntheticWeights() override {
    for (float* p : owned_) b_->Free(p);
  }

  const ModelConfig& config() const override { return config_; }
  bool Has(absl::string_view name) const override {
    return Find(name).ok() || absl::EndsWith(name, "norm.weight");
  }

  absl::StatusOr<WeightMatrix> Matrix(absl::string_view name,
                                      const MatrixSlice& slice,
                                      Backend& backend) override {
    if (&backend != b_) {
      return absl::InvalidArgumentError("gpu_bench: another backend");
    }
    TP_ASSIGN_OR_RETURN(const Spec spec, Find(name));
    const size_t elems = static_cast<size_t>(spec.rows) * spec.cols;
    TP_ASSIGN_OR_RETURN(float* p, b_->AllocFloats((elems + 1) / 2));
    owned_.push_back(p);
    TP_RETURN_IF_ERROR(FillRandomBf16(reinterpret_cast<uint16_t*>(p), elems,
                                      spec.seed, 0.035f, stream_));
    // Embedding rows are gathered, not read whole.
    if (name != "token_embd.weight") {
      weight_bytes_ += static_cast<double>(elems) * 2;
    }
    WeightMatrix w{GgmlType::kBF16, spec.rows, spec.cols,
                   reinterpret_cast<const uint8_t*>(p),
                   static_cast<size_t>(spec.cols) * 2};
    return SliceMatrix(w, slice);
  }

  absl::StatusOr<float*> Vector(absl::string_view name, int64_t begin,
                                int64_t count, Backend& backend) override {
    if (!absl::EndsWith(name, "norm.weight")) {
      return absl::NotFoundError(absl::StrCat("gpu_bench: no ", name));
    }
    const int64_t n = count < 0 ? config_.hidden_size - begin : count;
    TP_ASSIGN_OR_RETURN(float* p, backend.AllocFloats(static_cast<size_t>(n)));
    TP_RETURN_IF_ERROR(FillFloats(p, static_cast<size_t>(n), 1.0f, stream_));
    return p;  // The caller's.
  }

  // Weight bytes a decode step reads (every matrix once; embedding rows
  // are gathered, not read whole).
  double weight_bytes() const { return weight_bytes_; }

 private:
  struct Spec {
    int64_t rows, cols;
    uint64_t seed;
  };
  // Shapes by canonical name. Seeds: 1 and 2 for the embedding and the LM
  // head, then seven per layer in the order q, k, v, o, gate, up, down.
  absl::StatusOr<Spec> Find(absl::string_view name) const {
    const ModelConfig& c = config_;
    const int64_t h = c.hidden_size, q = c.n_heads * c.head_dim,
                  kv = c.n_kv_heads * c.head_dim, f = c.intermediate_size;
    if (name == "token_embd.weight") return Spec{c.vocab_size, h, 1};
    if (name == "output.weight") return Spec{c.vocab_size, h, 2};
    int64_t layer = -1;
    size_t dot = 0;
    if (absl::ConsumePrefix(&name, "blk.") &&
        (dot = name.find('.')) != absl::string_view::npos &&
        absl::SimpleAtoi(name.substr(0, dot), &layer) && layer >= 0 &&
        layer < c.n_layers) {
      const absl::string_view m = name.substr(dot + 1);
      const uint64_t base = 3 + 7 * static_cast<uint64_t>(layer);
      if (m == "attn_q.weight") return Spec{q, h, base};
      if (m == "attn_k.weight") return Spec{kv, h, base + 1};
      if (m == "attn_v.weight") return Spec{kv, h, base + 2};
      if (m == "attn_output.weight") return Spec{h, q, base + 3};
      if (m == "ffn_gate.weight") return Spec{f, h, base + 4};
      if (m == "ffn_up.weight") return Spec{f, h, base + 5};
      if (m == "ffn_down.weight") return Spec{h, f, base + 6};
    }
    return absl::NotFoundError(absl::StrCat("gpu_bench: no ", name));
  }

  Backend* b_;
  cudaStream_t stream_;
  ModelConfig config_;
  std::vector<float*> owned_;
  double weight_bytes_ = 0;
};

// Bytes per second of a device-to-device copy, counting read + write.
absl::StatusOr<double> MeasureBandwidth() {
  const size_t bytes = size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess ||
      cudaMalloc(&b, bytes) != cudaSuccess) {
    cudaGetLastError();
    if (a) cudaFree(a);
    return absl::ResourceExhaustedError("bandwidth buffers");
  }
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);  // Warm-up.
  const int iters = 10;
  cudaEventRecord(start);
  for (int i = 0; i < iters; ++i) {
    cudaMemcpyAsync(i % 2 ? a : b, i % 2 ? b : a, bytes,
                    cudaMemcpyDeviceToDevice);
  }
  cudaEventRecord(stop);
  const cudaError_t err = cudaEventSynchronize(stop);
  float ms = 0;
  cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(a);
  cudaFree(b);
  if (err != cudaSuccess) return absl::InternalError(cudaGetErrorString(err));
  return 2.0 * bytes * iters / (ms / 1e3);
}

// `seqs` sequences of `len` new tokens each starting at position `start`;
// sequence s owns blocks [s * per_seq, (s + 1) * per_seq).
StepInput MakeBatch(int64_t seqs, int64_t start, int64_t len, int64_t per_seq,
                    int64_t vocab, uint32_t salt) {
  StepInput b;
  for (int64_t s = 0; s < seqs; ++s) {
    for (int64_t i = 0; i < len; ++i) {
      b.tokens.push_back(
          static_cast<int32_t>((s * 7919 + i * 104729 + salt) % vocab));
      b.positions.push_back(static_cast<int32_t>(start + i));
      b.seq.push_back(static_cast<int32_t>(s));
    }
    b.logit_tokens.push_back(static_cast<int32_t>((s + 1) * len - 1));
    b.block_offsets.push_back(static_cast<int32_t>(s * per_seq));
    for (int64_t k = 0; k < per_seq; ++k) {
      b.block_table.push_back(static_cast<int32_t>(s * per_seq + k));
    }
  }
  b.block_offsets.push_back(static_cast<int32_t>(seqs * per_seq));
  return b;
}

absl::Status Run(const Options& opt) {
  Shape shape;
  shape.layers = opt.layers;
  const int device = opt.device;
  TP_ASSIGN_OR_RETURN(auto backend, MakeCudaBackend(device));
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    return absl::InternalError("cudaGetDeviceProperties");
  }
  int clock_khz = 0, bus_bits = 0;
  cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device);
  cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device);
  const double theoretical = 2.0 * clock_khz * 1e3 * bus_bits / 8;
  TP_ASSIGN_OR_RETURN(const double measured, MeasureBandwidth());

  const std::vector<int64_t> batches = {1, 8, 32, 64};
  const std::vector<int64_t> prompts = {512, 2048};
  const int64_t warm = 2;
  const int64_t per_seq = (opt.context + warm + opt.steps + 15) / 16 + 1;
  const int64_t blocks = std::max<int64_t>(64 * per_seq, 2048 / 16 + 1);
  SyntheticWeights model(backend.get(), shape);  // Outlives the shard.
  const auto t0 = Clock::now();
  TP_ASSIGN_OR_RETURN(const TpPlan plan, MakeTpPlan(model.config(), 1, 0));
  // The KV cache is fresh device memory, not cleared: decode steps attend
  // over positions no prefill wrote, which costs the same whatever they
  // hold.
  TP_ASSIGN_OR_RETURN(auto shard,
                      LlamaShard::Create(model, plan, backend.get(), nullptr,
                                         blocks, /*block_size=*/16));
  TP_RETURN_IF_ERROR(backend->Synchronize());
  // Forward copies the logits to host memory (the shard's contract), which
  // also waits for the step.
  std::vector<float> logits;
  auto step = [&](const StepInput& b) { return shard->Forward(b, &logits); };
  std::fprintf(stderr, "gpu_bench: %s, %.1f GB of weights ready in %.2f s\n",
               prop.name, model.weight_bytes() / 1e9,
               Seconds(t0, Clock::now()));

  std::map<int64_t, double> decode, prefill;
  for (int64_t bs : batches) {
    Clock::time_point start;
    for (int64_t i = 0; i < warm + opt.steps; ++i) {
      if (i == warm) start = Clock::now();  // A step ends in a host wait.
      const StepInput b = MakeBatch(bs, opt.context + i, 1, per_seq,
                                    shape.vocab, static_cast<uint32_t>(i));
      TP_RETURN_IF_ERROR(step(b));
      if (i == warm + opt.steps - 1) {
        decode[bs] = bs * opt.steps / Seconds(start, Clock::now());
      }
    }
    std::fprintf(stderr, "gpu_bench: decode batch %ld: %.1f tokens/s\n",
                 static_cast<long>(bs), decode[bs]);
  }
  for (int64_t len : prompts) {
    // One sequence over the first blocks of the pool.
    const StepInput b = MakeBatch(1, 0, len, (len + 15) / 16, shape.vocab, 3);
    TP_RETURN_IF_ERROR(step(b));  // Warm-up.
    const int reps = 2;
    const auto start = Clock::now();
    for (int r = 0; r < reps; ++r) {
      TP_RETURN_IF_ERROR(step(b));
    }
    prefill[len] = len * reps / Seconds(start, Clock::now());
    std::fprintf(stderr, "gpu_bench: prefill %ld tokens: %.1f tokens/s\n",
                 static_cast<long>(len), prefill[len]);
  }

  // Single-sequence roofline: every weight once plus the KV cache of the
  // context (f32 K and V) per token, at the measured copy bandwidth.
  const double ctx = opt.context + warm + opt.steps / 2.0;
  const double kv_bytes = 2.0 * shape.layers * ctx * shape.kv_heads *
                          shape.head_dim * sizeof(float);
  const double bytes_per_token = model.weight_bytes() + kv_bytes;
  const double roofline = measured / bytes_per_token;
  std::string json =
      absl::StrCat("{\"engine\": \"tpserve-cuda\", \"device\": \"", prop.name,
                   "\", \"layers\": ", shape.layers,
                   ", \"bandwidth_measured_gbs\": ", measured / 1e9,
                   ", \"bandwidth_theoretical_gbs\": ", theoretical / 1e9,
                   ", \"weight_bytes\": ", model.weight_bytes(),
                   ", \"decode_bytes_per_token\": ", bytes_per_token,
                   ", \"decode_b1_roofline_tok_s\": ", roofline,
                   ", \"decode_b1_roofline_share\": ", decode[1] / roofline,
                   ", \"decode_tok_s\": {");
  for (size_t i = 0; i < batches.size(); ++i) {
    absl::StrAppend(&json, i ? ", " : "", "\"", batches[i],
                    "\": ", decode[batches[i]]);
  }
  absl::StrAppend(&json, "}, \"prefill_tok_s\": {");
  for (size_t i = 0; i < prompts.size(); ++i) {
    absl::StrAppend(&json, i ? ", " : "", "\"", prompts[i],
                    "\": ", prefill[prompts[i]]);
  }
  absl::StrAppend(&json, "}}");
  std::printf("%s\n", json.c_str());
  if (!opt.json.empty()) {
    std::ofstream(opt.json) << json << "\n";
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace tpserve::bench

int main(int argc, char** argv) {
  tpserve::bench::Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "gpu_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--device") {
      opt.device = std::atoi(next());
    } else if (a == "--layers") {
      opt.layers = std::atol(next());
    } else if (a == "--steps") {
      opt.steps = std::atoi(next());
    } else if (a == "--context") {
      opt.context = std::atol(next());
    } else if (a == "--json") {
      opt.json = next();
    } else {
      std::fprintf(stderr,
                   "usage: gpu_bench [--device N] [--layers N] [--steps N] "
                   "[--context N] [--json PATH]\n");
      return 2;
    }
  }
  if (opt.layers < 1 || opt.steps < 1 || opt.context < 1) {
    std::fprintf(stderr, "gpu_bench: layers, steps and context must be >= 1\n");
    return 2;
  }
  if (tpserve::CudaDeviceCount() == 0) {
    std::fprintf(stderr, "gpu_bench: no CUDA device\n");
    return 1;
  }
  absl::Status s = tpserve::bench::Run(opt);
  if (!s.ok()) {
    std::fprintf(stderr, "gpu_bench: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
