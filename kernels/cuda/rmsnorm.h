#ifndef TPSERVE_KERNELS_CUDA_RMSNORM_H_
#define TPSERVE_KERNELS_CUDA_RMSNORM_H_

#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"

namespace tpserve::cuda {

// RMSNorm of `rows` rows of `cols` floats on `stream` (Backend::RmsNorm
// has the math). Device pointers; y may alias x. Checks shapes and the launch.
absl::Status RmsNorm(const float* x, const float* weight, float* y,
                     int64_t rows, int64_t cols, float eps,
                     cudaStream_t stream);

}  // namespace tpserve::cuda

#endif  // TPSERVE_KERNELS_CUDA_RMSNORM_H_
