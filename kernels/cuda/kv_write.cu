// Writes a step's new keys and values into their paged-cache slots, before
// attention reads them (same stream: tokens of one step see each other).
// One CTA per token; threads copy the token's kv_heads * head_dim floats,
// rounded to fp16 (the cache holds fp16 values: Backend::Attention).
#include <cuda_fp16.h>

#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/ops.h"

namespace tpserve::cuda {
namespace {

__global__ void KvWriteKernel(PagedBatch b, const float* __restrict__ k,
                              const float* __restrict__ v) {
  const int64_t t = blockIdx.x;
  const int64_t slot_floats = b.kv_heads * b.head_dim;
  const int64_t p = b.pos[t];
  const int64_t block =
      b.block_table[b.block_offsets[b.seq[t]] + p / b.block_size];
  // size_t: a cache of many layers holds more than 2^31 floats.
  const size_t dst =
      ((static_cast<size_t>(b.layer) * b.num_blocks + block) * b.block_size +
       p % b.block_size) *
      slot_floats;
  const size_t src = static_cast<size_t>(t) * slot_floats;
  for (int64_t i = threadIdx.x; i < slot_floats; i += blockDim.x) {
    b.k_cache[dst + i] = __half2float(__float2half_rn(k[src + i]));
    b.v_cache[dst + i] = __half2float(__float2half_rn(v[src + i]));
  }
}

}  // namespace

absl::Status KvWrite(const PagedBatch& b, const float* k, const float* v,
                     cudaStream_t stream) {
  if (b.n_tokens < 0 || b.n_tokens > INT32_MAX || b.kv_heads <= 0 ||
      b.head_dim <= 0 || b.block_size <= 0) {
    return absl::InvalidArgumentError("cuda::KvWrite: bad shape");
  }
  if (b.n_tokens == 0) return absl::OkStatus();
  if (k == nullptr || v == nullptr || b.k_cache == nullptr ||
      b.v_cache == nullptr || b.seq == nullptr || b.pos == nullptr ||
      b.block_table == nullptr || b.block_offsets == nullptr) {
    return absl::InvalidArgumentError("cuda::KvWrite: null pointer");
  }
  KvWriteKernel<<<static_cast<unsigned>(b.n_tokens), 128, 0, stream>>>(b, k, v);
  return CudaStatus(cudaGetLastError(), "KvWriteKernel launch");
}

}  // namespace tpserve::cuda
