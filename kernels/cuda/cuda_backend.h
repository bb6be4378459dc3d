// The CUDA implementation of Backend (kernels/backend.h).
//
// Memory: weights, activations and the KV pool live in device memory
// (cudaMalloc; no managed memory). UploadWeights copies a matrix to the
// device once, rows padded to 16 bytes, blocks kept packed in their ggml
// format; the backend owns those copies until it is destroyed.
//
// Execution: one non-blocking stream per backend; every op is enqueued on
// it and returns without waiting (CopyToHost and Synchronize wait). Ops
// take the small host arrays of the interface (token ids, positions, block
// tables) and upload them through pinned staging buffers that are reused
// while their contents repeat (a step's metadata is the same for every
// layer), so a decode step does one small upload per array.
//
// Numerics (docs/cuda.md):
//  - MatMul, n <= gemv_max_rows: a dequantizing GEMV, f32 activations and
//    accumulation: equal to MatMulReference up to float summation order.
//  - MatMul, larger n: cuBLAS with f32 accumulation; F32 weights in f32
//    (no TF32), BF16 weights directly, every other type decoded to bf16
//    tiles first; activations rounded to bf16 (relative error <= 2^-9 per
//    input).
//  - Embedding gather: bit-exact dequantization; RMSNorm, RoPE (double
//    angles), SiLU, attention: f32.
// Not thread-safe: one caller at a time (like the CPU backend).
#ifndef TPSERVE_KERNELS_CUDA_CUDA_BACKEND_H_
#define TPSERVE_KERNELS_CUDA_CUDA_BACKEND_H_

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "kernels/backend.h"

namespace tpserve {

struct CudaBackendOptions {
  int device = 0;
  // MatMul calls with at most this many activation rows take the GEMV
  // kernel; more take cuBLAS (see the numerics above). Decode batches up to
  // this size read each weight once per 8 rows.
  int64_t gemv_max_rows = 8;
  // Device scratch for weights decoded to bf16 before a cuBLAS GEMM; large
  // matrices are processed in row tiles that fit.
  size_t dequant_scratch_bytes = size_t{64} << 20;
};

// A backend on CUDA device `options.device`. FailedPrecondition when there
// is no such device (or no driver).
absl::StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(
    const CudaBackendOptions& options);
absl::StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(int device);

// The number of CUDA devices this process can use; 0 without a driver or a
// device (never an error, so callers can skip cleanly).
int CudaDeviceCount();

// The stream a CUDA backend enqueues its ops on (for a communicator that
// must run in the same order, or for graph capture), and its device;
// nullptr / -1 when `backend` is not a CUDA backend.
cudaStream_t CudaBackendStream(const Backend& backend);
int CudaBackendDevice(const Backend& backend);

}  // namespace tpserve

#endif  // TPSERVE_KERNELS_CUDA_CUDA_BACKEND_H_
