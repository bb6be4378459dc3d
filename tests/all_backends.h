// The backends the op tests run: the reference, the CPU backend at 1-3
// threads and, when built with CUDA and a GPU is present, the CUDA backend
// behind HostStagingBackend (each op's host arguments copied to the device
// and its results back). Shared by backend_ops_test and attention_ops_test.
#ifndef TPSERVE_TESTS_ALL_BACKENDS_H_
#define TPSERVE_TESTS_ALL_BACKENDS_H_

#include <cstddef>
#include <cstdint>
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
  // The backend itself (for a device backend, behind no staging): what
  // refused inputs are given, as host pointers it must never dereference.
  Backend* unstaged = nullptr;
};

// Every backend this build and machine run, fresh instances.
std::vector<NamedBackend> AllBackends();

// Whether the CUDA backend is built and a device is present.
bool CudaUsable();

// n floats uniform in [lo, hi).
std::vector<float> RandomFloats(size_t n, std::mt19937& rng, float lo = -1,
                                float hi = 1);

// `rows` rows of `cols` weights of `type`, each `stride` bytes apart (>= the
// packed row; the gap is filled with garbage a kernel must not read as
// weights). Quantized blocks are random bytes with sane fp16 scales written
// over the scale fields (random bytes there would give NaN/huge scales);
// every bit pattern of the quants is valid.
std::vector<uint8_t> RandomWeights(GgmlType type, int64_t rows, int64_t cols,
                                   size_t stride, std::mt19937& rng);

}  // namespace tpserve::testing

#endif  // TPSERVE_TESTS_ALL_BACKENDS_H_
