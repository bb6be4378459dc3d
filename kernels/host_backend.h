// The memory half of Backend for backends whose memory is host memory (the
// reference and the CPU backend): aligned allocation, weights used in
// place, copies as memmove, nothing asynchronous.
#ifndef TPSERVE_KERNELS_HOST_BACKEND_H_
#define TPSERVE_KERNELS_HOST_BACKEND_H_

#include <cstddef>

#include "kernels/backend.h"

namespace tpserve {

class HostBackend : public Backend {
 public:
  // 64 bytes: a cache line and an AVX-512 vector.
  static constexpr size_t kAlign = 64;

  absl::StatusOr<float*> AllocFloats(size_t count) override;
  void Free(float* p) override;
  absl::StatusOr<WeightMatrix> UploadWeights(const WeightMatrix& w) override;
  absl::Status CopyToHost(const float* src, float* dst, size_t n) override;
  absl::Status CopyFromHost(const float* src, float* dst, size_t n) override;
  absl::Status Synchronize() override { return absl::OkStatus(); }
};

}  // namespace tpserve

#endif  // TPSERVE_KERNELS_HOST_BACKEND_H_
