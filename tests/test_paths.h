// Where tests find their inputs. Both builds run tests from the repository
// root (CMake sets WORKING_DIRECTORY, Bazel runs in the runfiles tree), so
// relative paths name committed files; the downloaded default model comes
// from TPSERVE_MODEL, which scripts/test.sh sets after fetching it.
#ifndef TPSERVE_TESTS_TEST_PATHS_H_
#define TPSERVE_TESTS_TEST_PATHS_H_

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace tpserve::testing {

inline std::string DefaultModelPath() {
  const char* env = std::getenv("TPSERVE_MODEL");
  if (env != nullptr && *env != '\0') return env;
  return ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

inline constexpr char kModelHint[] =
    "the default model is missing: run scripts/fetch-model.sh (or set "
    "TPSERVE_MODEL to a SmolLM2-135M-Instruct Q4_1 GGUF)";

// llama.cpp's vocabulary-only GGUF files ("llama-spm" names
// ggml-vocab-llama-spm.gguf), fetched by scripts/fetch-test-data.sh into
// TPSERVE_VOCAB_DIR.
inline std::string VocabPath(const std::string& name) {
  const char* env = std::getenv("TPSERVE_VOCAB_DIR");
  const std::string dir =
      env != nullptr && *env != '\0' ? env : ".cache/testdata/llama-vocab";
  return dir + "/ggml-vocab-" + name + ".gguf";
}

inline constexpr char kVocabHint[] =
    "llama.cpp's vocabulary files are missing: run scripts/fetch-test-data.sh "
    "(or set TPSERVE_VOCAB_DIR to its folder)";

inline std::string GoldenPath(const std::string& name) {
  return "tests/golden/" + name;
}

inline std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs the `tpserve` binary (TPSERVE_BIN, else cli/tpserve) with
// `args` (shell words) and returns its stdout, with stderr too when
// `with_stderr`; *exit_code gets its exit status (-1 if it did not exit).
inline std::string RunTpserve(const std::string& args, int* exit_code,
                              bool with_stderr = true) {
  const char* bin = std::getenv("TPSERVE_BIN");
  const std::string cmd = std::string(bin ? bin : "cli/tpserve") + " " + args +
                          (with_stderr ? " 2>&1" : " 2>/dev/null");
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while (p && (n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = p ? pclose(p) : -1;
  *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

}  // namespace tpserve::testing

#endif  // TPSERVE_TESTS_TEST_PATHS_H_
