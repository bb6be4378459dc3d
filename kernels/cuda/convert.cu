// f32 -> bf16 activations for the cuBLAS GEMM path (round to nearest even,
// NaN kept NaN: __float2bfloat16_rn). Grid-stride, int64 indices.
#include <cuda_bf16.h>

#include <algorithm>

#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/ops.h"

namespace tpserve::cuda {
namespace {

__global__ void ConvertF32ToBf16Kernel(const float* __restrict__ x, int64_t n,
                                       uint16_t* __restrict__ out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < n; i += stride) {
    out[i] = __bfloat16_as_ushort(__float2bfloat16_rn(x[i]));
  }
}

}  // namespace

absl::Status ConvertF32ToBf16(const float* x, int64_t n, uint16_t* out,
                              cudaStream_t stream) {
  if (n < 0 || (n > 0 && (x == nullptr || out == nullptr))) {
    return absl::InvalidArgumentError("cuda::ConvertF32ToBf16: bad arguments");
  }
  if (n == 0) return absl::OkStatus();
  constexpr int kThreads = 256;
  const int64_t blocks =
      std::min<int64_t>((n + kThreads - 1) / kThreads, 65535);
  ConvertF32ToBf16Kernel<<<static_cast<unsigned>(blocks), kThreads, 0,
                           stream>>>(x, n, out);
  return CudaStatus(cudaGetLastError(), "ConvertF32ToBf16Kernel launch");
}

}  // namespace tpserve::cuda
