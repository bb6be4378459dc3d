// Rotary position embedding, in place. One thread per (token, pair): the
// angle pos * freq and its sine and cosine are computed once in double (a
// float angle is off by ~1e-2 radians at position 1e5; Hopper's FP64 makes
// this cheap) and applied to that pair of every head of the token.
// freq[] comes from RopeFrequency on the host (frequency factors, linear
// and YaRN scaling all reduce to a frequency table and one magnitude),
// uploaded once per distinct table.
#include <algorithm>

#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/ops.h"

namespace tpserve::cuda {
namespace {

__global__ void RopeKernel(float* __restrict__ x, int64_t n, int64_t heads,
                           const int32_t* __restrict__ pos,
                           const double* __restrict__ freq, float mscale,
                           int64_t head_dim, int64_t half, bool neox) {
  const int64_t total = n * half;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       k < total; k += step) {
    const int64_t t = k / half, i = k % half;
    double sd, cd;
    sincos(static_cast<double>(pos[t]) * freq[i], &sd, &cd);
    const float s = static_cast<float>(sd) * mscale;
    const float c = static_cast<float>(cd) * mscale;
    const int64_t i0 = neox ? i : 2 * i;
    const int64_t i1 = neox ? i + half : 2 * i + 1;
    // size_t: n * heads * head_dim exceeds 2^31 for long prompts.
    float* xt = x + static_cast<size_t>(t) * heads * head_dim;
    for (int64_t h = 0; h < heads; ++h) {
      float* xh = xt + h * head_dim;
      const float x0 = xh[i0], x1 = xh[i1];
      xh[i0] = x0 * c - x1 * s;
      xh[i1] = x0 * s + x1 * c;
    }
  }
}

}  // namespace

absl::Status Rope(float* x, int64_t n, int64_t heads, const int32_t* pos,
                  const double* freq, float mscale, int64_t head_dim,
                  int64_t rope_dim, bool neox, cudaStream_t stream) {
  if (n < 0 || heads <= 0 || head_dim <= 0 || rope_dim <= 0 ||
      rope_dim % 2 != 0 || rope_dim > head_dim) {
    return absl::InvalidArgumentError("cuda::Rope: bad shape");
  }
  if (n == 0) return absl::OkStatus();
  if (x == nullptr || pos == nullptr || freq == nullptr) {
    return absl::InvalidArgumentError("cuda::Rope: null pointer");
  }
  const int64_t half = rope_dim / 2;
  constexpr int kThreads = 128;
  const int64_t blocks =
      std::min<int64_t>((n * half + kThreads - 1) / kThreads, 1 << 16);
  RopeKernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      x, n, heads, pos, freq, mscale, head_dim, half, neox);
  return CudaStatus(cudaGetLastError(), "RopeKernel launch");
}

}  // namespace tpserve::cuda
