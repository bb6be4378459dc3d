// SiLU(gate) * up, element-wise, in place in gate: the SwiGLU of the Llama
// MLP. Grid-stride loop; int64 indices (n = tokens * ffn exceeds 2^31 for
// long prompts on large models).
#include <algorithm>

#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/ops.h"

namespace tpserve::cuda {
namespace {

__global__ void SiluMulKernel(float* __restrict__ gate,
                              const float* __restrict__ up, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < n; i += stride) {
    const float g = gate[i];
    // expf, not __expf: the CPU reference is compared within 1e-6.
    gate[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

}  // namespace

absl::Status SiluMul(float* gate, const float* up, int64_t n,
                     cudaStream_t stream) {
  if (n < 0 || (n > 0 && (gate == nullptr || up == nullptr))) {
    return absl::InvalidArgumentError("cuda::SiluMul: bad arguments");
  }
  if (n == 0) return absl::OkStatus();
  constexpr int kThreads = 256;
  const int64_t blocks =
      std::min<int64_t>((n + kThreads - 1) / kThreads, 65535);
  SiluMulKernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(gate,
                                                                        up, n);
  return CudaStatus(cudaGetLastError(), "SiluMulKernel launch");
}

}  // namespace tpserve::cuda
