#include "kernels/host_backend.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/op_checks.h"

namespace tpserve {

absl::StatusOr<float*> HostBackend::AllocFloats(size_t count) {
  // aligned_alloc needs a multiple of the alignment; round up, after
  // checking the byte count cannot wrap around size_t.
  if (count > (SIZE_MAX - kAlign) / sizeof(float)) {
    return absl::ResourceExhaustedError("AllocFloats: size overflows");
  }
  const size_t bytes =
      (std::max<size_t>(count, 1) * sizeof(float) + kAlign - 1) / kAlign *
      kAlign;
  void* p = std::aligned_alloc(kAlign, bytes);
  if (p == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate ", count, " floats"));
  }
  return static_cast<float*>(p);
}

void HostBackend::Free(float* p) { std::free(p); }

absl::StatusOr<WeightMatrix> HostBackend::UploadWeights(const WeightMatrix& w) {
  if (absl::Status s = ValidateWeightMatrix(w); !s.ok()) return s;
  return w;  // Used in place, from the file mapping.
}

absl::Status HostBackend::CopyToHost(const float* src, float* dst, size_t n) {
  if (n > 0) std::memmove(dst, src, n * sizeof(float));
  return absl::OkStatus();
}

absl::Status HostBackend::CopyFromHost(const float* src, float* dst, size_t n) {
  if (n > 0) std::memmove(dst, src, n * sizeof(float));
  return absl::OkStatus();
}

}  // namespace tpserve
