// Runs a fuzz target over every file of its corpus once, without libFuzzer:
// a regression test that both builds (and any compiler) can run. Usage:
//   gguf_fuzz_replay DIR_OR_FILE...
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    std::error_code ec;
    if (fs::is_directory(argv[i], ec)) {
      for (const auto& e : fs::recursive_directory_iterator(argv[i])) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
    } else if (fs::is_regular_file(argv[i], ec)) {
      files.push_back(argv[i]);
    } else {
      std::fprintf(stderr, "no such corpus file or folder: %s\n", argv[i]);
      return 1;
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "empty corpus\n");
    return 1;
  }
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    // Every prefix too: truncated files are the most common real damage.
    for (size_t n = 0; n < bytes.size() && n < 4096; n += 7) {
      std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + n);
      LLVMFuzzerTestOneInput(prefix.data(), prefix.size());
    }
  }
  std::printf("replayed %zu corpus files\n", files.size());
  return 0;
}
