// The CPU implementation of Backend (kernels/backend.h): Highway SIMD with
// runtime dispatch (kernels/cpu/matmul.h) and a persistent thread pool.
#ifndef TPSERVE_KERNELS_CPU_CPU_BACKEND_H_
#define TPSERVE_KERNELS_CPU_CPU_BACKEND_H_

#include <memory>

#include "kernels/backend.h"

namespace tpserve {

// A CPU backend running its ops on `threads` threads (the caller's thread
// included; <= 0 means one per hardware thread). Pointers are host memory;
// ops run synchronously. Not thread-safe: one caller at a time (it owns
// scratch buffers that grow to the largest batch seen, so the steady-state
// decode loop does not allocate).
std::unique_ptr<Backend> MakeCpuBackend(int threads);

}  // namespace tpserve

#endif  // TPSERVE_KERNELS_CPU_CPU_BACKEND_H_
