// Reader for GGUF model files (llama.cpp's format), versions 2 and 3.
//
// The file is untrusted: every length, count, offset and tensor size is
// checked with overflow-safe arithmetic against the bytes that exist, and any
// problem becomes an InvalidArgument status naming the field. Parsing never
// copies tensor data: tensors and string values point into the caller's
// buffer (normally an mmap), which must outlive the GgufFile.
//
// Layout (little-endian): magic "GGUF", u32 version, u64 tensor_count,
// u64 kv_count, kv_count × (string key, u32 type, value),
// tensor_count × (string name, u32 n_dims, u64 dims[n_dims], u32 ggml_type,
// u64 offset), padding to `general.alignment` (default 32), tensor data.
// A string is a u64 byte length followed by the bytes (no terminator).
#ifndef TPSERVE_COMMON_GGUF_H_
#define TPSERVE_COMMON_GGUF_H_

#include <cstdint>
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

// Value types of GGUF metadata (numbering from the GGUF spec).
enum class GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

absl::string_view GgufTypeName(GgufType type);

// Limits beyond "fits in the file": they bound memory we allocate for
// bookkeeping even when a file is huge. Real models are far below them
// (largest string: a chat template of a few KiB; largest array: ~256K
// vocabulary entries).
struct GgufLimits {
  uint64_t max_string_bytes = 64ull << 20;
  uint64_t max_array_elements = 64ull << 20;
  uint64_t max_kv = 1ull << 16;
  uint64_t max_tensors = 1ull << 20;
};

// One metadata entry. Scalars and numeric arrays are decoded on access from
// `data`; strings are views into the file.
struct GgufKv {
  std::string key;
  GgufType type = GgufType::kUint8;
  GgufType elem_type = GgufType::kUint8;  // Arrays only.
  uint64_t count = 1;                     // Array length; 1 for scalars.
  const uint8_t* data = nullptr;          // Scalar value / first element.
  // The string for kString, every element for arrays of strings.
  std::vector<absl::string_view> strings;
};

struct GgufTensor {
  std::string name;
  // ggml order: dims[0] is the innermost (contiguous) dimension.
  std::vector<uint64_t> dims;
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;  // From the start of the data section.
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;
};

class GgufFile {
 public:
  // Parses a GGUF image held in memory the caller keeps alive.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Parse(
      absl::Span<const uint8_t> bytes, const GgufLimits& limits = {});

  // Maps `path` and parses it; the GgufFile owns the mapping.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(
      const std::string& path, const GgufLimits& limits = {});

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return file_size_; }

  const std::vector<GgufKv>& metadata() const { return kvs_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }

  const GgufKv* FindKey(absl::string_view key) const;
  const GgufTensor* FindTensor(absl::string_view name) const;

  // Typed accessors. They error (naming the key) when the key is missing or
  // holds a value of an incompatible type or range. Integers of any width
  // and signedness are accepted where the value fits.
  absl::StatusOr<uint64_t> GetUint(absl::string_view key) const;
  absl::StatusOr<int64_t> GetInt(absl::string_view key) const;
  absl::StatusOr<double> GetFloat(absl::string_view key) const;
  absl::StatusOr<bool> GetBool(absl::string_view key) const;
  absl::StatusOr<absl::string_view> GetString(absl::string_view key) const;
  absl::StatusOr<absl::Span<const absl::string_view>> GetStringArray(
      absl::string_view key) const;
  absl::StatusOr<std::vector<int64_t>> GetIntArray(absl::string_view key) const;
  absl::StatusOr<std::vector<double>> GetFloatArray(
      absl::string_view key) const;

  // The value rendered as text (arrays abbreviated), for `describe`.
  static std::string FormatValue(const GgufKv& kv, size_t max_elements = 8);

 private:
  GgufFile() = default;
  absl::StatusOr<const GgufKv*> Require(absl::string_view key) const;

  MappedFile mapping_;  // Empty when parsed from caller memory.
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  uint64_t file_size_ = 0;
  std::vector<GgufKv> kvs_;
  std::vector<GgufTensor> tensors_;
  absl::flat_hash_map<std::string, size_t> kv_index_;
  absl::flat_hash_map<std::string, size_t> tensor_index_;
};

}  // namespace tpserve

#endif  // TPSERVE_COMMON_GGUF_H_
