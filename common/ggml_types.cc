#include "common/ggml_types.h"

#include <cstdlib>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "common/checked_math.h"
#include "common/logging.h"

namespace tpserve {
namespace {

// Sizes as ggml defines them (see the block structs in ggml-common.h):
// e.g. Q4_1 = f16 scale + f16 min + 16 bytes of nibbles per 32 weights.
constexpr GgmlTypeTraits kTraits[] = {
    {GgmlType::kF32, "F32", 1, 4},
    {GgmlType::kF16, "F16", 1, 2},
    {GgmlType::kQ4_0, "Q4_0", 32, 2 + 16},
    {GgmlType::kQ4_1, "Q4_1", 32, 2 + 2 + 16},
    {GgmlType::kQ5_0, "Q5_0", 32, 2 + 4 + 16},
    {GgmlType::kQ5_1, "Q5_1", 32, 2 + 2 + 4 + 16},
    {GgmlType::kQ8_0, "Q8_0", 32, 2 + 32},
    // ggml's block_q8_1 is {half d; half s; int8 qs[32]} (gguf-py still
    // lists the older 40-byte layout; llama.cpp's loader uses ggml's).
    {GgmlType::kQ8_1, "Q8_1", 32, 2 + 2 + 32},
    {GgmlType::kQ2_K, "Q2_K", kQK_K, 2 + 2 + kQK_K / 16 + kQK_K / 4},
    {GgmlType::kQ3_K, "Q3_K", kQK_K, 2 + kQK_K / 4 + kQK_K / 8 + 12},
    {GgmlType::kQ4_K, "Q4_K", kQK_K, 2 + 2 + kQK_K / 2 + 12},
    {GgmlType::kQ5_K, "Q5_K", kQK_K, 2 + 2 + kQK_K / 2 + kQK_K / 8 + 12},
    {GgmlType::kQ6_K, "Q6_K", kQK_K, 2 + kQK_K / 2 + kQK_K / 4 + kQK_K / 16},
    {GgmlType::kQ8_K, "Q8_K", kQK_K, 4 + kQK_K + kQK_K / 8},
    {GgmlType::kIQ2_XXS, "IQ2_XXS", kQK_K, 2 + kQK_K / 4},
    {GgmlType::kIQ2_XS, "IQ2_XS", kQK_K, 2 + kQK_K / 4 + kQK_K / 32},
    {GgmlType::kIQ3_XXS, "IQ3_XXS", kQK_K, 2 + kQK_K / 4 + kQK_K / 8},
    {GgmlType::kIQ1_S, "IQ1_S", kQK_K, 2 + kQK_K / 8 + kQK_K / 16},
    {GgmlType::kIQ4_NL, "IQ4_NL", 32, 2 + 16},
    {GgmlType::kIQ3_S, "IQ3_S", kQK_K,
     2 + kQK_K / 4 + kQK_K / 8 + kQK_K / 32 + 4},
    {GgmlType::kIQ2_S, "IQ2_S", kQK_K, 2 + kQK_K / 4 + kQK_K / 16},
    {GgmlType::kIQ4_XS, "IQ4_XS", kQK_K, 2 + 2 + kQK_K / 2 + kQK_K / 64},
    {GgmlType::kI8, "I8", 1, 1},
    {GgmlType::kI16, "I16", 1, 2},
    {GgmlType::kI32, "I32", 1, 4},
    {GgmlType::kI64, "I64", 1, 8},
    {GgmlType::kF64, "F64", 1, 8},
    {GgmlType::kIQ1_M, "IQ1_M", kQK_K, kQK_K / 8 + kQK_K / 16 + kQK_K / 32},
    {GgmlType::kBF16, "BF16", 1, 2},
    {GgmlType::kTQ1_0, "TQ1_0", kQK_K, 2 + 4 * 13},
    {GgmlType::kTQ2_0, "TQ2_0", kQK_K, 2 + 64},
};

}  // namespace

const GgmlTypeTraits* FindGgmlType(uint32_t raw_type) {
  for (const GgmlTypeTraits& t : kTraits) {
    if (static_cast<uint32_t>(t.type) == raw_type) return &t;
  }
  return nullptr;
}

const GgmlTypeTraits& GetGgmlType(GgmlType type) {
  const GgmlTypeTraits* t = FindGgmlType(static_cast<uint32_t>(type));
  TP_CHECK(t != nullptr) << "GgmlType " << static_cast<uint32_t>(type)
                         << " is not in the table";
  return *t;
}

absl::string_view GgmlTypeName(GgmlType type) { return GetGgmlType(type).name; }

absl::StatusOr<uint64_t> GgmlRowBytes(GgmlType type, uint64_t n_elements) {
  const GgmlTypeTraits& t = GetGgmlType(type);
  if (n_elements % t.block_size != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("a row of ", n_elements, " ", t.name,
                     " elements is not a whole number of ", t.block_size,
                     "-element blocks"));
  }
  auto bytes = CheckedMul(n_elements / t.block_size, t.type_size);
  if (!bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("row of ", n_elements, " elements overflows 64 bits"));
  }
  return *bytes;
}

}  // namespace tpserve
