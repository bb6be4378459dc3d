// Device-side initialization for bench/gpu_bench.cc: random weights are
// generated on the GPU (16 GB of them would take a minute from the host).
#ifndef TPSERVE_BENCH_GPU_BENCH_INIT_H_
#define TPSERVE_BENCH_GPU_BENCH_INIT_H_

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"

namespace tpserve::bench {

// p[i] = bf16 of a uniform value in [-scale, scale), from a hash of (seed,
// i): deterministic, no RNG state.
absl::Status FillRandomBf16(uint16_t* p, size_t n, uint64_t seed, float scale,
                            cudaStream_t stream);

// p[i] = value for i < n.
absl::Status FillFloats(float* p, size_t n, float value, cudaStream_t stream);

}  // namespace tpserve::bench

#endif  // TPSERVE_BENCH_GPU_BENCH_INIT_H_
