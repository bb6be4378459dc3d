// The text side of one generation: token ids in, UTF-8 text out, with stop
// strings applied. It is the one place completion text is made: every door
// (`tpserve generate`, gRPC Generate and GenerateStream, the HTTP door's
// unary and streamed responses) gets its text from here, so streaming (each
// Push's text is one chunk) and unary responses (emitted() at the end) give
// the same text.
//
// Tokens are decoded in the context of the prompt (StreamingDetokenizer):
// the text of the generated tokens is Decode(prompt + generated) minus
// Decode(prompt), so a SentencePiece "▁Paris" after "The capital of France
// is" keeps its space, as llama.cpp and vLLM return it.
//
// Invariant: the concatenation of every Push's text and Finish's equals
// that in-context decode of all tokens pushed, truncated where the first
// stop string occurrence begins. Text that could still become the start of a
// stop string is held back until it cannot; the stop text itself and
// anything after it are never emitted.
//
// Cost is linear in the output: each byte is fed once through a matcher per
// stop string (KMP), and only the held-back tail (shorter than the longest
// stop string) is buffered.
#ifndef TPSERVE_COORDINATOR_OUTPUT_TEXT_H_
#define TPSERVE_COORDINATOR_OUTPUT_TEXT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/tokenizer.h"

namespace tpserve {

class OutputText {
 public:
  // `tokenizer` must outlive this; `prompt` is the context the generated
  // tokens follow (only read here). `stop` strings must be non-empty (as
  // PrepareRequest ensures); an empty one aborts.
  OutputText(const Tokenizer& tokenizer, absl::Span<const int32_t> prompt,
             std::vector<std::string> stop, bool render_special);

  struct Delta {
    std::string text;  // Safe to emit now (possibly empty).
    bool stopped = false;
    std::string matched_stop;  // Set with stopped.
  };

  // Feeds one generated token; returns the text that is now safe to emit.
  // When a stop string appears (it may span tokens and start inside a
  // token's text), returns everything before it, stopped = true and the
  // string. If several occur, the one starting first wins (ties: the
  // shorter, which completed first). Once stopped, further calls return
  // empty text with stopped = true.
  Delta Push(int32_t token);

  // End of generation (length, stop token): releases whatever is held
  // (incomplete UTF-8 as U+FFFD). The released tail can itself complete a
  // stop string (a stop containing U+FFFD); stopped() tells.
  std::string Finish();

  // All text emitted so far.
  const std::string& emitted() const { return emitted_; }
  bool stopped() const { return stopped_; }
  // The stop string that ended the text ("" when none did).
  const std::string& matched_stop() const { return matched_stop_; }

 private:
  // One stop string and its KMP matcher state.
  struct Matcher {
    std::string text;
    std::vector<size_t> failure;  // KMP failure function of `text`.
    size_t matched = 0;           // Longest prefix of `text` ending the output.
  };

  // Appends decoded `piece` to the held text and matches it; returns what
  // may be emitted, or everything before the first stop occurrence.
  std::string Consume(absl::string_view piece, bool final);

  StreamingDetokenizer detokenizer_;
  std::vector<Matcher> matchers_;
  size_t max_stop_ = 0;  // Longest stop string, in bytes.
  // Decoded but not yet emitted: could be the start of a stop string.
  std::string held_;
  std::string emitted_;
  bool stopped_ = false;
  bool finished_ = false;
  std::string matched_stop_;
};

}  // namespace tpserve

#endif  // TPSERVE_COORDINATOR_OUTPUT_TEXT_H_
