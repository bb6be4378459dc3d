// Reader for safetensors files (Hugging Face's weight format).
//
// Layout: u64 little-endian header length N, then N bytes of JSON
//   {"NAME": {"dtype": "F32", "shape": [d0, d1, ...],
//             "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value", ...}}   (optional, strings only)
// then the data buffer. Offsets are relative to the start of the buffer;
// shapes are row-major, outermost dimension first (PyTorch order).
//
// The file is untrusted. The rules follow the reference implementation (the
// `safetensors` Rust crate) and are stricter where it is lenient: header at
// most 100 MB and inside the file; a JSON object with bounded nesting; every
// entry's dtype known, shape made of non-negative integers, element count x
// dtype size computed with overflow checks and equal to end - begin; tensors
// contiguous, non-overlapping and covering the whole data buffer (sorted by
// begin, each starts where the previous ends); duplicate names refused (the
// crate keeps the last one). Errors are InvalidArgument naming the tensor and
// field. Nothing is copied: tensors point into the caller's buffer (normally
// an mmap), which must outlive the SafetensorsFile.
//
// Tensors are packed back to back, so `data` is only guaranteed to be
// aligned to 8 bytes at the start of the buffer: read elements with memcpy
// or copy the tensor before using typed pointers.
#ifndef TPSERVE_COMMON_SAFETENSORS_H_
#define TPSERVE_COMMON_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/ggml_types.h"
#include "common/mapped_file.h"

namespace tpserve {

// Every dtype the reference crate knows (sizes in bits: F4 is 4 bits, F6_*
// 6 bits, so a tensor's size in bits must be a whole number of bytes).
enum class SafetensorsDtype {
  kBool,
  kF4,
  kF6E2M3,
  kF6E3M2,
  kU8,
  kI8,
  kF8E5M2,
  kF8E4M3,
  kF8E8M0,
  kF8E4M3Fnuz,
  kF8E5M2Fnuz,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kC64,
  kF64,
  kI64,
  kU64,
};

// The name as written in files ("BF16").
absl::string_view SafetensorsDtypeName(SafetensorsDtype dtype);
uint32_t SafetensorsDtypeBits(SafetensorsDtype dtype);

struct SafetensorsLimits {
  uint64_t max_header_bytes = 100'000'000;  // The crate's MAX_HEADER_SIZE.
  // Real checkpoints hold at most a few thousand tensors per file.
  uint64_t max_tensors = 1ull << 18;
  uint64_t max_rank = 8;
  uint64_t max_metadata_entries = 1ull << 16;
};

struct SafetensorsTensor {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  // Row-major, outermost first (the reverse of ggml's dims). Empty for a
  // scalar; a zero dimension makes an empty tensor (allowed, as the crate).
  std::vector<uint64_t> shape;
  uint64_t begin = 0;  // data_offsets, relative to the data buffer.
  uint64_t end = 0;
  uint64_t n_elements = 0;
  const uint8_t* data = nullptr;  // See the alignment note above.

  uint64_t n_bytes() const { return end - begin; }
};

class SafetensorsFile {
 public:
  // Parses a safetensors image held in memory the caller keeps alive.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Parse(
      absl::Span<const uint8_t> bytes, const SafetensorsLimits& limits = {});

  // Maps `path` and parses it; the SafetensorsFile owns the mapping. Errors
  // start with the path.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(
      const std::string& path, const SafetensorsLimits& limits = {});

  uint64_t header_size() const { return header_size_; }  // N.
  uint64_t data_offset() const { return 8 + header_size_; }
  uint64_t file_size() const { return file_size_; }
  const std::string& path() const { return mapping_.path(); }  // Open only.

  // In data order (sorted by begin): the order of the bytes in the file.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* FindTensor(absl::string_view name) const;
  // "__metadata__", sorted by key.
  const std::map<std::string, std::string>& metadata() const {
    return metadata_;
  }

 private:
  SafetensorsFile() = default;

  MappedFile mapping_;  // Empty when parsed from caller memory.
  uint64_t header_size_ = 0;
  uint64_t file_size_ = 0;
  std::vector<SafetensorsTensor> tensors_;
  absl::flat_hash_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// The ggml type of a tensor the engine computes with: F32, F16 and BF16 map
// to kF32/kF16/kBF16 (same bit layouts). Any other dtype is Unimplemented,
// naming the tensor and the dtype.
absl::StatusOr<GgmlType> GgmlTypeOfSafetensor(const SafetensorsTensor& tensor);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_SAFETENSORS_H_
