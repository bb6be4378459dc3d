// Tokenizers: text <-> token ids, loaded from a model's own vocabulary.
//
// Two families, as llama.cpp names them in GGUF `tokenizer.ggml.model`:
//  - "gpt2": byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM). Text is split
//    by the pre-tokenizer regexes, each word mapped to the byte alphabet,
//    then merged by merge rank.
//  - "llama": SentencePiece-style BPE (Llama 2, TinyLlama). Spaces become
//    U+2581, a space is prefixed, symbols merge by score, and characters
//    outside the vocabulary fall back to <0xXX> byte tokens.
// Special tokens (control, user-defined) are cut out of the text before
// either runs: user-defined ones always, control ones only when asked
// (`parse_special`), so user text cannot forge "<|im_end|>".
//
// Tokenizer.json folders (Hugging Face) load the same byte-level BPE; a
// SentencePiece tokenizer.model goes through libsentencepiece
// (sentencepiece_tokenizer.h).
#ifndef TPSERVE_COMMON_TOKENIZER_H_
#define TPSERVE_COMMON_TOKENIZER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/gguf.h"

namespace tpserve {

// GGUF tokenizer.ggml.token_type values.
enum class TokenType : uint8_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct EncodeOptions {
  bool add_bos = false;  // Prepend the BOS token (error if there is none).
  bool add_eos = false;
  // Turn the text of control tokens (e.g. "<|im_start|>") into those
  // tokens. Off for untrusted text: then it is tokenized as plain text.
  bool parse_special = false;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Loads the vocabulary, merges/scores and special tokens of a GGUF file
  // (works for vocabulary-only files without tensors).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromGguf(
      const GgufFile& gguf);

  // Loads a Hugging Face tokenizer.json holding a byte-level BPE model.
  // `bos_id`/`eos_id` come from the model's config (-1 if none).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromHfTokenizerJson(
      absl::string_view json_text, int32_t bos_id, int32_t eos_id);

  // Token ids of `text`, which must be valid UTF-8 (else InvalidArgument).
  virtual absl::StatusOr<std::vector<int32_t>> Encode(
      absl::string_view text, const EncodeOptions& options) const = 0;

  // The bytes a token stands for; may be part of a UTF-8 character. Control
  // tokens give "" unless `render_special`. Out-of-range ids give "".
  virtual std::string TokenBytes(int32_t id, bool render_special) const = 0;

  // The vocabulary entry as stored (e.g. "Ġthe", "▁the"); "" if out of range.
  virtual absl::string_view TokenText(int32_t id) const = 0;

  virtual int32_t vocab_size() const = 0;
  virtual TokenType token_type(int32_t id) const = 0;

  // Whether decoding drops one leading space at the start of a text
  // (SentencePiece's prefix-space rule: the space Encode prefixed). Only at
  // the start of the whole text: generated tokens that follow a prompt keep
  // theirs (StreamingDetokenizer's context).
  virtual bool strips_leading_space() const = 0;

  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  // What the model's metadata says to add when tokenizing a prompt.
  bool add_bos_by_default() const { return add_bos_default_; }
  // End-of-generation tokens: EOS, EOT and similar.
  const std::vector<int32_t>& end_of_generation_ids() const { return eog_ids_; }
  bool IsEndOfGeneration(int32_t id) const;

  // Whole-sequence decode: valid UTF-8 (ill-formed bytes become U+FFFD).
  // `ids` are a text of their own, so the leading space rule applies to the
  // first token that has text (as Hugging Face's decode); to decode tokens
  // that continue a prompt, give the prompt as a StreamingDetokenizer's
  // context.
  std::string Decode(absl::Span<const int32_t> ids, bool render_special) const;

 protected:
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  bool add_bos_default_ = false;
  std::vector<int32_t> eog_ids_;
};

// Building blocks shared by the tokenizer implementations.

// A run of plain text, or one special token cut out of the text.
struct TextFragment {
  absl::string_view text;
  int32_t token = -1;  // >= 0: a special token.
};

// Splits `text` at every occurrence of the tokens `ids` (already ordered
// longest text first, so a longer token wins over its prefix); `text_of`
// gives each token's text.
std::vector<TextFragment> SplitOnSpecialTokens(
    absl::string_view text, absl::Span<const int32_t> ids,
    const std::function<absl::string_view(int32_t)>& text_of);

// The bytes of a SentencePiece piece: U+2581 is a space, and a byte piece
// "<0xAB>" is that one byte.
std::string SpmPieceBytes(absl::string_view piece, bool is_byte_piece);

// Streams text out of a sequence of tokens as they are generated: never
// emits half a UTF-8 character (held until complete), applies the leading
// space rule, and replaces bytes that cannot become valid with U+FFFD.
//
// Text is decoded in context: `context` holds the tokens the streamed ones
// follow (a prompt), whose own text is not emitted. The leading space rule
// (strips_leading_space) drops a space only at the start of the whole text,
// so it applies to the first streamed token only when the context decodes
// to nothing; after "The capital of France is", "▁Paris" gives " Paris".
// The streamed text is therefore Decode(context + ids) minus
// Decode(context), the approach of vLLM's incremental detokenizer and what
// llama.cpp's token_to_piece gives. (Were the context to end inside a UTF-8
// character, those bytes stay the context's: continuation bytes streamed
// after it become U+FFFD.)
class StreamingDetokenizer {
 public:
  StreamingDetokenizer(const Tokenizer& tokenizer, bool render_special,
                       absl::Span<const int32_t> context = {});

  // Text that became complete with `id` (possibly empty).
  std::string Push(int32_t id);
  // Whatever is still held at the end of the sequence (as U+FFFD).
  std::string Finish();

 private:
  const Tokenizer& tokenizer_;
  const bool render_special_;
  bool first_ = true;  // Nothing has decoded to text yet.
  std::string pending_;
};

}  // namespace tpserve

#endif  // TPSERVE_COMMON_TOKENIZER_H_
