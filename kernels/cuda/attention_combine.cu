// Merges the per-split partial results of AttentionPartial (flash-decoding's
// second pass): for each (token, head) row, with M = max over splits of the
// split maxima, out = sum_s e^(m_s - M) o_s / sum_s e^(m_s - M) l_s. Splits
// that saw no position of the row (m_s = -inf) weigh 0. One CTA per row.
#include <cmath>

#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/ops.h"

namespace tpserve::cuda {
namespace {

__global__ void AttentionCombineKernel(const float* __restrict__ part_o,
                                       const float* __restrict__ part_ml,
                                       int64_t head_dim, int64_t splits,
                                       float* __restrict__ out) {
  const size_t row = blockIdx.x;
  const float* ml = part_ml + row * splits * 2;
  float m = -INFINITY;
  for (int64_t s = 0; s < splits; ++s) m = fmaxf(m, ml[2 * s]);
  float l = 0.0f;
  for (int64_t s = 0; s < splits; ++s) {
    if (ml[2 * s] != -INFINITY) l += expf(ml[2 * s] - m) * ml[2 * s + 1];
  }
  const float* o = part_o + row * splits * head_dim;
  for (int64_t i = threadIdx.x; i < head_dim; i += blockDim.x) {
    float acc = 0.0f;
    for (int64_t s = 0; s < splits; ++s) {
      if (ml[2 * s] != -INFINITY) {
        acc += expf(ml[2 * s] - m) * o[s * head_dim + i];
      }
    }
    out[row * head_dim + i] = acc / l;
  }
}

}  // namespace

absl::Status AttentionCombine(const float* part_o, const float* part_ml,
                              int64_t n_tokens, int64_t q_heads,
                              int64_t head_dim, int64_t splits, float* out,
                              cudaStream_t stream) {
  const int64_t rows = n_tokens * q_heads;
  if (n_tokens < 0 || q_heads <= 0 || head_dim <= 0 || splits < 1 ||
      rows > INT32_MAX) {
    return absl::InvalidArgumentError("cuda::AttentionCombine: bad shape");
  }
  if (rows == 0) return absl::OkStatus();
  if (part_o == nullptr || part_ml == nullptr || out == nullptr) {
    return absl::InvalidArgumentError("cuda::AttentionCombine: null pointer");
  }
  AttentionCombineKernel<<<static_cast<unsigned>(rows), 128, 0, stream>>>(
      part_o, part_ml, head_dim, splits, out);
  return CudaStatus(cudaGetLastError(), "AttentionCombineKernel launch");
}

}  // namespace tpserve::cuda
