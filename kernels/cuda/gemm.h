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

}  // namespace tpserve::cuda

#endif  // TPSERVE_KERNELS_CUDA_GEMM_H_
