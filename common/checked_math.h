// Overflow-checked unsigned arithmetic for sizes and offsets read from
// untrusted files. Every size that comes from a model file goes through these
// before it is compared with the file size or used to index memory.
#ifndef TPSERVE_COMMON_CHECKED_MATH_H_
#define TPSERVE_COMMON_CHECKED_MATH_H_

#include <cstdint>
#include <optional>

namespace tpserve {

// a + b, or nullopt when it does not fit in 64 bits.
inline std::optional<uint64_t> CheckedAdd(uint64_t a, uint64_t b) {
  uint64_t out;
  if (__builtin_add_overflow(a, b, &out)) return std::nullopt;
  return out;
}

// a * b, or nullopt when it does not fit in 64 bits.
inline std::optional<uint64_t> CheckedMul(uint64_t a, uint64_t b) {
  uint64_t out;
  if (__builtin_mul_overflow(a, b, &out)) return std::nullopt;
  return out;
}

// Rounds `value` up to a multiple of `align` (a power of two), or nullopt on
// overflow.
inline std::optional<uint64_t> CheckedAlignUp(uint64_t value, uint64_t align) {
  auto bumped = CheckedAdd(value, align - 1);
  if (!bumped) return std::nullopt;
  return *bumped & ~(align - 1);
}

}  // namespace tpserve

#endif  // TPSERVE_COMMON_CHECKED_MATH_H_
