#include "kernels/cuda/gemm.h"

#include <climits>

#include "kernels/cuda/cuda_status.h"

namespace tpserve::cuda {

absl::Status MatmulF32(cublasHandle_t handle, cudaStream_t stream,
                       const float* a, const float* w, float* c, int64_t m,
                       int64_t n, int64_t k) {
  if (m < 0 || n <= 0 || k <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cuda::MatmulF32: bad shape m=", m, " n=", n, " k=", k));
  }
  return MatmulEx(handle, stream, GemmInput::kF32, a, w, k, c, n, m, n, k);
}

absl::Status MatmulEx(cublasHandle_t handle, cudaStream_t stream,
                      GemmInput type, const void* a, const void* w, int64_t ldw,
                      float* c, int64_t ldc, int64_t m, int64_t n, int64_t k) {
  if (m < 0 || n <= 0 || k <= 0 || ldw < k || ldc < n || m > INT_MAX ||
      n > INT_MAX || k > INT_MAX || ldw > INT_MAX || ldc > INT_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("cuda::MatmulEx: bad shape m=", m, " n=", n, " k=", k,
                     " ldw=", ldw, " ldc=", ldc));
  }
  if (m == 0) return absl::OkStatus();
  if (a == nullptr || w == nullptr || c == nullptr) {
    return absl::InvalidArgumentError("cuda::MatmulEx: null pointer");
  }
  TP_CUBLAS_RETURN_IF_ERROR(cublasSetStream(handle, stream));
  const float alpha = 1.f, beta = 0.f;
  const cudaDataType_t dt = type == GemmInput::kF32 ? CUDA_R_32F : CUDA_R_16BF;
  // cuBLAS is column-major: row-major C[m,n] is column-major C'[n,m], and
  // C' = W'^T A' where W' [k,n] and A' [k,m] are the row-major buffers read
  // column-major. CUBLAS_COMPUTE_32F keeps f32 accumulation (and no TF32
  // for f32 inputs).
  TP_CUBLAS_RETURN_IF_ERROR(cublasGemmEx(
      handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n),
      static_cast<int>(m), static_cast<int>(k), &alpha, w, dt,
      static_cast<int>(ldw), a, dt, static_cast<int>(k), &beta, c, CUDA_R_32F,
      static_cast<int>(ldc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  return absl::OkStatus();
}

}  // namespace tpserve::cuda
