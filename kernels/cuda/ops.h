// Launchers of the CUDA backend's kernels, one kernel (or one kernel
// family) per .cu file next to its launcher. Plain C++ so the backend (.cc)
// includes it without nvcc. Every launcher checks its shapes, runs on the
// given stream, checks the launch, and returns; none synchronizes.
//
// All pointers are device memory. A WeightMatrix here has device `data`
// (CudaBackend::UploadWeights makes those, rows padded to 16 bytes).
#ifndef TPSERVE_KERNELS_CUDA_OPS_H_
#define TPSERVE_KERNELS_CUDA_OPS_H_

#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/backend.h"

namespace tpserve::cuda {

// ---- embedding.cu
// out[i, :] = table[ids[i] - row_begin, :] dequantized (zeros when outside
// the table's rows), for i < n. Bit-exact with DequantizeRow.
absl::Status EmbeddingGather(const WeightMatrix& table, int64_t row_begin,
                             const int32_t* ids, int64_t n, float* out,
                             cudaStream_t stream);

// ---- gather_rows.cu
// out[i, :] = x[rows[i], :] for i < n, rows of `cols` floats; `rows` is a
// device array of n indices, each in [0, rows of x) (the caller's).
absl::Status GatherRows(const float* x, int64_t cols, const int32_t* rows,
                        int64_t n, float* out, cudaStream_t stream);

// ---- dequant_host.cu
// Row `row` of `w` decoded on the CPU by the kernels' own decoders
// (dequant.cuh, host instantiation) into out[0..w.cols): lets tests check
// the device decoders against DequantizeRow without a GPU. `w.data` is host
// memory here, its rows 16-byte aligned.
absl::Status DequantizeRowWithDeviceDecoders(const WeightMatrix& w, int64_t row,
                                             float* out);

// ---- matvec.cu
// y[i, r] = sum_c w[r, c] * x[i, c] for i < n (y is [n, w.rows]): weights
// decoded in registers from their packed blocks, activations in f32, f32
// accumulation. Reads the weights once per 8 activation rows, so it is the
// decode path (small n); larger n loops over groups of 8.
absl::Status MatVec(const WeightMatrix& w, const float* x, int64_t n, float* y,
                    cudaStream_t stream);

// ---- dequant_bf16.cu
// out[r - row0, c] = bf16(w[r, c]) for r in [row0, row0 + rows): the
// weights of a GEMM tile, decoded once for cuBLAS. `out` is rows x cols
// bf16 values (uint16 bits), row-major and packed.
absl::Status DequantizeToBf16(const WeightMatrix& w, int64_t row0, int64_t rows,
                              uint16_t* out, cudaStream_t stream);

// ---- convert.cu
// out[i] = bf16(x[i]) (round to nearest even) for i < n.
absl::Status ConvertF32ToBf16(const float* x, int64_t n, uint16_t* out,
                              cudaStream_t stream);

// ---- rope.cu
// Rotates x [n, heads, head_dim] in place; token t at position pos[t]; pair
// i of [0, rope_dim / 2) turns by pos * freq[i] (angles and their sine and
// cosine in double: positions reach 1e5), and both are scaled by `mscale`
// (RopeMagnitude: YaRN's attention temperature, 1 otherwise).
absl::Status Rope(float* x, int64_t n, int64_t heads, const int32_t* pos,
                  const double* freq, float mscale, int64_t head_dim,
                  int64_t rope_dim, bool neox, cudaStream_t stream);

// ---- silu_mul.cu
// gate[i] = silu(gate[i]) * up[i] for i < n.
absl::Status SiluMul(float* gate, const float* up, int64_t n,
                     cudaStream_t stream);

// ---- add.cu
// x[i] += y[i] for i < n.
absl::Status Add(float* x, const float* y, int64_t n, cudaStream_t stream);

// x[r, c] += bias[c] for r < rows, c < cols.
absl::Status AddBias(float* x, const float* bias, int64_t rows, int64_t cols,
                     cudaStream_t stream);

// ---- Paged attention (kv_write.cu, attention.cu, attention_combine.cu) --

// The batch's metadata on the device (AttentionBatch, uploaded) and the
// cache of one rank (KvCacheLayout; k_cache/v_cache hold every layer).
struct PagedBatch {
  int64_t n_tokens = 0;
  const int32_t* seq = nullptr;            // [n_tokens]
  const int32_t* pos = nullptr;            // [n_tokens]
  const int32_t* block_table = nullptr;    // Blocks of every sequence.
  const int32_t* block_offsets = nullptr;  // [n_seqs + 1]
  float* k_cache = nullptr;
  float* v_cache = nullptr;
  int64_t layer = 0;
  int64_t num_blocks = 0;
  int64_t block_size = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
};

// Writes k, v [n_tokens, kv_heads, head_dim] into their cache slots.
absl::Status KvWrite(const PagedBatch& b, const float* k, const float* v,
                     cudaStream_t stream);

// A group of query rows attending over one KV head: tokens [t0, t0 + nt)
// (consecutive, all of one sequence) times query heads [h0, h0 + nh) of
// the KV head's group, over cache positions [0, len) (len = the largest
// pos + 1 among the tokens; each row masks positions past its own pos).
// Built on the host (CudaBackend::Attention) and uploaded as 5 int32s.
struct AttentionTile {
  int32_t t0, nt, h0, nh, len;
};
static_assert(sizeof(AttentionTile) == 5 * sizeof(int32_t), "packed");

// Query rows per tile for a head_dim: the most (up to 32) whose shared
// memory (query rows, one K/V chunk, scores, output accumulators) fits in
// `max_smem_bytes`; 0 when not even one row fits.
int AttentionMaxRows(int64_t head_dim, int max_smem_bytes);

// Shared memory AttentionPartial uses for tiles of `rows` query rows.
size_t AttentionSmemBytes(int64_t head_dim, int rows);

// Positions per K/V chunk the kernel loads into shared memory at a time;
// split lengths are multiples of it.
inline constexpr int kAttentionChunk = 32;

// One CTA per (tile, KV head, split): online-softmax attention of the
// tile's rows over positions [split * split_len, (split + 1) * split_len)
// of the tile's sequence. With splits == 1 it writes `out` directly
// (normalized); otherwise unnormalized partial outputs and their (max,
// sum) go to part_o [n_tokens * q_heads * splits * head_dim] and part_ml
// [n_tokens * q_heads * splits * 2] for AttentionCombine (flash-decoding).
// `q` may alias `out`: every row's q is read before its out is written,
// by the same CTA (splits == 1) or by an earlier kernel (splits > 1).
absl::Status AttentionPartial(const PagedBatch& b, const AttentionTile* tiles,
                              int64_t n_tiles, const float* q, int64_t q_heads,
                              float scale, int64_t split_len, int64_t splits,
                              int max_rows, float* out, float* part_o,
                              float* part_ml, cudaStream_t stream);

// out[t, h, :] = the softmax-weighted merge of the splits' partials.
absl::Status AttentionCombine(const float* part_o, const float* part_ml,
                              int64_t n_tokens, int64_t q_heads,
                              int64_t head_dim, int64_t splits, float* out,
                              cudaStream_t stream);

// Raises the dynamic shared-memory limit of the attention kernel to
// `bytes` (the device's opt-in maximum); called once per backend.
absl::Status ConfigureAttention(int bytes);

}  // namespace tpserve::cuda

#endif  // TPSERVE_KERNELS_CUDA_OPS_H_
