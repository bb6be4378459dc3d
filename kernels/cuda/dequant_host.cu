// The host instantiation of the device decoders (dequant.cuh): no kernel,
// only a loop over the 32-weight units of one row, so tests on machines
// without a GPU can check DequantUnit / LoadScalar bit for bit against
// DequantizeRow.
#include <cstdint>

#include "kernels/cuda/dequant.cuh"
#include "kernels/cuda/ops.h"
#include "kernels/reference_ops.h"

namespace tpserve::cuda {

absl::Status DequantizeRowWithDeviceDecoders(const WeightMatrix& w, int64_t row,
                                             float* out) {
  if (absl::Status s = ValidateWeightMatrix(w); !s.ok()) return s;
  if (row < 0 || row >= w.rows || out == nullptr) {
    return absl::InvalidArgumentError("DequantizeRowWithDeviceDecoders: row");
  }
  const uint8_t* r = w.data + static_cast<size_t>(row) * w.row_stride;
  if (reinterpret_cast<uintptr_t>(r) % 16 != 0) {
    return absl::InvalidArgumentError(
        "DequantizeRowWithDeviceDecoders: row not 16-byte aligned");
  }
  const int64_t units = w.cols / 32;
  bool ok = DispatchWeightType(w.type, [&](auto tag) {
    constexpr GgmlType T = decltype(tag)::value;
    for (int64_t u = 0; u < units; ++u) DequantUnit<T>(r, u, out + 32 * u);
    if constexpr (IsFloatType(T)) {
      for (int64_t c = units * 32; c < w.cols; ++c)
        out[c] = LoadScalar<T>(r, c);
    }
  });
  if (!ok) return absl::UnimplementedError("no device decoder for this type");
  return absl::OkStatus();
}

}  // namespace tpserve::cuda
