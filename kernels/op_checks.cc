#include "kernels/op_checks.h"

#include <cmath>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/dequantize.h"

namespace tpserve {

bool IsSupportedWeightType(GgmlType type) { return CanDequantize(type); }

absl::Status ValidateWeightMatrix(const WeightMatrix& w) {
  if (!IsSupportedWeightType(w.type)) {
    return absl::UnimplementedError(absl::StrCat(
        "weights of type ", GgmlTypeName(w.type), " are not supported"));
  }
  if (w.rows < 0 || w.cols <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight shape ", w.rows, " x ", w.cols));
  }
  absl::StatusOr<uint64_t> row_bytes =
      GgmlRowBytes(w.type, static_cast<uint64_t>(w.cols));
  if (!row_bytes.ok()) return row_bytes.status();
  if (w.row_stride < *row_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("row_stride ", w.row_stride,
                                                   " < packed row of ",
                                                   *row_bytes, " bytes"));
  }
  if (w.rows > 0 && w.data == nullptr) {
    return absl::InvalidArgumentError("null weight data");
  }
  return absl::OkStatus();
}

absl::Status ValidateAttention(const AttentionBatch& batch,
                               const KvCacheLayout& layout, const void* k_cache,
                               const void* v_cache, int64_t layer,
                               const float* q, const float* k, const float* v,
                               int64_t q_heads, const float* out) {
  if (layout.layers <= 0 || layout.num_blocks <= 0 || layout.block_size <= 0 ||
      layout.kv_heads <= 0 || layout.head_dim <= 0) {
    return absl::InvalidArgumentError("Attention: bad KV cache layout");
  }
  if (layout.dtype != GgmlType::kF32 && layout.dtype != GgmlType::kF16) {
    return absl::InvalidArgumentError(absl::StrCat("Attention: KV cache type ",
                                                   GgmlTypeName(layout.dtype),
                                                   " (expected F32 or F16)"));
  }
  if (layer < 0 || layer >= layout.layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("Attention: layer ", layer, " of ", layout.layers));
  }
  if (q_heads <= 0 || q_heads % layout.kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Attention: q_heads ", q_heads,
                     " is not a multiple of kv_heads ", layout.kv_heads));
  }
  const int64_t n = batch.n_tokens;
  if (n < 0 || batch.seq.size() != static_cast<size_t>(n) ||
      batch.pos.size() != static_cast<size_t>(n)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Attention: n_tokens ", n, " but ", batch.seq.size(),
                     " seq and ", batch.pos.size(), " pos entries"));
  }
  if (n == 0) return absl::OkStatus();
  if (k_cache == nullptr || v_cache == nullptr || q == nullptr ||
      k == nullptr || v == nullptr || out == nullptr) {
    return absl::InvalidArgumentError("Attention: null pointer");
  }
  if (batch.block_offsets.empty()) {
    return absl::InvalidArgumentError("Attention: empty block_offsets");
  }
  const int64_t n_seqs = static_cast<int64_t>(batch.block_offsets.size()) - 1;
  if (!batch.prompt_len.empty() &&
      static_cast<int64_t>(batch.prompt_len.size()) != n_seqs) {
    return absl::InvalidArgumentError(
        absl::StrCat("Attention: ", batch.prompt_len.size(),
                     " prompt lengths for ", n_seqs, " sequences"));
  }
  const int64_t table_size = static_cast<int64_t>(batch.block_table.size());
  for (int64_t s = 0; s <= n_seqs; ++s) {
    const int64_t o = batch.block_offsets[s];
    if (o < 0 || o > table_size || (s > 0 && o < batch.block_offsets[s - 1])) {
      return absl::InvalidArgumentError(
          absl::StrCat("Attention: block_offsets[", s, "] = ", o,
                       " out of order or outside the table of ", table_size));
    }
  }
  for (int64_t i = 0; i < table_size; ++i) {
    if (batch.block_table[i] < 0 || batch.block_table[i] >= layout.num_blocks) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Attention: block_table[", i, "] = ", batch.block_table[i],
          " is not a block id in [0, ", layout.num_blocks, ")"));
    }
  }
  for (int64_t t = 0; t < n; ++t) {
    const int64_t s = batch.seq[t];
    const int64_t p = batch.pos[t];
    if (s < 0 || s >= n_seqs) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Attention: token ", t, " has sequence ", s, " of ", n_seqs));
    }
    const int64_t blocks = batch.block_offsets[s + 1] - batch.block_offsets[s];
    if (p < 0 || p / layout.block_size >= blocks) {
      return absl::InvalidArgumentError(
          absl::StrCat("Attention: token ", t, " at position ", p,
                       " is outside the ", blocks, " blocks of sequence ", s));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateRopeParams(const RopeParams& p) {
  if (p.head_dim <= 0 || p.rope_dim <= 0 || p.rope_dim > p.head_dim ||
      p.rope_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Rope: head_dim ", p.head_dim, ", rope_dim ", p.rope_dim,
                     " (rope_dim must be even and in (0, head_dim])"));
  }
  auto positive = [](double v) { return std::isfinite(v) && v > 0; };
  if (!positive(p.theta) || !positive(p.freq_scale) ||
      !positive(p.attn_factor) || !std::isfinite(p.beta_fast) ||
      !std::isfinite(p.beta_slow) ||
      !(p.ext_factor >= 0 && p.ext_factor <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Rope: theta ", p.theta, ", freq_scale ", p.freq_scale,
        ", attn_factor ", p.attn_factor, " must be finite and > 0, ext_factor ",
        p.ext_factor, " in [0, 1], betas finite"));
  }
  if (p.ext_factor != 0 && p.original_max_positions <= 0) {
    return absl::InvalidArgumentError(
        "Rope: YaRN (ext_factor != 0) needs original_max_positions > 0");
  }
  if (!p.freq_factors.empty()) {
    if (static_cast<int64_t>(p.freq_factors.size()) != p.rope_dim / 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Rope: ", p.freq_factors.size(), " frequency factors for rope_dim ",
          p.rope_dim, " (need rope_dim / 2)"));
    }
    for (float f : p.freq_factors) {
      if (!positive(f)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "Rope: frequency factor ", f, " must be finite and > 0"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateAddBias(const float* x, const float* bias, int64_t rows,
                             int64_t cols) {
  if (rows < 0 || cols <= 0 ||
      (rows > 0 && (x == nullptr || bias == nullptr))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "AddBias: rows ", rows, ", cols ", cols, " (or a null pointer)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateEmbeddingGather(const WeightMatrix& table,
                                     absl::Span<const int32_t> ids,
                                     const float* out) {
  if (absl::Status s = ValidateWeightMatrix(table); !s.ok()) return s;
  if (!ids.empty() && out == nullptr) {
    return absl::InvalidArgumentError("EmbeddingGather: null output");
  }
  return absl::OkStatus();
}

absl::Status ValidateRmsNorm(const float* x, const float* weight,
                             const float* y, int64_t rows, int64_t cols,
                             float eps) {
  if (rows < 0 || cols <= 0 ||
      (rows > 0 && (x == nullptr || y == nullptr || weight == nullptr))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "RmsNorm: rows ", rows, ", cols ", cols, " (or a null pointer)"));
  }
  if (!(eps > 0)) return absl::InvalidArgumentError("RmsNorm: eps must be > 0");
  return absl::OkStatus();
}

absl::Status ValidateMatMul(const WeightMatrix& w, const float* x, int64_t n,
                            const float* y) {
  if (absl::Status s = ValidateWeightMatrix(w); !s.ok()) return s;
  if (n < 0) return absl::InvalidArgumentError("MatMul: n < 0");
  if (n > 0 && w.rows > 0 && (x == nullptr || y == nullptr)) {
    return absl::InvalidArgumentError("MatMul: null activations");
  }
  return absl::OkStatus();
}

absl::Status ValidateRope(const float* x, int64_t n, int64_t heads,
                          absl::Span<const int32_t> pos,
                          const RopeParams& params) {
  if (absl::Status s = ValidateRopeParams(params); !s.ok()) return s;
  if (n < 0 || heads <= 0 || pos.size() != static_cast<size_t>(n)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Rope: n ", n, ", heads ", heads, ", ", pos.size(), " positions"));
  }
  if (n > 0 && x == nullptr) return absl::InvalidArgumentError("Rope: null x");
  return absl::OkStatus();
}

absl::Status ValidateSiluMul(const float* gate, const float* up, int64_t n) {
  if (n < 0 || (n > 0 && (gate == nullptr || up == nullptr))) {
    return absl::InvalidArgumentError("SiluMul: bad arguments");
  }
  return absl::OkStatus();
}

absl::Status ValidateAdd(const float* x, const float* y, int64_t n) {
  if (n < 0 || (n > 0 && (x == nullptr || y == nullptr))) {
    return absl::InvalidArgumentError("Add: bad arguments");
  }
  return absl::OkStatus();
}

absl::Status ValidateGatherRows(const float* x, int64_t cols,
                                absl::Span<const int32_t> rows,
                                const float* out) {
  if (cols <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("GatherRows: cols ", cols, " (must be > 0)"));
  }
  if (rows.empty()) return absl::OkStatus();
  if (x == nullptr || out == nullptr) {
    return absl::InvalidArgumentError("GatherRows: null pointer");
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("GatherRows: rows[", i, "] = ", rows[i], " < 0"));
    }
  }
  return absl::OkStatus();
}

}  // namespace tpserve
