// libFuzzer target: arbitrary bytes through the safetensors reader, and the
// same bytes as the text of a Hugging Face config.json and index file (the
// other untrusted JSON of a model folder). Any crash, sanitizer report,
// leak or escaping exception is a bug; errors are the expected outcome for
// most inputs.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/hf_model.h"
#include "common/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = tpserve::SafetensorsFile::Parse(absl::MakeConstSpan(data, size));
  if (file.ok()) {
    // Touch the first and last byte of every tensor: ASan reports any view
    // that points outside the input.
    uint8_t sink = 0;
    for (const tpserve::SafetensorsTensor& t : (*file)->tensors()) {
      if (t.n_bytes() > 0) sink ^= t.data[0] ^ t.data[t.n_bytes() - 1];
      (void)tpserve::GgmlTypeOfSafetensor(t);
      (void)(*file)->FindTensor(t.name);
    }
    volatile uint8_t keep = sink;
    (void)keep;
  }
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)tpserve::ConfigFromHfJson(text);
  (void)tpserve::ParseSafetensorsIndex(text);
  return 0;
}
