// libFuzzer target for the tokenizers. The first byte picks the mode:
//   0/1: encode the rest as text with a byte-level BPE (from the committed
//        tests/golden/hf_tiny_bpe/tokenizer.json), parse_special off/on; a
//        successful encode must decode back to the same text (lossless);
//   2:   parse the rest as a tokenizer.json (must fail cleanly or load);
//   3:   parse the rest as a SentencePiece tokenizer.model, likewise.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/sentencepiece_tokenizer.h"
#include "common/tokenizer.h"

namespace {

const tpserve::Tokenizer* TinyBpe() {
  static const tpserve::Tokenizer* tok = [] {
    std::ifstream in("tests/golden/hf_tiny_bpe/tokenizer.json");
    std::stringstream ss;
    ss << in.rdbuf();
    auto t = tpserve::Tokenizer::FromHfTokenizerJson(ss.str(), 0, 1);
    if (!t.ok()) {
      // Run from the repository root (scripts/fuzz.sh does).
      std::abort();
    }
    return t->release();
  }();
  return tok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
    case 1: {
      tpserve::EncodeOptions options;
      options.parse_special = data[0] % 4 == 1;
      auto ids = TinyBpe()->Encode(rest, options);
      if (ids.ok() && TinyBpe()->Decode(*ids, true) != rest) std::abort();
      break;
    }
    case 2: {
      auto t = tpserve::Tokenizer::FromHfTokenizerJson(rest, -1, -1);
      if (t.ok()) (void)(*t)->Encode("probe text 123", {});
      break;
    }
    case 3: {
      auto t = tpserve::SentencePieceTokenizerFromModel(rest);
      if (t.ok()) {
        auto ids = (*t)->Encode("probe text 123 \xF0\x9F\xA6\x99", {});
        if (ids.ok()) (void)(*t)->Decode(*ids, true);
      }
      break;
    }
  }
  return 0;
}
