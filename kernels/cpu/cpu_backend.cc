#include "kernels/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/dequantize.h"
#include "kernels/cpu/float_ops.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/host_backend.h"
#include "kernels/reference_ops.h"

namespace tpserve {
namespace {

// Grows `v` to at least `n` elements; never shrinks, so steady-state calls
// do not allocate.
template <typename T>
T* Grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

class CpuBackend final : public HostBackend {
 public:
  explicit CpuBackend(int threads)
      : pool_(threads),
        attn_scratch_(pool_.size()),
        attn_slots_(pool_.size()) {}

  std::string name() const override { return "cpu"; }

  // fp16, as llama.cpp's: half the memory of f32 slots (F32 layouts work
  // too, holding the same fp16 values).
  GgmlType KvCacheType() const override { return GgmlType::kF16; }

 protected:
  absl::Status EmbeddingGatherImpl(const WeightMatrix& table, int64_t row_begin,
                                   absl::Span<const int32_t> ids,
                                   float* out) override;

  absl::Status RmsNormImpl(const float* x, const float* weight, float* y,
                           int64_t rows, int64_t cols, float eps) override {
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * cols;
      float* yr = y + r * cols;
      // ggml's rms_norm operation for operation (float squares summed in
      // double, mean and scale in float), so the result is bit for bit
      // llama.cpp's and its activation quantization sees the same input.
      double ss = 0;
      for (int64_t i = 0; i < cols; ++i)
        ss += static_cast<double>(xr[i] * xr[i]);
      const float mean = static_cast<float>(ss / static_cast<double>(cols));
      const float scale = 1.0f / std::sqrt(mean + eps);
      for (int64_t i = 0; i < cols; ++i) yr[i] = xr[i] * scale * weight[i];
    }
    return absl::OkStatus();
  }

  absl::Status MatMulImpl(const WeightMatrix& w, const float* x, int64_t n,
                          float* y) override;

  absl::Status RopeImpl(float* x, int64_t n, int64_t heads,
                        absl::Span<const int32_t> pos,
                        const RopeParams& params) override;

  absl::Status SiluMulImpl(float* gate, const float* up, int64_t n) override {
    constexpr int64_t kChunk = 4096;
    pool_.ParallelFor((n + kChunk - 1) / kChunk, [&](int64_t c, int) {
      const int64_t i0 = c * kChunk;
      cpu::SwiGlu(gate + i0, up + i0, std::min(kChunk, n - i0));
    });
    return absl::OkStatus();
  }

  absl::Status AddImpl(float* x, const float* y, int64_t n) override {
    // One float add per element (exact, any order), in chunks of 16 K
    // floats over the threads; each chunk's loop is vectorized.
    constexpr int64_t kChunk = 16384;
    pool_.ParallelFor((n + kChunk - 1) / kChunk, [&](int64_t c, int) {
      const int64_t i0 = c * kChunk;
      const int64_t i1 = std::min(n, i0 + kChunk);
      float* __restrict xs = x + i0;
      const float* __restrict ys = y + i0;
      for (int64_t i = 0; i < i1 - i0; ++i) xs[i] += ys[i];
    });
    return absl::OkStatus();
  }

  absl::Status AddBiasImpl(float* x, const float* bias, int64_t rows,
                           int64_t cols) override {
    // One float add per element, as ggml's broadcast add: exact.
    for (int64_t r = 0; r < rows; ++r) {
      float* xr = x + r * cols;
      for (int64_t c = 0; c < cols; ++c) xr[c] += bias[c];
    }
    return absl::OkStatus();
  }

  absl::Status GatherRowsImpl(const float* x, int64_t cols,
                              absl::Span<const int32_t> rows,
                              float* out) override {
    const size_t row_bytes = static_cast<size_t>(cols) * sizeof(float);
    for (size_t i = 0; i < rows.size(); ++i) {
      std::memcpy(out + i * static_cast<size_t>(cols),
                  x + static_cast<int64_t>(rows[i]) * cols, row_bytes);
    }
    return absl::OkStatus();
  }

  absl::Status AttentionImpl(const AttentionBatch& batch,
                             const KvCacheLayout& layout, void* k_cache,
                             void* v_cache, int64_t layer, const float* q,
                             const float* k, const float* v, int64_t q_heads,
                             float scale, float* out) override;

 private:
  cpu::ThreadPool pool_;
  // MatMul's quantized activations, grown to the largest n * cols seen.
  std::vector<int8_t> act_q_;
  std::vector<float> act_d_;
  std::vector<int16_t> act_sums_;
  std::vector<float> act_dsum_;
  // Per-thread attention scratch: scores then the output accumulator.
  std::vector<std::vector<float>> attn_scratch_;
  // Per-thread K and V slot pointers of the head being attended.
  std::vector<std::vector<const void*>> attn_slots_;
};

absl::Status CpuBackend::EmbeddingGatherImpl(const WeightMatrix& table,
                                             int64_t row_begin,
                                             absl::Span<const int32_t> ids,
                                             float* out) {
  // One task per token: each row decoded by DequantizeRow (bit-exact, so
  // the result is the reference's), ids outside this rank's rows zeroed.
  const size_t row_bytes = *GgmlRowBytes(table.type, table.cols);
  const size_t cols = static_cast<size_t>(table.cols);
  std::vector<absl::Status> errors(static_cast<size_t>(pool_.size()));
  pool_.ParallelFor(
      static_cast<int64_t>(ids.size()), [&](int64_t i, int thread) {
        float* o = out + static_cast<size_t>(i) * cols;
        const int64_t r = int64_t{ids[i]} - row_begin;
        if (r < 0 || r >= table.rows) {
          std::memset(o, 0, cols * sizeof(float));
          return;
        }
        absl::Status s = DequantizeRow(
            table.type, table.data + static_cast<size_t>(r) * table.row_stride,
            row_bytes, table.cols, o);
        if (!s.ok()) errors[thread] = s;
      });
  for (const absl::Status& s : errors) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::MatMulImpl(const WeightMatrix& w, const float* x,
                                    int64_t n, float* y) {
  cpu::MatMulArgs args{w, x, {}, n, y};
  if (cpu::UsesQuantizedActs(w.type)) {
    // Block-quantized types have cols % 32 == 0 (validated above).
    const size_t total = static_cast<size_t>(n) * w.cols;
    int8_t* q = Grow(act_q_, total);
    float* d = Grow(act_d_, total / kActBlock);
    int16_t* sums = Grow(act_sums_, total / 16);
    float* dsum = Grow(act_dsum_, total / kActBlock);
    const int64_t cols = w.cols;
    // Quantizing is O(n cols), the matmul O(n cols rows): a few rows a task.
    constexpr int64_t kRowsPerTask = 4;
    pool_.ParallelFor((n + kRowsPerTask - 1) / kRowsPerTask, [&](int64_t task,
                                                                 int) {
      const int64_t i0 = task * kRowsPerTask;
      cpu::QuantizeActRows(w.type, x, cols, i0, std::min(n, i0 + kRowsPerTask),
                           q, d, sums, dsum);
    });
    args.acts = {q, d, sums, dsum, cols};
  }
  // Row chunks: about 8 per thread for balance (threads are shared with the
  // OS and other ranks), at least 16 rows so per-task overhead stays small,
  // and at most ~256 KiB of weights so that a chunk stays in L2 while the
  // kernel passes over it once per group of 4 activation rows (n > 4).
  const int64_t threads = pool_.size();
  const int64_t l2_rows =
      static_cast<int64_t>((size_t{256} << 10) / w.row_stride);
  const int64_t chunk = std::max<int64_t>(
      16, std::min((w.rows + threads * 8 - 1) / (threads * 8), l2_rows));
  const int64_t tasks = (w.rows + chunk - 1) / chunk;
  pool_.ParallelFor(tasks, [&](int64_t task, int) {
    const int64_t r0 = task * chunk;
    cpu::MatMulRows(args, r0, std::min(w.rows, r0 + chunk));
  });
  return absl::OkStatus();
}

absl::Status CpuBackend::RopeImpl(float* x, int64_t n, int64_t heads,
                                  absl::Span<const int32_t> pos,
                                  const RopeParams& params) {
  const int64_t half = params.rope_dim / 2;
  // ggml's rope_ext (ggml_rope_cache_init, rope_yarn), operation for
  // operation, so Q and K are bit for bit llama.cpp's: angles in float,
  // theta_i = pos * theta_scale^i built by repeated multiplication from
  // theta_scale = powf(base, -2 / rope_dim), divided by the frequency
  // factor, scaled (and YaRN-mixed) by freq_scale, then cosf/sinf times the
  // magnitude. (Float angles drift by ~1e-6 relative at large positions, as
  // in ggml and in Hugging Face's float32 rotary embedding.)
  const float freq_scale = static_cast<float>(params.freq_scale);
  const float ext_factor = static_cast<float>(params.ext_factor);
  float mscale = static_cast<float>(params.attn_factor);
  float corr[2] = {0, 0};
  if (ext_factor != 0.0f) {
    // GCC contracts ggml's a * b + c into fma(a, b, c), here and below.
    mscale *= std::fma(0.1f, std::log(1.0f / freq_scale), 1.0f);
    // ggml_rope_yarn_corr_dims, in float.
    const float n_dims = static_cast<float>(params.rope_dim);
    const float ctx = static_cast<float>(params.original_max_positions);
    const float base = static_cast<float>(params.theta);
    auto corr_dim = [&](float rotations) {
      return n_dims *
             std::log(ctx / (rotations * 2 * 3.14159265358979323846f)) /
             (2 * std::log(base));
    };
    corr[0] = std::max(
        0.0f, std::floor(corr_dim(static_cast<float>(params.beta_fast))));
    corr[1] = std::min(
        n_dims - 1, std::ceil(corr_dim(static_cast<float>(params.beta_slow))));
  }
  const float* factors =
      params.freq_factors.empty() ? nullptr : params.freq_factors.data();
  const float theta_scale =
      std::pow(static_cast<float>(params.theta),
               -2.0f / static_cast<float>(params.rope_dim));
  for (int64_t t = 0; t < n; ++t) {
    float theta = static_cast<float>(pos[t]);
    for (int64_t i = 0; i < half; ++i, theta *= theta_scale) {
      const float extrap = factors != nullptr ? theta / factors[i] : theta;
      float angle = freq_scale * extrap;
      if (ext_factor != 0.0f) {
        const float y = (static_cast<float>(i) - corr[0]) /
                        std::max(0.001f, corr[1] - corr[0]);
        const float mix = (1 - std::min(1.0f, std::max(0.0f, y))) * ext_factor;
        angle = std::fma(angle, 1 - mix, extrap * mix);
      }
      const float c = std::cos(angle) * mscale;
      const float s = std::sin(angle) * mscale;
      const int64_t i0 = params.neox ? i : 2 * i;
      const int64_t i1 = params.neox ? i + half : 2 * i + 1;
      for (int64_t h = 0; h < heads; ++h) {
        float* xh = x + (t * heads + h) * params.head_dim;
        const float x0 = xh[i0], x1 = xh[i1];
        // The contraction GCC gives ggml's x0*c - x1*s and x0*s + x1*c.
        xh[i0] = std::fma(x0, c, -(x1 * s));
        xh[i1] = std::fma(x0, s, x1 * c);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::AttentionImpl(
    const AttentionBatch& batch, const KvCacheLayout& layout, void* k_cache,
    void* v_cache, int64_t layer, const float* q, const float* k,
    const float* v, int64_t q_heads, float scale, float* out) {
  const int64_t n = batch.n_tokens;
  const int64_t hd = layout.head_dim;
  const int64_t slot_floats = layout.kv_heads * hd;
  const bool f16 = layout.dtype == GgmlType::kF16;
  const int64_t elem = layout.ElementBytes();
  auto* kc = static_cast<uint8_t*>(k_cache);
  auto* vc = static_cast<uint8_t*>(v_cache);
  // Element offset of (seq s, position p) in this layer; int64 (a cache of
  // many layers exceeds 2^31 elements). Validated: the block id is in range.
  auto slot = [&](int64_t s, int64_t p) {
    const int64_t block =
        batch.block_table[batch.block_offsets[s] + p / layout.block_size];
    return ((layer * layout.num_blocks + block) * layout.block_size +
            p % layout.block_size) *
           slot_floats;
  };
  // All new keys and values first: tokens of this step attend to each other.
  // They are kept at fp16 precision, as llama.cpp's (and GPU servers') f16
  // KV cache keeps them.
  int64_t max_len = 0;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t o = slot(batch.seq[t], batch.pos[t]);
    const float* kt = k + t * slot_floats;
    const float* vt = v + t * slot_floats;
    if (f16) {
      cpu::FloatToHalfRow(kt, slot_floats,
                          reinterpret_cast<uint16_t*>(kc + o * elem));
      cpu::FloatToHalfRow(vt, slot_floats,
                          reinterpret_cast<uint16_t*>(vc + o * elem));
    } else {
      auto* kf = reinterpret_cast<float*>(kc + o * elem);
      auto* vf = reinterpret_cast<float*>(vc + o * elem);
      for (int64_t i = 0; i < slot_floats; ++i) {
        kf[i] = RoundToFp16(kt[i]);
        vf[i] = RoundToFp16(vt[i]);
      }
    }
    max_len = std::max<int64_t>(max_len, int64_t{batch.pos[t]} + 1);
  }
  // llama.cpp attends from a batched prompt's tokens and from single
  // generated tokens through different f16 matmul paths (float_ops.h);
  // queries below their sequence's prompt length (when the prompt has two
  // tokens or more, as llama.cpp then batches it) take the first.
  auto order = [&](int64_t s, int64_t p) {
    const int64_t prompt = batch.prompt_len.empty() ? 0 : batch.prompt_len[s];
    return prompt >= 2 && p < prompt ? cpu::AttentionOrder::kTiled
                                     : cpu::AttentionOrder::kVecDot;
  };
  const size_t scratch_floats =
      static_cast<size_t>(hd + cpu::AttentionScratchFloats(max_len, hd));
  for (std::vector<float>& s : attn_scratch_) Grow(s, scratch_floats);
  for (std::vector<const void*>& s : attn_slots_) {
    Grow(s, 2 * static_cast<size_t>(max_len));
  }
  const int64_t group = q_heads / layout.kv_heads;
  pool_.ParallelFor(n * q_heads, [&](int64_t task, int thread) {
    const int64_t t = task / q_heads;
    const int64_t h = task % q_heads;
    const int64_t s = batch.seq[t];
    const int64_t len = int64_t{batch.pos[t]} + 1;
    const int64_t kv_off = (h / group) * hd;
    float* qh = attn_scratch_[thread].data();
    float* scratch = qh + hd;
    const void** keys = attn_slots_[thread].data();
    const void** values = keys + len;
    // q meets the f16 keys as f16, as in llama.cpp's KQ matmul.
    for (int64_t i = 0; i < hd; ++i) qh[i] = RoundToFp16(q[task * hd + i]);
    for (int64_t p = 0; p < len; ++p) {
      const int64_t o = (slot(s, p) + kv_off) * elem;
      keys[p] = kc + o;
      values[p] = vc + o;
    }
    // Written last: out may alias q.
    cpu::AttendHead(qh, keys, values, f16, len, hd, scale, order(s, len - 1),
                    scratch, out + task * hd);
  });
  return absl::OkStatus();
}

}  // namespace

std::unique_ptr<Backend> MakeCpuBackend(int threads) {
  if (threads <= 0) {
    threads =
        std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }
  return std::make_unique<CpuBackend>(threads);
}

}  // namespace tpserve
