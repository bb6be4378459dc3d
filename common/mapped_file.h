// A read-only memory map of a whole file. Model weights are used in place
// from the map (no copy at load); the OS pages them in on first touch.
#ifndef TPSERVE_COMMON_MAPPED_FILE_H_
#define TPSERVE_COMMON_MAPPED_FILE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace tpserve {

class MappedFile {
 public:
  // Maps `path` read-only. Errors name the path and the failing call.
  static absl::StatusOr<MappedFile> Open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void Reset();

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace tpserve

#endif  // TPSERVE_COMMON_MAPPED_FILE_H_
