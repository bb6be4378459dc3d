#include "kernels/reference_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/dequantize.h"
#include "kernels/host_backend.h"

namespace tpserve {

void RopeYarnCorrDims(const RopeParams& p, double dims[2]) {
  const double kPi = 3.14159265358979323846;
  const double n = static_cast<double>(p.rope_dim);
  const double ctx = static_cast<double>(p.original_max_positions);
  auto corr_dim = [&](double rotations) {
    return n * std::log(ctx / (rotations * 2 * kPi)) / (2 * std::log(p.theta));
  };
  dims[0] = std::max(0.0, std::floor(corr_dim(p.beta_fast)));
  dims[1] = std::min(n - 1, std::ceil(corr_dim(p.beta_slow)));
}

double RopeFrequency(const RopeParams& p, int64_t i) {
  double base = std::pow(
      p.theta, -2.0 * static_cast<double>(i) / static_cast<double>(p.rope_dim));
  if (!p.freq_factors.empty()) base /= p.freq_factors[i];
  double mix = 0;  // Weight of the extrapolated (unscaled) frequency.
  if (p.ext_factor != 0) {
    double dims[2];
    RopeYarnCorrDims(p, dims);
    const double y =
        (static_cast<double>(i) - dims[0]) / std::max(0.001, dims[1] - dims[0]);
    mix = (1 - std::min(1.0, std::max(0.0, y))) * p.ext_factor;
  }
  return base * (p.freq_scale * (1 - mix) + mix);
}

double RopeMagnitude(const RopeParams& p) {
  if (p.ext_factor == 0) return p.attn_factor;
  return p.attn_factor * (1 + 0.1 * std::log(1 / p.freq_scale));
}

void QuantizeActivationBlock(const float* x, int8_t* q, float* d,
                             float* q8_1_sum) {
  float amax = 0;
  for (int i = 0; i < kActBlock; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d_exact = amax / 127.0f;
  const float id = amax > 0 ? 127.0f / amax : 0.0f;
  int sum = 0;
  for (int i = 0; i < kActBlock; ++i) {
    // Clamp before converting: x * id may round to just above 127, and a
    // NaN must not reach the conversion (UB); NaN clamps to -127 here.
    const float v = std::min(127.0f, std::max(-127.0f, x[i] * id));
    q[i] = static_cast<int8_t>(std::nearbyint(v));
    sum += q[i];
  }
  // The scales are stored at fp16 precision, as ggml's q8_0/q8_1 blocks
  // store them, while the quants use the exact 127 / amax (as ggml does).
  *d = RoundToFp16(d_exact);
  if (q8_1_sum != nullptr) {
    *q8_1_sum = RoundToFp16(d_exact * static_cast<float>(sum));
  }
}

void QuantizeActivationBlockQ8K(const float* x, int8_t* q, float* d,
                                int16_t* bsums) {
  float amax = 0, max = 0;
  for (int i = 0; i < kQK_K; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax == 0) {
    std::fill(q, q + kQK_K, int8_t{0});
    std::fill(bsums, bsums + kQK_K / 16, int16_t{0});
    *d = 0;
    return;
  }
  const float iscale = -127.0f / max;
  for (int i = 0; i < kQK_K; ++i) {
    // |iscale x| <= 127 (up to rounding), so no lower clamp is needed.
    const float v = std::nearbyint(iscale * x[i]);
    q[i] = static_cast<int8_t>(std::min(127.0f, v));
  }
  for (int k = 0; k < kQK_K / 16; ++k) {
    int sum = 0;
    for (int j = 0; j < 16; ++j) sum += q[16 * k + j];
    bsums[k] = static_cast<int16_t>(sum);
  }
  *d = 1 / iscale;
}

absl::Status EmbeddingGatherReference(const WeightMatrix& table,
                                      int64_t row_begin,
                                      absl::Span<const int32_t> ids,
                                      float* out) {
  if (absl::Status s = ValidateEmbeddingGather(table, ids, out); !s.ok()) {
    return s;
  }
  const size_t row_bytes = *GgmlRowBytes(table.type, table.cols);
  for (size_t i = 0; i < ids.size(); ++i) {
    float* o = out + i * static_cast<size_t>(table.cols);
    const int64_t r = static_cast<int64_t>(ids[i]) - row_begin;
    if (r < 0 || r >= table.rows) {
      std::fill(o, o + table.cols, 0.0f);
      continue;
    }
    absl::Status s = DequantizeRow(
        table.type, table.data + static_cast<size_t>(r) * table.row_stride,
        row_bytes, table.cols, o);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

namespace {

bool IsBlockQuantized(GgmlType t) {
  return t != GgmlType::kF32 && t != GgmlType::kF16 && t != GgmlType::kBF16;
}

// y = x * w^T with the activations already as doubles.
absl::Status MatMulDouble(const WeightMatrix& w, const std::vector<double>& xd,
                          int64_t n, float* y) {
  const size_t row_bytes = *GgmlRowBytes(w.type, w.cols);
  std::vector<float> wrow(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    absl::Status s =
        DequantizeRow(w.type, w.data + static_cast<size_t>(r) * w.row_stride,
                      row_bytes, w.cols, wrow.data());
    if (!s.ok()) return s;
    for (int64_t i = 0; i < n; ++i) {
      const double* xi = xd.data() + static_cast<size_t>(i) * w.cols;
      double acc = 0;
      for (int64_t c = 0; c < w.cols; ++c) acc += double{wrow[c]} * xi[c];
      y[static_cast<size_t>(i) * w.rows + r] = static_cast<float>(acc);
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status MatMulReference(const WeightMatrix& w, const float* x, int64_t n,
                             float* y) {
  if (absl::Status s = ValidateMatMul(w, x, n, y); !s.ok()) return s;
  if (n == 0 || w.rows == 0) return absl::OkStatus();
  std::vector<double> xd(x, x + static_cast<size_t>(n) * w.cols);
  return MatMulDouble(w, xd, n, y);
}

absl::Status MatMulReferenceQ8Activations(const WeightMatrix& w, const float* x,
                                          int64_t n, float* y) {
  if (absl::Status s = ValidateMatMul(w, x, n, y); !s.ok()) return s;
  if (n == 0 || w.rows == 0) return absl::OkStatus();
  if (!IsBlockQuantized(w.type)) return MatMulReference(w, x, n, y);
  // Block-quantized types have cols % 32 == 0 (checked above via the type).
  const size_t total = static_cast<size_t>(n) * w.cols;
  std::vector<double> xd(total);
  if (GetGgmlType(w.type).block_size == kQK_K) {
    for (size_t b = 0; b < total; b += kQK_K) {
      int8_t q[kQK_K];
      int16_t bsums[kQK_K / 16];
      float d;
      QuantizeActivationBlockQ8K(x + b, q, &d, bsums);
      for (int j = 0; j < kQK_K; ++j) xd[b + j] = double{d} * q[j];
    }
    return MatMulDouble(w, xd, n, y);
  }
  for (size_t b = 0; b < total; b += kActBlock) {
    int8_t q[kActBlock];
    float d;
    QuantizeActivationBlock(x + b, q, &d);
    for (int j = 0; j < kActBlock; ++j) xd[b + j] = double{d} * q[j];
  }
  if (absl::Status s = MatMulDouble(w, xd, n, y); !s.ok()) return s;
  if (w.type != GgmlType::kQ4_1 && w.type != GgmlType::kQ5_1) {
    return absl::OkStatus();
  }
  // Q4_1 and Q5_1 (x = d q + m) meet ggml's q8_1 activations, whose min
  // term uses s, (unrounded d) * sum(q) rounded to fp16, instead of
  // d * sum(q): add m * (s - d sum(q)) per block. Both block layouts start
  // with fp16 d then fp16 m.
  const size_t block_bytes = *GgmlRowBytes(w.type, kActBlock);
  const int64_t nb = w.cols / kActBlock;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t r = 0; r < w.rows; ++r) {
      double fix = 0;
      for (int64_t b = 0; b < nb; ++b) {
        int8_t q[kActBlock];
        float d, s8;
        QuantizeActivationBlock(x + (i * nb + b) * kActBlock, q, &d, &s8);
        int sum = 0;
        for (int j = 0; j < kActBlock; ++j) sum += q[j];
        GgmlHalf m;
        std::memcpy(&m, w.data + r * w.row_stride + b * block_bytes + 2, 2);
        fix += double{Fp16ToFp32(m)} * (double{s8} - double{d} * sum);
      }
      float& out = y[i * w.rows + r];
      out = static_cast<float>(out + fix);
    }
  }
  return absl::OkStatus();
}

absl::Status RopeReference(float* x, int64_t n, int64_t heads,
                           absl::Span<const int32_t> pos,
                           const RopeParams& params) {
  if (absl::Status s = ValidateRope(x, n, heads, pos, params); !s.ok()) {
    return s;
  }
  const int64_t half = params.rope_dim / 2;
  const double mscale = RopeMagnitude(params);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t h = 0; h < heads; ++h) {
      float* xh = x + (t * heads + h) * params.head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const double angle = pos[t] * RopeFrequency(params, i);
        const double c = std::cos(angle) * mscale;
        const double s = std::sin(angle) * mscale;
        const int64_t i0 = params.neox ? i : 2 * i;
        const int64_t i1 = params.neox ? i + half : 2 * i + 1;
        const double x0 = xh[i0], x1 = xh[i1];
        xh[i0] = static_cast<float>(x0 * c - x1 * s);
        xh[i1] = static_cast<float>(x0 * s + x1 * c);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status SiluMulReference(float* gate, const float* up, int64_t n) {
  if (absl::Status s = ValidateSiluMul(gate, up, n); !s.ok()) return s;
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i];
    gate[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[i]);
  }
  return absl::OkStatus();
}

absl::Status AddReference(float* x, const float* y, int64_t n) {
  if (absl::Status s = ValidateAdd(x, y, n); !s.ok()) return s;
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
  return absl::OkStatus();
}

absl::Status RmsNormReference(const float* x, const float* weight, float* y,
                              int64_t rows, int64_t cols, float eps) {
  if (absl::Status s = ValidateRmsNorm(x, weight, y, rows, cols, eps);
      !s.ok()) {
    return s;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    double sum_sq = 0;
    for (int64_t i = 0; i < cols; ++i) sum_sq += double{xr[i]} * xr[i];
    const double scale = 1.0 / std::sqrt(sum_sq / cols + eps);
    for (int64_t i = 0; i < cols; ++i) {
      yr[i] = static_cast<float>(xr[i] * scale * weight[i]);
    }
  }
  return absl::OkStatus();
}

absl::Status GatherRowsReference(const float* x, int64_t cols,
                                 absl::Span<const int32_t> rows, float* out) {
  if (absl::Status s = ValidateGatherRows(x, cols, rows, out); !s.ok()) {
    return s;
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    const float* src = x + static_cast<int64_t>(rows[i]) * cols;
    float* dst = out + static_cast<int64_t>(i) * cols;
    for (int64_t c = 0; c < cols; ++c) dst[c] = src[c];
  }
  return absl::OkStatus();
}

absl::Status AddBiasReference(float* x, const float* bias, int64_t rows,
                              int64_t cols) {
  if (absl::Status s = ValidateAddBias(x, bias, rows, cols); !s.ok()) return s;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) x[r * cols + c] += bias[c];
  }
  return absl::OkStatus();
}

absl::Status AttentionReference(const AttentionBatch& batch,
                                const KvCacheLayout& layout, void* k_cache,
                                void* v_cache, int64_t layer, const float* q,
                                const float* k, const float* v, int64_t q_heads,
                                float scale, float* out) {
  if (absl::Status s = ValidateAttention(batch, layout, k_cache, v_cache, layer,
                                         q, k, v, q_heads, out);
      !s.ok()) {
    return s;
  }
  const GgmlType dtype = layout.dtype;
  const int64_t hd = layout.head_dim;
  const int64_t kvh = layout.kv_heads;
  const int64_t slot_floats = kvh * hd;
  // Float offset of (seq s, position p) in layer `layer`'s cache; int64
  // throughout (a large cache exceeds 2^31 floats).
  auto slot = [&](int64_t s, int64_t p) {
    const int64_t block =
        batch.block_table[batch.block_offsets[s] + p / layout.block_size];
    return ((layer * layout.num_blocks + block) * layout.block_size +
            p % layout.block_size) *
           slot_floats;
  };
  // The cache holds fp16 values (Backend::Attention).
  for (int64_t t = 0; t < batch.n_tokens; ++t) {
    const int64_t o = slot(batch.seq[t], batch.pos[t]);
    for (int64_t i = 0; i < slot_floats; ++i) {
      KvStore(k_cache, dtype, o + i, k[t * slot_floats + i]);
      KvStore(v_cache, dtype, o + i, v[t * slot_floats + i]);
    }
  }
  const int64_t group = q_heads / kvh;
  std::vector<double> scores, acc(static_cast<size_t>(hd));
  for (int64_t t = 0; t < batch.n_tokens; ++t) {
    const int64_t s = batch.seq[t];
    const int64_t len = int64_t{batch.pos[t]} + 1;
    scores.resize(static_cast<size_t>(len));
    for (int64_t h = 0; h < q_heads; ++h) {
      const float* qh = q + (t * q_heads + h) * hd;
      const int64_t kv_off = (h / group) * hd;
      double mx = -INFINITY;
      for (int64_t p = 0; p < len; ++p) {
        const int64_t kp = slot(s, p) + kv_off;
        double dot = 0;
        for (int64_t i = 0; i < hd; ++i) {
          dot += double{RoundToFp16(qh[i])} * KvLoad(k_cache, dtype, kp + i);
        }
        scores[p] = dot * scale;
        mx = std::max(mx, scores[p]);
      }
      double sum = 0;
      for (int64_t p = 0; p < len; ++p) {
        scores[p] = std::exp(scores[p] - mx);
        sum += scores[p];
      }
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t p = 0; p < len; ++p) {
        const int64_t vp = slot(s, p) + kv_off;
        const double wgt = RoundToFp16(static_cast<float>(scores[p] / sum));
        for (int64_t i = 0; i < hd; ++i) {
          acc[i] += wgt * KvLoad(v_cache, dtype, vp + i);
        }
      }
      // Written only now: out may alias q, and qh is no longer needed.
      float* oh = out + (t * q_heads + h) * hd;
      for (int64_t i = 0; i < hd; ++i) oh[i] = static_cast<float>(acc[i]);
    }
  }
  return absl::OkStatus();
}

namespace {

class ReferenceBackend final : public HostBackend {
 public:
  std::string name() const override { return "reference"; }
  // Either type works here; half the memory.
  GgmlType KvCacheType() const override { return GgmlType::kF16; }

 protected:
  absl::Status EmbeddingGatherImpl(const WeightMatrix& table, int64_t row_begin,
                                   absl::Span<const int32_t> ids,
                                   float* out) override {
    return EmbeddingGatherReference(table, row_begin, ids, out);
  }
  absl::Status RmsNormImpl(const float* x, const float* weight, float* y,
                           int64_t rows, int64_t cols, float eps) override {
    return RmsNormReference(x, weight, y, rows, cols, eps);
  }
  absl::Status MatMulImpl(const WeightMatrix& w, const float* x, int64_t n,
                          float* y) override {
    return MatMulReference(w, x, n, y);
  }
  absl::Status RopeImpl(float* x, int64_t n, int64_t heads,
                        absl::Span<const int32_t> pos,
                        const RopeParams& params) override {
    return RopeReference(x, n, heads, pos, params);
  }
  absl::Status SiluMulImpl(float* gate, const float* up, int64_t n) override {
    return SiluMulReference(gate, up, n);
  }
  absl::Status AddImpl(float* x, const float* y, int64_t n) override {
    return AddReference(x, y, n);
  }
  absl::Status AddBiasImpl(float* x, const float* bias, int64_t rows,
                           int64_t cols) override {
    return AddBiasReference(x, bias, rows, cols);
  }
  absl::Status GatherRowsImpl(const float* x, int64_t cols,
                              absl::Span<const int32_t> rows,
                              float* out) override {
    return GatherRowsReference(x, cols, rows, out);
  }
  absl::Status AttentionImpl(const AttentionBatch& batch,
                             const KvCacheLayout& layout, void* k_cache,
                             void* v_cache, int64_t layer, const float* q,
                             const float* k, const float* v, int64_t q_heads,
                             float scale, float* out) override {
    return AttentionReference(batch, layout, k_cache, v_cache, layer, q, k, v,
                              q_heads, scale, out);
  }
};

}  // namespace

std::unique_ptr<Backend> MakeReferenceBackend() {
  return std::make_unique<ReferenceBackend>();
}

}  // namespace tpserve
