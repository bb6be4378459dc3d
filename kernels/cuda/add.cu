// Residual add x += y, element-wise. Grid-stride loop with int64 indices.
#include <algorithm>

#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/ops.h"

namespace tpserve::cuda {
namespace {

__global__ void AddKernel(float* __restrict__ x, const float* __restrict__ y,
                          int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < n; i += stride) {
    x[i] += y[i];
  }
}

}  // namespace

absl::Status Add(float* x, const float* y, int64_t n, cudaStream_t stream) {
  if (n < 0 || (n > 0 && (x == nullptr || y == nullptr))) {
    return absl::InvalidArgumentError("cuda::Add: bad arguments");
  }
  if (n == 0) return absl::OkStatus();
  constexpr int kThreads = 256;
  const int64_t blocks =
      std::min<int64_t>((n + kThreads - 1) / kThreads, 65535);
  AddKernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(x, y, n);
  return CudaStatus(cudaGetLastError(), "AddKernel launch");
}

}  // namespace tpserve::cuda
