// Writes safetensors images and Hugging Face folders for tests: valid files
// to start from and raw headers to corrupt on purpose. It is a fixture, not
// a second reader: valid-file expectations come from files written by the
// independent `safetensors` Python package (tests/golden/hf_tiny/).
#ifndef TPSERVE_TESTS_SAFETENSORS_BUILDER_H_
#define TPSERVE_TESTS_SAFETENSORS_BUILDER_H_

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace tpserve::testing {

struct StTensor {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16", "I8", "I64", ...
  std::vector<uint64_t> shape;
  std::string bytes;  // Empty: zeros of the right size.
};

inline uint64_t StDtypeBytes(const std::string& dtype) {
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16") return 2;
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  return 1;
}

// 8-byte header length, then `header` padded with spaces to a multiple of 8
// (as the reference writer does), then `data_bytes` bytes of data.
inline std::vector<uint8_t> RawSafetensors(std::string header,
                                           size_t data_bytes) {
  while (header.size() % 8 != 0) header.push_back(' ');
  std::vector<uint8_t> out(8);
  uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  out.insert(out.end(), header.begin(), header.end());
  for (size_t i = 0; i < data_bytes; ++i)
    out.push_back(static_cast<uint8_t>(i));
  return out;
}

// A valid file with the tensors back to back in the order given.
inline std::vector<uint8_t> BuildSafetensors(
    const std::vector<StTensor>& tensors,
    const std::map<std::string, std::string>& metadata = {}) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string data;
  for (const StTensor& t : tensors) {
    std::string bytes = t.bytes;
    if (bytes.empty()) {
      uint64_t n = StDtypeBytes(t.dtype);
      for (uint64_t d : t.shape) n *= d;
      bytes.assign(n, '\0');
    }
    header[t.name] = {
        {"dtype", t.dtype},
        {"shape", t.shape},
        {"data_offsets", {data.size(), data.size() + bytes.size()}}};
    data += bytes;
  }
  std::vector<uint8_t> out = RawSafetensors(header.dump(), 0);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

inline void WriteFile(const std::filesystem::path& path,
                      const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

inline void WriteFile(const std::filesystem::path& path,
                      const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// A fresh, empty folder under the test's temporary directory.
inline std::filesystem::path FreshDir(const std::string& name) {
  static std::atomic<int> counter{0};
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                              (name + "-" + std::to_string(::getpid()) + "-" +
                               std::to_string(counter++));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace tpserve::testing

#endif  // TPSERVE_TESTS_SAFETENSORS_BUILDER_H_
