// Turns CUDA runtime and cuBLAS error codes into absl::Status, so every
// device call is checked and failures surface to the caller, not as aborts.
#ifndef TPSERVE_KERNELS_CUDA_CUDA_STATUS_H_
#define TPSERVE_KERNELS_CUDA_CUDA_STATUS_H_

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tpserve::cuda {

inline absl::Status CudaStatus(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("CUDA error in ", what, ": ",
                                          cudaGetErrorName(err), " (",
                                          cudaGetErrorString(err), ")"));
}

inline absl::Status CublasStatus(cublasStatus_t err, const char* what) {
  if (err == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("cuBLAS error in ", what, ": ",
                                          cublasGetStatusName(err), " (",
                                          cublasGetStatusString(err), ")"));
}

}  // namespace tpserve::cuda

#define TP_CUDA_RETURN_IF_ERROR(call)                  \
  do {                                                 \
    ::absl::Status tp_cuda_status_ =                   \
        ::tpserve::cuda::CudaStatus((call), #call);    \
    if (!tp_cuda_status_.ok()) return tp_cuda_status_; \
  } while (0)

#define TP_CUBLAS_RETURN_IF_ERROR(call)                    \
  do {                                                     \
    ::absl::Status tp_cublas_status_ =                     \
        ::tpserve::cuda::CublasStatus((call), #call);      \
    if (!tp_cublas_status_.ok()) return tp_cublas_status_; \
  } while (0)

#endif  // TPSERVE_KERNELS_CUDA_CUDA_STATUS_H_
