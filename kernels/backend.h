// The narrow interface every compute backend implements (DESIGN.md,
// Backends): the ops of a Llama layer over f32 activations and weights kept
// in their file format (quantized blocks stay packed).
//
// Pointers are in the backend's memory (host for CPU, device for CUDA).
// Shapes are checked once, by Backend (kernels/op_checks.h), for every
// backend; errors come back as Status. Ops may run
// asynchronously on the backend's stream; Synchronize() waits.
#ifndef TPSERVE_KERNELS_BACKEND_H_
#define TPSERVE_KERNELS_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/ggml_types.h"

namespace tpserve {

// A weight matrix [rows = output features, cols = input features], each row
// `cols` elements of `type` in ggml block layout. `row_stride` is the byte
// distance between rows: larger than the packed row when the matrix is a
// column slice of a bigger one (tensor parallelism slices whole blocks).
// Invariant: cols % block_size(type) == 0 and data is at least 2-byte
// aligned (GGUF block sizes are even).
struct WeightMatrix {
  GgmlType type = GgmlType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  const uint8_t* data = nullptr;
  size_t row_stride = 0;
};

// Rotary position embedding of one head layout, with the parameters of
// ggml's rope_ext so every scaling a model file can ask for is one op:
// pair i of a head turns by pos * f_i, where
//   b_i = theta^(-2i / rope_dim) / freq_factors[i]   (extrapolated)
//   f_i = b_i * (freq_scale * (1 - r_i) + r_i),      r_i = ext_factor *
//         ramp_i (YaRN: 1 for fast-rotating pairs, 0 for slow ones, a linear
//         ramp between the correction dims of beta_fast and beta_slow)
// and both its cosine and sine are multiplied by RopeMagnitude (attn_factor,
// times 1 + 0.1 ln(1 / freq_scale) when YaRN mixes). Linear scaling is
// freq_scale = 1/factor; Llama 3 scaling is freq_factors (GGUF
// rope_freqs.weight, or computed from a Hugging Face config).
struct RopeParams {
  int64_t head_dim = 0;
  int64_t rope_dim = 0;  // Leading dims rotated (<= head_dim).
  double theta = 10000.0;
  // kNormal: pairs (2i, 2i+1) rotate together (GGUF llama order).
  // kNeox: pairs (i, i + rope_dim/2) (Hugging Face rotate_half order).
  bool neox = false;
  double freq_scale = 1.0;   // 1 / (linear or YaRN factor).
  double ext_factor = 0.0;   // YaRN extrapolation mix; 0 = off.
  double attn_factor = 1.0;  // Magnitude of cos and sin.
  double beta_fast = 32.0;   // YaRN correction dims (rotations over the
  double beta_slow = 1.0;    // original context).
  int64_t original_max_positions = 0;  // YaRN's original context (> 0 there).
  // Empty, or rope_dim / 2 positive divisors of the base frequencies.
  std::vector<float> freq_factors;
};

// The paged KV cache of one rank: for each layer, `num_blocks` blocks of
// `block_size` token slots, each slot holding K and V for `kv_heads` heads
// of `head_dim` elements of `dtype`. Sequences own blocks through block
// tables (the coordinator's), so memory is not reserved per sequence up
// front. Element [layer][block][slot][head][dim] of the K (or V) buffer.
struct KvCacheLayout {
  int64_t layers = 0;
  int64_t num_blocks = 0;
  int64_t block_size = 16;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  // kF16 (IEEE half bits, what llama.cpp and GPU servers keep) or kF32
  // (holding fp16-rounded values): Backend::KvCacheType.
  GgmlType dtype = GgmlType::kF32;
  // Elements of one K (or V) block of one layer.
  int64_t BlockElements() const { return block_size * kv_heads * head_dim; }
  int64_t ElementBytes() const { return dtype == GgmlType::kF16 ? 2 : 4; }
  // Bytes of the whole K (or V) buffer, every layer.
  int64_t CacheBytes() const {
    return layers * num_blocks * BlockElements() * ElementBytes();
  }
};

// One forward step's attention work for a batch mixing prefill and decode:
// `n_tokens` query tokens; token t belongs to sequence seq[t] at position
// pos[t]; sequence s's cache blocks are block_table[block_offsets[s] ..
// block_offsets[s + 1]). Each token attends causally to positions 0..pos[t]
// of its own sequence (which includes tokens of this same step).
struct AttentionBatch {
  int64_t n_tokens = 0;
  absl::Span<const int32_t> seq;
  absl::Span<const int32_t> pos;
  absl::Span<const int32_t> block_table;
  absl::Span<const int32_t> block_offsets;  // n_seqs + 1 entries.
  // Per sequence (n_seqs entries) or empty (all zero): its prompt length.
  // Only the order of float operations depends on it (the CPU backend
  // follows llama.cpp, which attends from a batched prompt's tokens and
  // from single generated tokens through different f16 matmul paths);
  // making it a property of the position, not of how a step was
  // composed, keeps results the same under chunking and preemption.
  absl::Span<const int32_t> prompt_len;
};

// The ops are public non-virtual methods that check their arguments once,
// for every backend (kernels/op_checks.h: InvalidArgument for bad shapes,
// sizes and null pointers), and then call the backend's ...Impl. An Impl
// sees only arguments that passed those checks, and is not called when
// there is no work (n == 0, rows == 0, no ids or tokens).
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // The element type this backend keeps its KV cache in
  // (KvCacheLayout::dtype); Attention refuses any other.
  virtual GgmlType KvCacheType() const { return GgmlType::kF32; }

  // Memory in the backend's address space (host memory for CPU).
  virtual absl::StatusOr<float*> AllocFloats(size_t count) = 0;
  virtual void Free(float* p) = 0;
  // Makes weights usable by this backend (CPU: returns them as they are;
  // GPU: copies to device memory, owned by the backend).
  virtual absl::StatusOr<WeightMatrix> UploadWeights(const WeightMatrix& w) = 0;
  virtual absl::Status CopyToHost(const float* src, float* dst, size_t n) = 0;
  virtual absl::Status CopyFromHost(const float* src, float* dst, size_t n) = 0;
  virtual absl::Status Synchronize() = 0;

  // out[i, :] = table[ids[i], :] dequantized to f32 ([ids.size(), cols]).
  // Ids outside [row_begin, row_begin + table.rows) give zero rows: with a
  // vocabulary-parallel table each rank fills its own rows and an
  // all-reduce completes the embedding.
  absl::Status EmbeddingGather(const WeightMatrix& table, int64_t row_begin,
                               absl::Span<const int32_t> ids, float* out);

  // y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight; y may alias x.
  absl::Status RmsNorm(const float* x, const float* weight, float* y,
                       int64_t rows, int64_t cols, float eps);

  // y[n, w.rows] = x[n, w.cols] * w^T.
  absl::Status MatMul(const WeightMatrix& w, const float* x, int64_t n,
                      float* y);

  // Rotates x [n, heads, head_dim] in place, token i at position pos[i].
  absl::Status Rope(float* x, int64_t n, int64_t heads,
                    absl::Span<const int32_t> pos, const RopeParams& params);

  // gate[i] = silu(gate[i]) * up[i] for i < n.
  absl::Status SiluMul(float* gate, const float* up, int64_t n);

  // x[i] += y[i] for i < n.
  absl::Status Add(float* x, const float* y, int64_t n);

  // x[r, c] += bias[c] for r < rows, c < cols (Qwen2's Q/K/V biases).
  absl::Status AddBias(float* x, const float* bias, int64_t rows, int64_t cols);

  // out[i, :] = x[rows[i], :] for i < rows.size(), rows of `cols` floats
  // (the logit rows of a step, picked on the device). `rows` are host
  // indices, each >= 0 (checked); that each is below the number of rows of
  // x is the caller's contract (x carries no shape). out must not overlap x.
  absl::Status GatherRows(const float* x, int64_t cols,
                          absl::Span<const int32_t> rows, float* out);

  // Writes k, v [n_tokens, kv_heads, head_dim] of `layer` into their cache
  // slots, then out[t] = softmax(q[t] K^T * scale) V over the sequence's
  // positions 0..pos[t]; q and out are [n_tokens, q_heads, head_dim] with
  // q_heads a multiple of kv_heads (grouped-query attention).
  // Precision, as llama.cpp's f16 KV cache: the cache holds k and v rounded
  // to fp16 (layout.dtype kF16, or fp16 values in f32 elements for kF32),
  // q meets K as fp16, and the softmax weights
  // are rounded to fp16 before they weight V (a backend that normalizes at
  // the end, as an online softmax does, differs by <= 2^-12 |v| there).
  absl::Status Attention(const AttentionBatch& batch,
                         const KvCacheLayout& layout, void* k_cache,
                         void* v_cache, int64_t layer, const float* q,
                         const float* k, const float* v, int64_t q_heads,
                         float scale, float* out);

 protected:
  // The backends' implementations of the ops above, called with checked
  // arguments and work to do (see the class comment).
  virtual absl::Status EmbeddingGatherImpl(const WeightMatrix& table,
                                           int64_t row_begin,
                                           absl::Span<const int32_t> ids,
                                           float* out) = 0;
  virtual absl::Status RmsNormImpl(const float* x, const float* weight,
                                   float* y, int64_t rows, int64_t cols,
                                   float eps) = 0;
  virtual absl::Status MatMulImpl(const WeightMatrix& w, const float* x,
                                  int64_t n, float* y) = 0;
  virtual absl::Status RopeImpl(float* x, int64_t n, int64_t heads,
                                absl::Span<const int32_t> pos,
                                const RopeParams& params) = 0;
  virtual absl::Status SiluMulImpl(float* gate, const float* up, int64_t n) = 0;
  virtual absl::Status AddImpl(float* x, const float* y, int64_t n) = 0;
  virtual absl::Status AddBiasImpl(float* x, const float* bias, int64_t rows,
                                   int64_t cols) = 0;
  virtual absl::Status GatherRowsImpl(const float* x, int64_t cols,
                                      absl::Span<const int32_t> rows,
                                      float* out) = 0;
  virtual absl::Status AttentionImpl(const AttentionBatch& batch,
                                     const KvCacheLayout& layout, void* k_cache,
                                     void* v_cache, int64_t layer,
                                     const float* q, const float* k,
                                     const float* v, int64_t q_heads,
                                     float scale, float* out) = 0;
};

}  // namespace tpserve

#endif  // TPSERVE_KERNELS_BACKEND_H_
