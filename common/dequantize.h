// Reference dequantization: GGML tensor data (any supported type) to float32.
//
// Scalar and simple on purpose: each type follows ggml's dequantize_row_*
// reference function operation for operation, so the output is bit-identical
// to ggml's and to gguf-py's `gguf.quants.dequantize` (checked against golden
// files by tests/dequantize_test.cc). It is the truth the SIMD and CUDA
// kernels in kernels/ are tested against, not the fast path. The block
// layouts it decodes are documented in common/ggml_blocks.h.
//
// Input is untrusted: element counts, byte sizes and types are checked and
// reported as statuses; the source may have any alignment.
#ifndef TPSERVE_COMMON_DEQUANTIZE_H_
#define TPSERVE_COMMON_DEQUANTIZE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/ggml_types.h"
#include "common/gguf.h"

namespace tpserve {

// Whether DequantizeRow handles `type`: F32, F16, BF16, Q8_0, Q4_0, Q4_1,
// Q5_0, Q5_1, Q4_K, Q5_K and Q6_K.
bool CanDequantize(GgmlType type);

// Decodes `n` elements of `type` from `src` (holding `src_bytes` bytes, of
// which the first GgmlRowBytes(type, n) are read) into dst[0..n).
// Errors: InvalidArgument when n is negative or not a whole number of
// blocks, when src is too short, or a pointer is null while n > 0;
// Unimplemented (naming the type) for types not supported. `dst` must not
// overlap `src`. n == 0 is a no-op.
absl::Status DequantizeRow(GgmlType type, const uint8_t* src, size_t src_bytes,
                           int64_t n, float* dst);

// Refuses tensors larger than this many elements by default (4 GiB of
// floats): the float copy of a real weight is at most a few hundred million
// elements, and a hostile file should not make us allocate without bound.
inline constexpr uint64_t kMaxDequantizeElements = uint64_t{1} << 30;

// The whole tensor as float32, in ggml order (dims[0] contiguous). Errors as
// DequantizeRow, plus InvalidArgument when the tensor's fields disagree
// (dims vs n_elements, n_bytes vs the type's size) and ResourceExhausted when
// it has more than `max_elements` elements.
absl::StatusOr<std::vector<float>> DequantizeTensor(
    const GgufTensor& tensor, uint64_t max_elements = kMaxDequantizeElements);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_DEQUANTIZE_H_
