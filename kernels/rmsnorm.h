// RMSNorm, the normalization of every Llama block:
//   y[r, i] = x[r, i] / sqrt(mean_j(x[r, j]^2) + eps) * weight[i]
// This header declares the CPU reference that every backend is tested
// against; backends declare their own launchers next to their kernels.
#ifndef TPSERVE_KERNELS_RMSNORM_H_
#define TPSERVE_KERNELS_RMSNORM_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace tpserve {

// x and y are [rows, cols] row-major (y may alias x); weight is [cols].
// Accumulates in double so the reference is more exact than any backend.
absl::Status RmsNormReference(absl::Span<const float> x,
                              absl::Span<const float> weight, int64_t rows,
                              int64_t cols, float eps, absl::Span<float> y);

}  // namespace tpserve

#endif  // TPSERVE_KERNELS_RMSNORM_H_
