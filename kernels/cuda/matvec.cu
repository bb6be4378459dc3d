// Dequantizing matrix-vector product, the decode path of MatMul: one warp
// per weight row; each lane decodes 32-weight units of the row in registers
// (dequant.cuh; blocks stay packed in device memory) and multiplies them
// with up to NR activation rows, so the weights, which dominate the bytes
// read, are read once per NR tokens. f32 activations and accumulation:
// the result equals MatMulReference up to float summation order.
//
// Memory access: consecutive lanes take consecutive units, so a warp reads
// a contiguous run of the row (coalesced). Activations (a few KB per row)
// are re-read by every warp from L1/L2.
#include <algorithm>

#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/dequant.cuh"
#include "kernels/cuda/ops.h"
#include "kernels/reference_ops.h"

namespace tpserve::cuda {
namespace {

constexpr int kWarps = 8;    // Weight rows per CTA.
constexpr int kMaxRows = 8;  // Activation rows per pass over the weights.

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// y[i, r] for rows r of this CTA and i < nr <= NR.
template <GgmlType T, int NR>
__global__ void __launch_bounds__(kWarps * 32)
    MatVecKernel(const uint8_t* __restrict__ w, size_t stride, int64_t rows,
                 int64_t cols, const float* __restrict__ x, int nr, bool vec,
                 float* __restrict__ y) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (r >= rows) return;  // Whole warps exit: the shuffles stay full-mask.
  // size_t: rows * stride is the matrix size, easily past 2^31 bytes.
  const uint8_t* row = w + static_cast<size_t>(r) * stride;
  float acc[NR];
#pragma unroll
  for (int i = 0; i < NR; ++i) acc[i] = 0.0f;
  const int64_t units = cols / 32;
  for (int64_t u = lane; u < units; u += 32) {
    float wv[32];
    DequantUnit<T>(row, u, wv);
#pragma unroll
    for (int i = 0; i < NR; ++i) {
      if (i >= nr) break;
      const float* xi = x + static_cast<size_t>(i) * cols + 32 * u;
      float s = 0.0f;
      if (vec) {
        const float4* x4 = reinterpret_cast<const float4*>(xi);
#pragma unroll
        for (int k = 0; k < 8; ++k) {
          const float4 v = x4[k];
          s += wv[4 * k] * v.x + wv[4 * k + 1] * v.y + wv[4 * k + 2] * v.z +
               wv[4 * k + 3] * v.w;
        }
      } else {
#pragma unroll
        for (int k = 0; k < 32; ++k) s += wv[k] * xi[k];
      }
      acc[i] += s;
    }
  }
  if constexpr (IsFloatType(T)) {
    // The partial last unit of a float row (cols % 32 != 0).
    for (int64_t c = units * 32 + lane; c < cols; c += 32) {
      const float wc = LoadScalar<T>(row, c);
#pragma unroll
      for (int i = 0; i < NR; ++i) {
        if (i < nr) acc[i] += wc * x[static_cast<size_t>(i) * cols + c];
      }
    }
  }
#pragma unroll
  for (int i = 0; i < NR; ++i) {
    const float s = WarpSum(acc[i]);
    if (lane == 0 && i < nr) y[static_cast<size_t>(i) * rows + r] = s;
  }
}

template <GgmlType T>
void LaunchMatVec(const WeightMatrix& w, const float* x, int nr, bool vec,
                  float* y, cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>((w.rows + kWarps - 1) / kWarps);
  const dim3 block(kWarps * 32);
  if (nr == 1) {
    MatVecKernel<T, 1><<<grid, block, 0, stream>>>(w.data, w.row_stride, w.rows,
                                                   w.cols, x, nr, vec, y);
  } else if (nr == 2) {
    MatVecKernel<T, 2><<<grid, block, 0, stream>>>(w.data, w.row_stride, w.rows,
                                                   w.cols, x, nr, vec, y);
  } else if (nr <= 4) {
    MatVecKernel<T, 4><<<grid, block, 0, stream>>>(w.data, w.row_stride, w.rows,
                                                   w.cols, x, nr, vec, y);
  } else {
    MatVecKernel<T, kMaxRows><<<grid, block, 0, stream>>>(
        w.data, w.row_stride, w.rows, w.cols, x, nr, vec, y);
  }
}

}  // namespace

absl::Status MatVec(const WeightMatrix& w, const float* x, int64_t n, float* y,
                    cudaStream_t stream) {
  if (absl::Status s = ValidateWeightMatrix(w); !s.ok()) return s;
  if (n < 0) return absl::InvalidArgumentError("cuda::MatVec: n < 0");
  if (n == 0 || w.rows == 0) return absl::OkStatus();
  if (x == nullptr || y == nullptr) {
    return absl::InvalidArgumentError("cuda::MatVec: null activations");
  }
  if (reinterpret_cast<uintptr_t>(w.data) % 16 != 0 || w.row_stride % 16 != 0) {
    return absl::InvalidArgumentError(
        "cuda::MatVec: weights must be 16-byte aligned (use "
        "CudaBackend::UploadWeights)");
  }
  // float4 activation loads when every row starts 16-byte aligned.
  const bool vec = w.cols % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
  if ((w.rows + kWarps - 1) / kWarps > INT32_MAX) {
    return absl::InvalidArgumentError("cuda::MatVec: too many rows");
  }
  for (int64_t i0 = 0; i0 < n; i0 += kMaxRows) {
    const int nr = static_cast<int>(std::min<int64_t>(kMaxRows, n - i0));
    const float* xi = x + static_cast<size_t>(i0) * w.cols;
    float* yi = y + static_cast<size_t>(i0) * w.rows;
    bool ok = DispatchWeightType(w.type, [&](auto tag) {
      LaunchMatVec<decltype(tag)::value>(w, xi, nr, vec, yi, stream);
    });
    if (!ok) return absl::UnimplementedError("cuda::MatVec: weight type");
    TP_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  }
  return absl::OkStatus();
}

}  // namespace tpserve::cuda
