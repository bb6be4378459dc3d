// The backends the op tests run: the reference, the CPU backend at 1-3
// threads and, when built with CUDA and a GPU is present, the CUDA backend
// behind HostStagingBackend (each op's host arguments copied to the device
// and its results back). Shared by backend_ops_test and attention_ops_test.
#ifndef TPSERVE_TESTS_ALL_BACKENDS_H_
#define TPSERVE_TESTS_ALL_BACKENDS_H_

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"

namespace tpserve::testing {

struct NamedBackend {
  std::string name;
  std::unique_ptr<Backend> backend;
  bool quantizes_acts;  // Integer matmul path with 8-bit activations.
  // Relative error per product term of a matmul beyond float summation:
  // 2^-8 for a GEMM over bf16-rounded weights and activations, else 0.
  double matmul_rel_err = 0;
};

// Every backend this build and machine run, fresh instances.
std::vector<NamedBackend> AllBackends();

// Whether the CUDA backend is built and a device is present.
bool CudaUsable();

// n floats uniform in [lo, hi).
std::vector<float> RandomFloats(size_t n, std::mt19937& rng, float lo = -1,
                                float hi = 1);

}  // namespace tpserve::testing

#endif  // TPSERVE_TESTS_ALL_BACKENDS_H_
