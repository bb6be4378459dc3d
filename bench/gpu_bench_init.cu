// Fill kernels for the GPU benchmark: hashed uniform bf16 weights, constant
// floats. Grid-stride loops with size_t indices (a 128256 x 4096 table is
// 525M elements; the whole model is 8G).
#include <cuda_bf16.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "bench/gpu_bench_init.h"

namespace tpserve::bench {
namespace {

__device__ __forceinline__ uint64_t Mix(uint64_t x) {  // splitmix64.
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

__global__ void FillRandomBf16Kernel(uint16_t* p, size_t n, uint64_t seed,
                                     float scale) {
  const size_t step = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < n; i += step) {
    const uint64_t h = Mix(seed * 0x100000001B3ull + i);
    const float u = static_cast<float>(h >> 40) * (1.0f / 16777216.0f);
    p[i] = __bfloat16_as_ushort(__float2bfloat16_rn((2.0f * u - 1.0f) * scale));
  }
}

__global__ void FillFloatsKernel(float* p, size_t n, float value) {
  const size_t step = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < n; i += step) {
    p[i] = value;
  }
}

absl::Status Check(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat(what, " launch: ", cudaGetErrorString(err)));
}

unsigned Blocks(size_t n) {
  return static_cast<unsigned>(std::min<size_t>((n + 255) / 256, 1 << 16));
}

}  // namespace

absl::Status FillRandomBf16(uint16_t* p, size_t n, uint64_t seed, float scale,
                            cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  FillRandomBf16Kernel<<<Blocks(n), 256, 0, stream>>>(p, n, seed, scale);
  return Check("FillRandomBf16Kernel");
}

absl::Status FillFloats(float* p, size_t n, float value, cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  FillFloatsKernel<<<Blocks(n), 256, 0, stream>>>(p, n, value);
  return Check("FillFloatsKernel");
}

}  // namespace tpserve::bench
