// RMSNorm kernel and its launcher. One block per row; threads stride over
// the row, reduce the sum of squares in a warp-shuffle tree, then scale.
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/rmsnorm.h"

namespace tpserve::cuda {
namespace {

constexpr int kThreads = 256;  // Multiple of 32; one warp-sum slot per warp.

__global__ void RmsNormKernel(const float* __restrict__ x,
                              const float* __restrict__ weight,
                              float* __restrict__ y, int64_t cols, float eps) {
  // size_t row offset: rows * cols can exceed 2^31 for long batches.
  const size_t row = blockIdx.x;
  const float* xr = x + row * cols;
  float* yr = y + row * cols;

  float sum_sq = 0.f;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    sum_sq += xr[i] * xr[i];
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    sum_sq += __shfl_xor_sync(0xffffffff, sum_sq, offset);
  }
  __shared__ float warp_sums[kThreads / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_sums[warp] = sum_sq;
  __syncthreads();
  if (warp == 0) {
    sum_sq = lane < kThreads / 32 ? warp_sums[lane] : 0.f;
    for (int offset = 16; offset > 0; offset /= 2) {
      sum_sq += __shfl_xor_sync(0xffffffff, sum_sq, offset);
    }
    if (lane == 0) warp_sums[0] = sum_sq;
  }
  __syncthreads();
  // Every thread reads the total before any thread writes y: y may alias x.
  const float scale = rsqrtf(warp_sums[0] / static_cast<float>(cols) + eps);
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    yr[i] = xr[i] * scale * weight[i];
  }
}

}  // namespace

absl::Status RmsNorm(const float* x, const float* weight, float* y,
                     int64_t rows, int64_t cols, float eps,
                     cudaStream_t stream) {
  if (rows < 0 || rows > INT32_MAX || cols <= 0 || !(eps > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cuda::RmsNorm: bad shape rows=", rows, " cols=", cols, " eps=", eps));
  }
  if (x == nullptr || weight == nullptr || y == nullptr) {
    return absl::InvalidArgumentError("cuda::RmsNorm: null pointer");
  }
  if (rows == 0) return absl::OkStatus();
  RmsNormKernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
      x, weight, y, cols, eps);
  return CudaStatus(cudaGetLastError(), "RmsNormKernel launch");
}

}  // namespace tpserve::cuda
