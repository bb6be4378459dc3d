// Row gather out[i, :] = x[rows[i], :]: the logit rows of a step picked on
// the device. One block per output row, a block-stride loop over columns;
// int64 offsets (rows * cols exceeds 2^31 for a prompt's logits).
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/ops.h"

namespace tpserve::cuda {
namespace {

__global__ void GatherRowsKernel(const float* __restrict__ x, int64_t cols,
                                 const int32_t* __restrict__ rows,
                                 float* __restrict__ out) {
  const int64_t i = blockIdx.x;
  const float* src = x + static_cast<int64_t>(rows[i]) * cols;
  float* dst = out + i * cols;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) dst[c] = src[c];
}

}  // namespace

absl::Status GatherRows(const float* x, int64_t cols, const int32_t* rows,
                        int64_t n, float* out, cudaStream_t stream) {
  if (cols <= 0 || n < 0 ||
      (n > 0 && (x == nullptr || rows == nullptr || out == nullptr))) {
    return absl::InvalidArgumentError("cuda::GatherRows: bad arguments");
  }
  if (n > 0x7fffffff) {
    return absl::InvalidArgumentError("cuda::GatherRows: too many rows");
  }
  if (n == 0) return absl::OkStatus();
  constexpr int kThreads = 256;
  GatherRowsKernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(
      x, cols, rows, out);
  return CudaStatus(cudaGetLastError(), "GatherRowsKernel launch");
}

}  // namespace tpserve::cuda
