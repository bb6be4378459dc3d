#include "worker/backend_factory.h"

// Defined to 1 by the build when the CUDA backend is linked in.
#ifndef TPSERVE_HAS_CUDA_BACKEND
#define TPSERVE_HAS_CUDA_BACKEND 0
#endif

#include "absl/strings/str_cat.h"
#include "kernels/cpu/cpu_backend.h"
#if TPSERVE_HAS_CUDA_BACKEND
#include "kernels/cuda/cuda_backend.h"
#endif

namespace tpserve {

bool CudaBackendCompiled() { return TPSERVE_HAS_CUDA_BACKEND != 0; }

int CudaDevices() {
#if TPSERVE_HAS_CUDA_BACKEND
  return CudaDeviceCount();
#else
  return 0;
#endif
}

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const std::string& name,
                                                     int threads, int device) {
  if (name == "cpu") return MakeCpuBackend(threads);
  if (name == "cuda") {
#if TPSERVE_HAS_CUDA_BACKEND
    return MakeCudaBackend(device);
#else
    (void)device;
    return absl::FailedPreconditionError(
        "backend 'cuda': this build has no CUDA; rebuild with nvcc available "
        "(CMake finds /usr/local/cuda/bin/nvcc, or set CMAKE_CUDA_COMPILER)");
#endif
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown backend '", name, "' (expected cpu or cuda)"));
}

}  // namespace tpserve
