// The argument checks of the Backend ops (kernels/backend.h), in one place:
// Backend's public op methods run them before they call a backend's
// implementation, and the free reference functions (kernels/reference_ops.h)
// run the same ones, so every backend refuses exactly the same inputs.
// Bad shapes, sizes and null pointers are InvalidArgument; weight types no
// op decodes are Unimplemented.
#ifndef TPSERVE_KERNELS_OP_CHECKS_H_
#define TPSERVE_KERNELS_OP_CHECKS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "kernels/backend.h"

namespace tpserve {

// Whether MatMul / EmbeddingGather accept weights of `type`: F32, F16,
// BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K (what DequantizeRow
// decodes). Backends may be faster on some of them only.
bool IsSupportedWeightType(GgmlType type);

// OK when `w` is usable: supported type, rows >= 0, cols > 0 and a whole
// number of blocks, row_stride >= the packed row size, data non-null unless
// rows == 0.
absl::Status ValidateWeightMatrix(const WeightMatrix& w);

// OK when head_dim > 0, rope_dim even and in (0, head_dim], theta > 0,
// freq_scale > 0, ext_factor in [0, 1], attn_factor > 0 (all finite),
// original_max_positions > 0 when ext_factor != 0, and freq_factors empty or
// rope_dim / 2 positive finite numbers.
absl::Status ValidateRopeParams(const RopeParams& p);

// One per op, with the op's arguments (Backend documents each op).

// A valid table; out non-null unless ids is empty.
absl::Status ValidateEmbeddingGather(const WeightMatrix& table,
                                     absl::Span<const int32_t> ids,
                                     const float* out);
// rows >= 0, cols > 0, eps > 0; pointers non-null when rows > 0.
absl::Status ValidateRmsNorm(const float* x, const float* weight,
                             const float* y, int64_t rows, int64_t cols,
                             float eps);
// A valid matrix, n >= 0; x and y non-null when n > 0 and w.rows > 0.
absl::Status ValidateMatMul(const WeightMatrix& w, const float* x, int64_t n,
                            const float* y);
// ValidateRopeParams, n >= 0, heads > 0, n positions; x non-null if n > 0.
absl::Status ValidateRope(const float* x, int64_t n, int64_t heads,
                          absl::Span<const int32_t> pos,
                          const RopeParams& params);
// n >= 0; pointers non-null when n > 0.
absl::Status ValidateSiluMul(const float* gate, const float* up, int64_t n);
absl::Status ValidateAdd(const float* x, const float* y, int64_t n);
// rows >= 0, cols > 0; pointers non-null when rows > 0.
absl::Status ValidateAddBias(const float* x, const float* bias, int64_t rows,
                             int64_t cols);
// cols > 0, every rows[i] >= 0; pointers non-null unless rows is empty.
// (rows[i] below the row count of x is the caller's contract: x carries no
// shape.)
absl::Status ValidateGatherRows(const float* x, int64_t cols,
                                absl::Span<const int32_t> rows,
                                const float* out);

// OK when the Attention arguments are consistent (see Backend::Attention):
// layout fields positive, dtype F32 or F16, 0 <= layer < layers, q_heads a
// positive multiple of kv_heads, seq/pos spans of n_tokens entries,
// block_offsets non-decreasing within block_table, prompt_len empty or one
// per sequence, every block_table entry in [0, num_blocks), and for every
// token pos >= 0 with position pos inside its sequence's table. Pointers
// must be non-null when n_tokens > 0.
absl::Status ValidateAttention(const AttentionBatch& batch,
                               const KvCacheLayout& layout, const void* k_cache,
                               const void* v_cache, int64_t layer,
                               const float* q, const float* k, const float* v,
                               int64_t q_heads, const float* out);

}  // namespace tpserve

#endif  // TPSERVE_KERNELS_OP_CHECKS_H_
