#include "kernels/host_backend.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/reference_ops.h"

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

absl::Status HostBackend::EmbeddingGather(const WeightMatrix& table,
                                          int64_t row_begin,
                                          absl::Span<const int32_t> ids,
                                          float* out) {
  return EmbeddingGatherReference(table, row_begin, ids, out);
}

absl::Status HostBackend::GatherRows(const float* x, int64_t cols,
                                     absl::Span<const int32_t> rows,
                                     float* out) {
  if (cols < 0) return absl::InvalidArgumentError("GatherRows: cols < 0");
  if (rows.empty() || cols == 0) return absl::OkStatus();
  if (x == nullptr || out == nullptr) {
    return absl::InvalidArgumentError("GatherRows: null buffer");
  }
  const size_t row_bytes = static_cast<size_t>(cols) * sizeof(float);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] < 0) {
      return absl::InvalidArgumentError("GatherRows: negative row");
    }
    std::memcpy(out + i * cols, x + static_cast<size_t>(rows[i]) * cols,
                row_bytes);
  }
  return absl::OkStatus();
}

}  // namespace tpserve
