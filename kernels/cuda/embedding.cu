// Embedding gather: one CTA per token row; threads take 32-weight units of
// the table row and decode them (dequant.cuh), so every weight type the CPU
// backend reads works here, bit-exact with the reference.
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/dequant.cuh"
#include "kernels/cuda/ops.h"
#include "kernels/reference_ops.h"

namespace tpserve::cuda {
namespace {

constexpr int kThreads = 128;

template <GgmlType T>
__global__ void EmbeddingGatherKernel(const uint8_t* __restrict__ table,
                                      size_t stride, int64_t rows, int64_t cols,
                                      int64_t row_begin,
                                      const int32_t* __restrict__ ids,
                                      float* __restrict__ out) {
  // size_t: n * cols exceeds 2^31 for long prompts with a large hidden size.
  float* o = out + static_cast<size_t>(blockIdx.x) * cols;
  const int64_t r = static_cast<int64_t>(ids[blockIdx.x]) - row_begin;
  if (r < 0 || r >= rows) {
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) o[c] = 0.0f;
    return;
  }
  const uint8_t* row = table + static_cast<size_t>(r) * stride;
  const int64_t units = cols / 32;
  for (int64_t u = threadIdx.x; u < units; u += blockDim.x) {
    float y[32];
    DequantUnit<T>(row, u, y);
#pragma unroll
    for (int j = 0; j < 32; ++j) o[32 * u + j] = y[j];
  }
  if constexpr (IsFloatType(T)) {
    for (int64_t c = units * 32 + threadIdx.x; c < cols; c += blockDim.x) {
      o[c] = LoadScalar<T>(row, c);
    }
  }
}

}  // namespace

absl::Status EmbeddingGather(const WeightMatrix& table, int64_t row_begin,
                             const int32_t* ids, int64_t n, float* out,
                             cudaStream_t stream) {
  if (absl::Status s = ValidateWeightMatrix(table); !s.ok()) return s;
  if (n < 0 || n > INT32_MAX) {
    return absl::InvalidArgumentError("cuda::EmbeddingGather: bad n");
  }
  if (n == 0) return absl::OkStatus();
  if (ids == nullptr || out == nullptr) {
    return absl::InvalidArgumentError("cuda::EmbeddingGather: null pointer");
  }
  // Whole-unit F32/F16/BF16 loads are 16 bytes wide.
  if (reinterpret_cast<uintptr_t>(table.data) % 16 != 0 ||
      table.row_stride % 16 != 0) {
    return absl::InvalidArgumentError(
        "cuda::EmbeddingGather: table rows must be 16-byte aligned (use "
        "CudaBackend::UploadWeights)");
  }
  bool ok = DispatchWeightType(table.type, [&](auto tag) {
    constexpr GgmlType T = decltype(tag)::value;
    EmbeddingGatherKernel<T><<<static_cast<unsigned>(n), kThreads, 0, stream>>>(
        table.data, table.row_stride, table.rows, table.cols, row_begin, ids,
        out);
  });
  if (!ok) return absl::UnimplementedError("cuda::EmbeddingGather: type");
  return CudaStatus(cudaGetLastError(), "EmbeddingGatherKernel launch");
}

}  // namespace tpserve::cuda
