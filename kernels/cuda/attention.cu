// Paged attention over the KV cache, for prefill and decode alike, in the
// flash-decoding style: one CTA per (tile of query rows, KV head, split of
// the positions). A tile is up to 32 query rows that share a KV head and a
// sequence (consecutive tokens x the query heads of one GQA group), so the
// K/V chunk a CTA loads into shared memory serves all of them: a decode
// token's group of heads, or a block of prompt tokens. Splitting positions
// across CTAs keeps the GPU busy when there are few rows and long contexts
// (decode); AttentionCombine (attention_combine.cu) merges the splits.
//
// Per chunk of kAttentionChunk positions: load K and V (K rows padded by
// one float so the score loop's column reads hit distinct banks), scores
// S = (q * scale) K^T with causal masking per row (position <= the row's
// pos), an online-softmax update of the row max and sum (one warp per row,
// one lane per position), then O = O * alpha + P V. All f32; expf, not
// __expf, since the CPU reference is compared within 1e-5.
//
// Hazards: every row's query is read into shared memory before any output
// is written, and only the CTA that reads a row writes it (splits == 1), so
// `out` may alias `q`. A row whose positions all lie past a split has max
// -inf: its softmax terms and alpha are forced to 0, never exp(-inf + inf).
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>

#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/ops.h"

namespace tpserve::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kChunk = kAttentionChunk;
static_assert(kChunk == 32, "the softmax step maps one lane per position");

__device__ __forceinline__ float WarpMax(float v) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__global__ void __launch_bounds__(kThreads)
    AttentionKernel(PagedBatch b, const AttentionTile* __restrict__ tiles,
                    const float* q, int64_t q_heads, int64_t group, float scale,
                    int64_t split_len, int64_t splits, float* out,
                    float* __restrict__ part_o, float* __restrict__ part_ml) {
  extern __shared__ float smem[];
  const AttentionTile tile = tiles[blockIdx.x];
  const int64_t kvh = blockIdx.y, split = blockIdx.z;
  const int64_t hd = b.head_dim;
  const int rows = tile.nt * tile.nh;
  float* qs = smem;                    // [rows][hd], pre-scaled.
  float* ks = qs + rows * hd;          // [kChunk][hd + 1]
  float* vs = ks + kChunk * (hd + 1);  // [kChunk][hd]
  float* sc = vs + kChunk * hd;        // [rows][kChunk]
  float* o = sc + rows * kChunk;       // [rows][hd]
  float* row_max = o + rows * hd;      // [rows]
  float* row_sum = row_max + rows;     // [rows]
  float* row_alpha = row_sum + rows;   // [rows]

  // Row r: token t0 + r / nh, query head kvh * group + h0 + r % nh.
  auto q_row = [&](int r) -> size_t {
    const int64_t t = tile.t0 + r / tile.nh;
    const int64_t h = kvh * group + tile.h0 + r % tile.nh;
    return static_cast<size_t>(t * q_heads + h);
  };
  for (int idx = threadIdx.x; idx < rows * hd; idx += kThreads) {
    const int r = idx / hd;
    // q meets the fp16 keys as fp16 (Backend::Attention).
    qs[idx] =
        __half2float(__float2half_rn(q[q_row(r) * hd + idx % hd])) * scale;
    o[idx] = 0.0f;
  }
  for (int r = threadIdx.x; r < rows; r += kThreads) {
    row_max[r] = -INFINITY;
    row_sum[r] = 0.0f;
  }
  const int64_t p_begin = split * split_len;
  const int64_t p_end = std::min<int64_t>(tile.len, p_begin + split_len);
  const int32_t* table = b.block_table + b.block_offsets[b.seq[tile.t0]];
  const size_t slot_floats = static_cast<size_t>(b.kv_heads) * hd;
  // size_t: the cache of all layers exceeds 2^31 floats.
  const size_t layer_base = static_cast<size_t>(b.layer) * b.num_blocks;
  __syncthreads();

  for (int64_t kc = p_begin; kc < p_end; kc += kChunk) {
    const int cnt = static_cast<int>(std::min<int64_t>(kChunk, p_end - kc));
    for (int idx = threadIdx.x; idx < cnt * hd; idx += kThreads) {
      const int j = idx / hd;
      const int64_t i = idx % hd;
      const int64_t p = kc + j;
      const size_t off =
          ((layer_base + table[p / b.block_size]) * b.block_size +
           p % b.block_size) *
              slot_floats +
          kvh * hd + i;
      ks[j * (hd + 1) + i] = b.k_cache[off];
      vs[j * hd + i] = b.v_cache[off];
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < rows * kChunk; idx += kThreads) {
      const int r = idx / kChunk, j = idx % kChunk;
      const int64_t p = kc + j;
      float s = -INFINITY;
      if (j < cnt && p <= b.pos[tile.t0 + r / tile.nh]) {
        const float* qr = qs + r * hd;
        const float* kj = ks + j * (hd + 1);
        s = 0.0f;
        for (int64_t i = 0; i < hd; ++i) s += qr[i] * kj[i];
      }
      sc[idx] = s;
    }
    __syncthreads();
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (int r = warp; r < rows; r += kWarps) {
      const float s = sc[r * kChunk + lane];
      const float m_old = row_max[r];
      const float m_new = fmaxf(m_old, WarpMax(s));
      const float p = s == -INFINITY ? 0.0f : expf(s - m_new);
      const float alpha = m_old == -INFINITY ? 0.0f : expf(m_old - m_new);
      const float sum = WarpSum(p);
      sc[r * kChunk + lane] = p;
      if (lane == 0) {
        row_sum[r] = row_sum[r] * alpha + sum;
        row_max[r] = m_new;
        row_alpha[r] = alpha;
      }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < rows * hd; idx += kThreads) {
      const int r = idx / hd;
      const int64_t i = idx % hd;
      const float* pr = sc + r * kChunk;
      float acc = o[idx] * row_alpha[r];
      for (int j = 0; j < cnt; ++j) acc += pr[j] * vs[j * hd + i];
      o[idx] = acc;
    }
    __syncthreads();
  }

  for (int idx = threadIdx.x; idx < rows * hd; idx += kThreads) {
    const int r = idx / hd;
    const size_t row = q_row(r);
    if (splits == 1) {
      // Position 0 is in every row's range, so the sum is positive.
      out[row * hd + idx % hd] = o[idx] / row_sum[r];
    } else {
      part_o[(row * splits + split) * hd + idx % hd] = o[idx];
    }
  }
  if (splits > 1) {
    for (int r = threadIdx.x; r < rows; r += kThreads) {
      const size_t row = q_row(r);
      part_ml[(row * splits + split) * 2] = row_max[r];
      part_ml[(row * splits + split) * 2 + 1] = row_sum[r];
    }
  }
}

}  // namespace

size_t AttentionSmemBytes(int64_t head_dim, int rows) {
  const size_t hd = static_cast<size_t>(head_dim);
  const size_t floats =
      static_cast<size_t>(rows) * (2 * hd + kChunk + 3) + kChunk * (2 * hd + 1);
  return floats * sizeof(float);
}

int AttentionMaxRows(int64_t head_dim, int max_smem_bytes) {
  for (int rows = 32; rows >= 1; rows /= 2) {
    if (AttentionSmemBytes(head_dim, rows) <=
        static_cast<size_t>(max_smem_bytes)) {
      return rows;
    }
  }
  return 0;
}

absl::Status ConfigureAttention(int bytes) {
  return CudaStatus(
      cudaFuncSetAttribute(AttentionKernel,
                           cudaFuncAttributeMaxDynamicSharedMemorySize, bytes),
      "cudaFuncSetAttribute(AttentionKernel)");
}

absl::Status AttentionPartial(const PagedBatch& b, const AttentionTile* tiles,
                              int64_t n_tiles, const float* q, int64_t q_heads,
                              float scale, int64_t split_len, int64_t splits,
                              int max_rows, float* out, float* part_o,
                              float* part_ml, cudaStream_t stream) {
  if (n_tiles < 0 || n_tiles > INT32_MAX || b.kv_heads <= 0 ||
      b.kv_heads > 65535 || q_heads % b.kv_heads != 0 || splits < 1 ||
      splits > 65535 || split_len <= 0 || split_len % kChunk != 0 ||
      max_rows < 1 || max_rows > 32) {
    return absl::InvalidArgumentError("cuda::AttentionPartial: bad shape");
  }
  if (n_tiles == 0) return absl::OkStatus();
  if (tiles == nullptr || q == nullptr || out == nullptr ||
      (splits > 1 && (part_o == nullptr || part_ml == nullptr))) {
    return absl::InvalidArgumentError("cuda::AttentionPartial: null pointer");
  }
  // Every tile has at most max_rows rows (the host built them so); shared
  // memory is sized for that many.
  const size_t smem = AttentionSmemBytes(b.head_dim, max_rows);
  const dim3 grid(static_cast<unsigned>(n_tiles),
                  static_cast<unsigned>(b.kv_heads),
                  static_cast<unsigned>(splits));
  AttentionKernel<<<grid, kThreads, smem, stream>>>(
      b, tiles, q, q_heads, q_heads / b.kv_heads, scale, split_len, splits, out,
      part_o, part_ml);
  return CudaStatus(cudaGetLastError(), "AttentionKernel launch");
}

}  // namespace tpserve::cuda
