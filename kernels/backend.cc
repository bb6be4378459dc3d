#include "kernels/backend.h"

#include "kernels/op_checks.h"

namespace tpserve {

absl::Status Backend::EmbeddingGather(const WeightMatrix& table,
                                      int64_t row_begin,
                                      absl::Span<const int32_t> ids,
                                      float* out) {
  if (absl::Status s = ValidateEmbeddingGather(table, ids, out); !s.ok()) {
    return s;
  }
  if (ids.empty()) return absl::OkStatus();
  return EmbeddingGatherImpl(table, row_begin, ids, out);
}

absl::Status Backend::RmsNorm(const float* x, const float* weight, float* y,
                              int64_t rows, int64_t cols, float eps) {
  if (absl::Status s = ValidateRmsNorm(x, weight, y, rows, cols, eps);
      !s.ok()) {
    return s;
  }
  if (rows == 0) return absl::OkStatus();
  return RmsNormImpl(x, weight, y, rows, cols, eps);
}

absl::Status Backend::MatMul(const WeightMatrix& w, const float* x, int64_t n,
                             float* y) {
  if (absl::Status s = ValidateMatMul(w, x, n, y); !s.ok()) return s;
  if (n == 0 || w.rows == 0) return absl::OkStatus();
  return MatMulImpl(w, x, n, y);
}

absl::Status Backend::Rope(float* x, int64_t n, int64_t heads,
                           absl::Span<const int32_t> pos,
                           const RopeParams& params) {
  if (absl::Status s = ValidateRope(x, n, heads, pos, params); !s.ok()) {
    return s;
  }
  if (n == 0) return absl::OkStatus();
  return RopeImpl(x, n, heads, pos, params);
}

absl::Status Backend::SiluMul(float* gate, const float* up, int64_t n) {
  if (absl::Status s = ValidateSiluMul(gate, up, n); !s.ok()) return s;
  if (n == 0) return absl::OkStatus();
  return SiluMulImpl(gate, up, n);
}

absl::Status Backend::Add(float* x, const float* y, int64_t n) {
  if (absl::Status s = ValidateAdd(x, y, n); !s.ok()) return s;
  if (n == 0) return absl::OkStatus();
  return AddImpl(x, y, n);
}

absl::Status Backend::AddBias(float* x, const float* bias, int64_t rows,
                              int64_t cols) {
  if (absl::Status s = ValidateAddBias(x, bias, rows, cols); !s.ok()) return s;
  if (rows == 0) return absl::OkStatus();
  return AddBiasImpl(x, bias, rows, cols);
}

absl::Status Backend::GatherRows(const float* x, int64_t cols,
                                 absl::Span<const int32_t> rows, float* out) {
  if (absl::Status s = ValidateGatherRows(x, cols, rows, out); !s.ok()) {
    return s;
  }
  if (rows.empty()) return absl::OkStatus();
  return GatherRowsImpl(x, cols, rows, out);
}

absl::Status Backend::Attention(const AttentionBatch& batch,
                                const KvCacheLayout& layout, void* k_cache,
                                void* v_cache, int64_t layer, const float* q,
                                const float* k, const float* v, int64_t q_heads,
                                float scale, float* out) {
  if (absl::Status s = ValidateAttention(batch, layout, k_cache, v_cache, layer,
                                         q, k, v, q_heads, out);
      !s.ok()) {
    return s;
  }
  if (batch.n_tokens == 0) return absl::OkStatus();
  return AttentionImpl(batch, layout, k_cache, v_cache, layer, q, k, v, q_heads,
                       scale, out);
}

}  // namespace tpserve
