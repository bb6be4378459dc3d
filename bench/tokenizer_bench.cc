// Tokenizer load and encode speed on the default model's vocabulary.
// bench/tokenize.sh runs it side by side with Hugging Face `tokenizers`.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "common/gguf.h"
#include "common/tokenizer.h"

namespace {

std::string ModelPath() {
  const char* env = std::getenv("TPSERVE_MODEL");
  return env ? env : ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

// A mixed text of ~64 KiB: prose, code, numbers, non-Latin scripts.
std::string BenchText() {
  std::ifstream in("tests/golden/tokenizer_corpus.json");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string unit = ss.str();
  std::string text;
  while (text.size() < (64 << 10)) text += unit;
  return text;
}

void BM_LoadTokenizer(benchmark::State& state) {
  auto gguf = tpserve::GgufFile::Open(ModelPath());
  if (!gguf.ok()) return state.SkipWithError("model missing");
  for (auto _ : state) {
    auto tok = tpserve::Tokenizer::FromGguf(**gguf);
    benchmark::DoNotOptimize(tok);
  }
}
BENCHMARK(BM_LoadTokenizer)->Unit(benchmark::kMillisecond);

void BM_Encode64K(benchmark::State& state) {
  auto gguf = tpserve::GgufFile::Open(ModelPath());
  if (!gguf.ok()) return state.SkipWithError("model missing");
  auto tok = tpserve::Tokenizer::FromGguf(**gguf);
  const std::string text = BenchText();
  for (auto _ : state) {
    auto ids = (*tok)->Encode(text, {});
    benchmark::DoNotOptimize(ids);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * text.size());
}
BENCHMARK(BM_Encode64K)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
