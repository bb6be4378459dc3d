#ifndef TPSERVE_KERNELS_CUDA_GEMM_H_
#define TPSERVE_KERNELS_CUDA_GEMM_H_

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"

namespace tpserve::cuda {

// C[m, n] = sum_k A[m, k] * W[n, k], all row-major f32 on the device: the
// shape of a linear layer (activations times the transposed weight matrix).
// Runs on `stream` through cuBLAS with f32 accumulation and no TF32, so it
// can be compared tightly with the CPU reference.
absl::Status MatmulF32(cublasHandle_t handle, cudaStream_t stream,
                       const float* a, const float* w, float* c, int64_t m,
                       int64_t n, int64_t k);

// The element type of A and W in MatmulEx.
enum class GemmInput { kF32, kBf16 };

// C[m, n] (row stride ldc floats) = A[m, k] (row stride k) * W[n, k]^T
// (row stride ldw elements), A and W of `type`, C f32, f32 accumulation
// (CUBLAS_COMPUTE_32F; tensor cores for bf16, none for f32). ldw >= k and
// ldc >= n; ldc > n writes a column slice of a wider C (a row tile of W).
absl::Status MatmulEx(cublasHandle_t handle, cudaStream_t stream,
                      GemmInput type, const void* a, const void* w, int64_t ldw,
                      float* c, int64_t ldc, int64_t m, int64_t n, int64_t k);

}  // namespace tpserve::cuda

#endif  // TPSERVE_KERNELS_CUDA_GEMM_H_
