// Backend selection by name, for the worker service and tools: the one
// place that knows which backends this build has.
#ifndef TPSERVE_WORKER_BACKEND_FACTORY_H_
#define TPSERVE_WORKER_BACKEND_FACTORY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "kernels/backend.h"

namespace tpserve {

// "cpu": the CPU backend on `threads` threads (<= 0: one per hardware
// thread); `device` is ignored. "cuda": the CUDA backend on device
// `device`; `threads` is ignored. Errors: FailedPrecondition for "cuda" in
// a build without CUDA or on a machine without that device,
// InvalidArgument for an unknown name.
absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const std::string& name,
                                                     int threads, int device);

// Whether this build has the CUDA backend (not whether a GPU is present).
bool CudaBackendCompiled();

// CUDA devices usable by this process (0 without CUDA in the build, a
// driver or a device).
int CudaDevices();

}  // namespace tpserve

#endif  // TPSERVE_WORKER_BACKEND_FACTORY_H_
