// Tensor element types of the GGML/GGUF world and their block layouts.
//
// This is the single description of every quantized block format; the GGUF
// reader validates tensor sizes with it and the kernels decode with it.
// Numbering matches ggml's `enum ggml_type` (it is stored in GGUF files).
#ifndef TPSERVE_COMMON_GGML_TYPES_H_
#define TPSERVE_COMMON_GGML_TYPES_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tpserve {

enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
};

// Super-block size of the "K" quant formats.
inline constexpr int kQK_K = 256;

// Layout facts of one type: `block_size` elements are stored in `type_size`
// bytes. A row of n elements needs n % block_size == 0.
struct GgmlTypeTraits {
  GgmlType type;
  const char* name;
  uint32_t block_size;
  uint32_t type_size;
};

// Traits of a raw type id read from a file, or nullptr for an unknown id.
const GgmlTypeTraits* FindGgmlType(uint32_t raw_type);

// Traits of a known type (CHECK-fails on an invalid enum value: our bug).
const GgmlTypeTraits& GetGgmlType(GgmlType type);

absl::string_view GgmlTypeName(GgmlType type);

// Bytes taken by a row of `n_elements` of `type`. Errors when the row is not
// a whole number of blocks or the size overflows.
absl::StatusOr<uint64_t> GgmlRowBytes(GgmlType type, uint64_t n_elements);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_GGML_TYPES_H_
