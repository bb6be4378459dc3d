// Decodes a block of weight rows to packed bf16 for the cuBLAS GEMM path
// (prefill and large batches): one thread per 32-weight unit (dequant.cuh),
// grid-stride over rows * units. Scratch of rows * cols bf16; the caller
// tiles big matrices by rows so the scratch stays bounded.
#include <cuda_bf16.h>

#include <algorithm>

#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/dequant.cuh"
#include "kernels/cuda/ops.h"
#include "kernels/reference_ops.h"

namespace tpserve::cuda {
namespace {

template <GgmlType T>
__global__ void DequantizeToBf16Kernel(const uint8_t* __restrict__ w,
                                       size_t stride, int64_t rows,
                                       int64_t cols,
                                       uint16_t* __restrict__ out) {
  // Work items: whole units, then (float types) the tail elements of each
  // row as single items; int64 throughout (rows * cols exceeds 2^31).
  const int64_t units = cols / 32;
  const int64_t tail = cols - units * 32;
  const int64_t per_row = units + tail;
  const int64_t total = rows * per_row;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       k < total; k += step) {
    const int64_t r = k / per_row, e = k % per_row;
    const uint8_t* row = w + static_cast<size_t>(r) * stride;
    uint16_t* o = out + static_cast<size_t>(r) * cols;
    if (e < units) {
      float y[32];
      DequantUnit<T>(row, e, y);
#pragma unroll
      for (int j = 0; j < 32; ++j) {
        o[32 * e + j] = __bfloat16_as_ushort(__float2bfloat16_rn(y[j]));
      }
    } else if constexpr (IsFloatType(T)) {
      const int64_t c = units * 32 + (e - units);
      o[c] = __bfloat16_as_ushort(__float2bfloat16_rn(LoadScalar<T>(row, c)));
    }
  }
}

}  // namespace

absl::Status DequantizeToBf16(const WeightMatrix& w, int64_t row0, int64_t rows,
                              uint16_t* out, cudaStream_t stream) {
  if (absl::Status s = ValidateWeightMatrix(w); !s.ok()) return s;
  if (row0 < 0 || rows < 0 || row0 + rows > w.rows || out == nullptr) {
    return absl::InvalidArgumentError("cuda::DequantizeToBf16: bad rows");
  }
  if (reinterpret_cast<uintptr_t>(w.data) % 16 != 0 || w.row_stride % 16 != 0) {
    return absl::InvalidArgumentError(
        "cuda::DequantizeToBf16: weights must be 16-byte aligned");
  }
  if (rows == 0) return absl::OkStatus();
  const int64_t per_row = w.cols / 32 + w.cols % 32;
  constexpr int kThreads = 256;
  const int64_t blocks =
      std::min<int64_t>((rows * per_row + kThreads - 1) / kThreads, 1 << 16);
  const uint8_t* base = w.data + static_cast<size_t>(row0) * w.row_stride;
  bool ok = DispatchWeightType(w.type, [&](auto tag) {
    DequantizeToBf16Kernel<decltype(tag)::value>
        <<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
            base, w.row_stride, rows, w.cols, out);
  });
  if (!ok) return absl::UnimplementedError("cuda::DequantizeToBf16: type");
  return CudaStatus(cudaGetLastError(), "DequantizeToBf16Kernel launch");
}

}  // namespace tpserve::cuda
