// Residual add x += y and the broadcast bias add x[r, :] += bias, element-
// wise. Grid-stride loops with int64 indices (rows * cols exceeds 2^31 for
// long prompts).
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

__global__ void AddBiasKernel(float* __restrict__ x,
                              const float* __restrict__ bias, int64_t rows,
                              int64_t cols) {
  const int64_t n = rows * cols;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < n; i += stride) {
    x[i] += bias[i % cols];
  }
}

}  // namespace

absl::Status AddBias(float* x, const float* bias, int64_t rows, int64_t cols,
                     cudaStream_t stream) {
  if (rows < 0 || cols <= 0 ||
      (rows > 0 && (x == nullptr || bias == nullptr))) {
    return absl::InvalidArgumentError("cuda::AddBias: bad arguments");
  }
  if (rows == 0) return absl::OkStatus();
  constexpr int kThreads = 256;
  const int64_t blocks =
      std::min<int64_t>((rows * cols + kThreads - 1) / kThreads, 65535);
  AddBiasKernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      x, bias, rows, cols);
  return CudaStatus(cudaGetLastError(), "AddBiasKernel launch");
}

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
