// Regex pre-tokenization for byte-level BPE: text is cut into words before
// merges, by a sequence of patterns. Each pattern splits every piece the
// previous one produced into its matches and the text between them (the
// "isolated" split of Hugging Face tokenizers and of llama.cpp).
//
// Patterns run on PCRE2 compiled with UTF | UCP (Unicode \p{..}, \s) and
// JIT. Input is validated as UTF-8 once; later matches pass NO_UTF_CHECK, or
// each match would re-scan the rest of the text (quadratic).
#ifndef TPSERVE_COMMON_PRETOKENIZER_H_
#define TPSERVE_COMMON_PRETOKENIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tpserve {

class PreTokenizer {
 public:
  // Compiles the patterns (PCRE2 syntax). Errors name the bad pattern.
  static absl::StatusOr<std::unique_ptr<PreTokenizer>> Create(
      const std::vector<std::string>& patterns);

  // The patterns llama.cpp uses for a GGUF `tokenizer.ggml.pre` name, or an
  // error listing the supported names.
  static absl::StatusOr<std::vector<std::string>> PatternsForGgufPre(
      absl::string_view pre);

  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Splits valid UTF-8 `text` into words (views into `text`). Thread-safe.
  absl::StatusOr<std::vector<absl::string_view>> Split(
      absl::string_view text) const;

 private:
  struct Compiled;
  PreTokenizer() = default;
  std::vector<Compiled*> patterns_;
};

}  // namespace tpserve

#endif  // TPSERVE_COMMON_PRETOKENIZER_H_
