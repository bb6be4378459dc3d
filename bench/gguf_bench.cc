// Time to open and validate a GGUF model (mmap + header parse + tensor table
// checks), the first thing every worker does at load. bench/gguf_open.sh
// runs it side by side with llama.cpp's Python reader.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "common/gguf.h"
#include "common/model_config.h"

namespace {

std::string ModelPath() {
  const char* env = std::getenv("TPSERVE_MODEL");
  return env ? env : ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

void BM_OpenGguf(benchmark::State& state) {
  const std::string path = ModelPath();
  for (auto _ : state) {
    auto gguf = tpserve::GgufFile::Open(path);
    if (!gguf.ok()) {
      state.SkipWithError(std::string(gguf.status().message()).c_str());
      return;
    }
    auto config = tpserve::ConfigFromGguf(**gguf);
    benchmark::DoNotOptimize(config);
  }
}
BENCHMARK(BM_OpenGguf)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
