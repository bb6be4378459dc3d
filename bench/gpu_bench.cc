// GPU engine benchmark on a synthetic Llama-3-8B-shaped model (hidden 4096,
// 32 layers, 32 query / 8 KV heads of 128, FFN 14336, vocabulary 128256,
// llama3 RoPE scaling) with random BF16 weights generated on the device.
// It runs the forward pass of worker/llama_shard.cc op for op through the
// CUDA Backend (the same calls in the same order; only the rows wanted for
// logits are picked with a device-to-device copy instead of the shard's
// round trip through host memory) and reports, as one JSON object:
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

#include "absl/strings/str_cat.h"
#include "bench/gpu_bench_init.h"
#include "common/model_config.h"
#include "common/status_macros.h"
#include "kernels/backend.h"
#include "kernels/cuda/cuda_backend.h"

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

constexpr int64_t kMaxLogitRows = 64;

class SyntheticLlama {
 public:
  SyntheticLlama(Backend* backend, const Shape& shape)
      : b_(backend), s_(shape), stream_(CudaBackendStream(*backend)) {}
  ~SyntheticLlama() {
    for (float* p : owned_) b_->Free(p);
  }

  absl::Status Init(int64_t max_tokens, int64_t kv_blocks) {
    uint64_t seed = 1;
    // N(0, 0.02)-like scale; uniform in [-0.035, 0.035).
    auto matrix = [&](int64_t rows,
                      int64_t cols) -> absl::StatusOr<WeightMatrix> {
      const size_t elems = static_cast<size_t>(rows) * cols;
      TP_ASSIGN_OR_RETURN(float* p, Alloc((elems + 1) / 2));
      TP_RETURN_IF_ERROR(FillRandomBf16(reinterpret_cast<uint16_t*>(p), elems,
                                        seed++, 0.035f, stream_));
      weight_bytes_ += static_cast<double>(elems) * 2;
      return WeightMatrix{GgmlType::kBF16, rows, cols,
                          reinterpret_cast<const uint8_t*>(p),
                          static_cast<size_t>(cols) * 2};
    };
    auto ones = [&](int64_t n) -> absl::StatusOr<float*> {
      TP_ASSIGN_OR_RETURN(float* p, Alloc(n));
      TP_RETURN_IF_ERROR(FillFloats(p, n, 1.0f, stream_));
      return p;
    };
    const int64_t h = s_.hidden, hd = s_.head_dim;
    TP_ASSIGN_OR_RETURN(embd_, matrix(s_.vocab, h));
    weight_bytes_ -=
        static_cast<double>(s_.vocab) * h * 2;  // Gathered, not read.
    TP_ASSIGN_OR_RETURN(lm_head_, matrix(s_.vocab, h));
    TP_ASSIGN_OR_RETURN(out_norm_, ones(h));
    layers_.resize(s_.layers);
    for (Layer& l : layers_) {
      TP_ASSIGN_OR_RETURN(l.attn_norm, ones(h));
      TP_ASSIGN_OR_RETURN(l.ffn_norm, ones(h));
      TP_ASSIGN_OR_RETURN(l.q, matrix(s_.heads * hd, h));
      TP_ASSIGN_OR_RETURN(l.k, matrix(s_.kv_heads * hd, h));
      TP_ASSIGN_OR_RETURN(l.v, matrix(s_.kv_heads * hd, h));
      TP_ASSIGN_OR_RETURN(l.o, matrix(h, s_.heads * hd));
      TP_ASSIGN_OR_RETURN(l.gate, matrix(s_.ffn, h));
      TP_ASSIGN_OR_RETURN(l.up, matrix(s_.ffn, h));
      TP_ASSIGN_OR_RETURN(l.down, matrix(h, s_.ffn));
    }
    kv_.layers = s_.layers;
    kv_.num_blocks = kv_blocks;
    kv_.block_size = 16;
    kv_.kv_heads = s_.kv_heads;
    kv_.head_dim = hd;
    kv_.dtype = b_->KvCacheType();  // F32 on CUDA.
    const size_t cache = static_cast<size_t>(kv_.CacheBytes()) / sizeof(float);
    TP_ASSIGN_OR_RETURN(k_cache_, Alloc(cache));
    TP_ASSIGN_OR_RETURN(v_cache_, Alloc(cache));
    TP_RETURN_IF_ERROR(FillFloats(k_cache_, cache, 0.0f, stream_));
    TP_RETURN_IF_ERROR(FillFloats(v_cache_, cache, 0.0f, stream_));
    const int64_t n = max_tokens;
    TP_ASSIGN_OR_RETURN(x_, Alloc(n * h));
    TP_ASSIGN_OR_RETURN(h_, Alloc(n * h));
    TP_ASSIGN_OR_RETURN(q_, Alloc(n * s_.heads * hd));
    TP_ASSIGN_OR_RETURN(k_, Alloc(n * s_.kv_heads * hd));
    TP_ASSIGN_OR_RETURN(v_, Alloc(n * s_.kv_heads * hd));
    TP_ASSIGN_OR_RETURN(attn_, Alloc(n * s_.heads * hd));
    TP_ASSIGN_OR_RETURN(proj_, Alloc(n * h));
    TP_ASSIGN_OR_RETURN(gate_, Alloc(n * s_.ffn));
    TP_ASSIGN_OR_RETURN(up_, Alloc(n * s_.ffn));
    // Logit rows: one per sequence, at most the largest decode batch.
    TP_ASSIGN_OR_RETURN(last_, Alloc(kMaxLogitRows * h));
    TP_ASSIGN_OR_RETURN(logits_, Alloc(kMaxLogitRows * s_.vocab));
    rope_.head_dim = hd;
    rope_.rope_dim = hd;
    rope_.theta = 500000;
    rope_.freq_factors = Llama3RopeFactors(500000, hd, 8, 1, 4, 8192);
    return b_->Synchronize();
  }

  // One step as LlamaShard::Forward runs it; logits of the `logit_tokens`
  // rows land in host memory (the shard's contract), which also waits.
  absl::Status Step(const std::vector<int32_t>& tokens,
                    const std::vector<int32_t>& pos,
                    const std::vector<int32_t>& seq,
                    const std::vector<int32_t>& table,
                    const std::vector<int32_t>& offsets,
                    const std::vector<int32_t>& logit_tokens) {
    const int64_t n = static_cast<int64_t>(tokens.size());
    const int64_t m = static_cast<int64_t>(logit_tokens.size());
    if (m > kMaxLogitRows) {
      return absl::InvalidArgumentError("gpu_bench: too many logit rows");
    }
    const int64_t hidden = s_.hidden;
    const float scale = 1.0f / std::sqrt(static_cast<float>(s_.head_dim));
    AttentionBatch batch{n, seq, pos, table, offsets, {}};
    TP_RETURN_IF_ERROR(b_->EmbeddingGather(embd_, 0, tokens, x_));
    for (int64_t il = 0; il < s_.layers; ++il) {
      const Layer& l = layers_[il];
      TP_RETURN_IF_ERROR(b_->RmsNorm(x_, l.attn_norm, h_, n, hidden, s_.eps));
      TP_RETURN_IF_ERROR(b_->MatMul(l.q, h_, n, q_));
      TP_RETURN_IF_ERROR(b_->MatMul(l.k, h_, n, k_));
      TP_RETURN_IF_ERROR(b_->MatMul(l.v, h_, n, v_));
      TP_RETURN_IF_ERROR(b_->Rope(q_, n, s_.heads, pos, rope_));
      TP_RETURN_IF_ERROR(b_->Rope(k_, n, s_.kv_heads, pos, rope_));
      TP_RETURN_IF_ERROR(b_->Attention(batch, kv_, k_cache_, v_cache_, il, q_,
                                       k_, v_, s_.heads, scale, attn_));
      TP_RETURN_IF_ERROR(b_->MatMul(l.o, attn_, n, proj_));
      TP_RETURN_IF_ERROR(b_->Add(x_, proj_, n * hidden));
      TP_RETURN_IF_ERROR(b_->RmsNorm(x_, l.ffn_norm, h_, n, hidden, s_.eps));
      TP_RETURN_IF_ERROR(b_->MatMul(l.gate, h_, n, gate_));
      TP_RETURN_IF_ERROR(b_->MatMul(l.up, h_, n, up_));
      TP_RETURN_IF_ERROR(b_->SiluMul(gate_, up_, n * s_.ffn));
      TP_RETURN_IF_ERROR(b_->MatMul(l.down, gate_, n, proj_));
      TP_RETURN_IF_ERROR(b_->Add(x_, proj_, n * hidden));
    }
    for (int64_t i = 0; i < m; ++i) {
      const cudaError_t err = cudaMemcpyAsync(
          last_ + i * hidden, x_ + int64_t{logit_tokens[i]} * hidden,
          hidden * sizeof(float), cudaMemcpyDeviceToDevice, stream_);
      if (err != cudaSuccess) {
        return absl::InternalError(cudaGetErrorString(err));
      }
    }
    TP_RETURN_IF_ERROR(b_->RmsNorm(last_, out_norm_, last_, m, hidden, s_.eps));
    TP_RETURN_IF_ERROR(b_->MatMul(lm_head_, last_, m, logits_));
    host_logits_.resize(static_cast<size_t>(m) * s_.vocab);
    return b_->CopyToHost(logits_, host_logits_.data(), host_logits_.size());
  }

  // Weight bytes a decode step reads (every matrix once; embedding rows
  // are gathered, not read whole).
  double weight_bytes() const { return weight_bytes_; }
  const Shape& shape() const { return s_; }

 private:
  struct Layer {
    float* attn_norm = nullptr;
    float* ffn_norm = nullptr;
    WeightMatrix q, k, v, o, gate, up, down;
  };
  absl::StatusOr<float*> Alloc(size_t floats) {
    TP_ASSIGN_OR_RETURN(float* p, b_->AllocFloats(floats));
    owned_.push_back(p);
    return p;
  }

  Backend* b_;
  Shape s_;
  cudaStream_t stream_;
  std::vector<float*> owned_;
  std::vector<Layer> layers_;
  WeightMatrix embd_, lm_head_;
  float* out_norm_ = nullptr;
  KvCacheLayout kv_;
  RopeParams rope_;
  float *k_cache_ = nullptr, *v_cache_ = nullptr;
  float *x_ = nullptr, *h_ = nullptr, *q_ = nullptr, *k_ = nullptr,
        *v_ = nullptr, *attn_ = nullptr, *proj_ = nullptr, *gate_ = nullptr,
        *up_ = nullptr, *last_ = nullptr, *logits_ = nullptr;
  std::vector<float> host_logits_;
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

struct Batch {
  std::vector<int32_t> tokens, pos, seq, table, offsets, logit_tokens;
};

// `seqs` sequences of `len` new tokens each starting at position `start`;
// sequence s owns blocks [s * per_seq, (s + 1) * per_seq).
Batch MakeBatch(int64_t seqs, int64_t start, int64_t len, int64_t per_seq,
                int64_t vocab, uint32_t salt) {
  Batch b;
  for (int64_t s = 0; s < seqs; ++s) {
    for (int64_t i = 0; i < len; ++i) {
      b.tokens.push_back(
          static_cast<int32_t>((s * 7919 + i * 104729 + salt) % vocab));
      b.pos.push_back(static_cast<int32_t>(start + i));
      b.seq.push_back(static_cast<int32_t>(s));
    }
    b.logit_tokens.push_back(static_cast<int32_t>((s + 1) * len - 1));
    b.offsets.push_back(static_cast<int32_t>(s * per_seq));
    for (int64_t k = 0; k < per_seq; ++k) {
      b.table.push_back(static_cast<int32_t>(s * per_seq + k));
    }
  }
  b.offsets.push_back(static_cast<int32_t>(seqs * per_seq));
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
  SyntheticLlama model(backend.get(), shape);
  const auto t0 = Clock::now();
  TP_RETURN_IF_ERROR(model.Init(2048, blocks));
  std::fprintf(stderr, "gpu_bench: %s, %.1f GB of weights ready in %.2f s\n",
               prop.name, model.weight_bytes() / 1e9,
               Seconds(t0, Clock::now()));

  std::map<int64_t, double> decode, prefill;
  for (int64_t bs : batches) {
    Clock::time_point start;
    for (int64_t i = 0; i < warm + opt.steps; ++i) {
      if (i == warm) start = Clock::now();  // Step() ends in a host wait.
      Batch b = MakeBatch(bs, opt.context + i, 1, per_seq, shape.vocab,
                          static_cast<uint32_t>(i));
      TP_RETURN_IF_ERROR(model.Step(b.tokens, b.pos, b.seq, b.table, b.offsets,
                                    b.logit_tokens));
      if (i == warm + opt.steps - 1) {
        decode[bs] = bs * opt.steps / Seconds(start, Clock::now());
      }
    }
    std::fprintf(stderr, "gpu_bench: decode batch %ld: %.1f tokens/s\n",
                 static_cast<long>(bs), decode[bs]);
  }
  for (int64_t len : prompts) {
    // One sequence over the first blocks of the pool.
    Batch b = MakeBatch(1, 0, len, (len + 15) / 16, shape.vocab, 3);
    TP_RETURN_IF_ERROR(model.Step(b.tokens, b.pos, b.seq, b.table, b.offsets,
                                  b.logit_tokens));  // Warm-up.
    const int reps = 2;
    const auto start = Clock::now();
    for (int r = 0; r < reps; ++r) {
      TP_RETURN_IF_ERROR(model.Step(b.tokens, b.pos, b.seq, b.table, b.offsets,
                                    b.logit_tokens));
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
