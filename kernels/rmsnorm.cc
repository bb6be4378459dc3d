#include "kernels/rmsnorm.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace tpserve {

absl::Status RmsNormReference(absl::Span<const float> x,
                              absl::Span<const float> weight, int64_t rows,
                              int64_t cols, float eps, absl::Span<float> y) {
  if (rows < 0 || cols <= 0 ||
      static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols) != x.size() ||
      y.size() != x.size() || weight.size() != static_cast<size_t>(cols)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "RmsNorm: shapes x=", x.size(), " w=", weight.size(), " y=", y.size(),
        " do not match rows=", rows, " cols=", cols));
  }
  if (!(eps > 0)) return absl::InvalidArgumentError("RmsNorm: eps must be > 0");
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * cols;
    float* yr = y.data() + r * cols;
    double sum_sq = 0;
    for (int64_t i = 0; i < cols; ++i) sum_sq += double{xr[i]} * xr[i];
    const double scale = 1.0 / std::sqrt(sum_sq / cols + eps);
    for (int64_t i = 0; i < cols; ++i) {
      yr[i] = static_cast<float>(xr[i] * scale * weight[i]);
    }
  }
  return absl::OkStatus();
}

}  // namespace tpserve
