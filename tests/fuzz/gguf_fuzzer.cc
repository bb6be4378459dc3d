// libFuzzer target: arbitrary bytes through the GGUF reader and the model
// config reader. Any crash, sanitizer report or leak is a bug; errors are
// the expected outcome for most inputs.
#include <cstddef>
#include <cstdint>

#include "common/gguf.h"
#include "common/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Small limits keep each run fast while exercising the same checks.
  tpserve::GgufLimits limits;
  limits.max_array_elements = 1 << 16;
  limits.max_string_bytes = 1 << 16;
  auto gguf = tpserve::GgufFile::Parse(absl::MakeConstSpan(data, size), limits);
  if (!gguf.ok()) return 0;
  for (const tpserve::GgufKv& kv : (*gguf)->metadata()) {
    (void)tpserve::GgufFile::FormatValue(kv);
    (void)(*gguf)->GetIntArray(kv.key);
    (void)(*gguf)->GetFloat(kv.key);
  }
  (void)tpserve::ConfigFromGguf(**gguf);
  return 0;
}
