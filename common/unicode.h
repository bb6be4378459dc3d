// UTF-8 helpers for tokenizers and streaming text, and the GPT-2 byte-level
// alphabet (each byte 0..255 as a printable Unicode character).
#ifndef TPSERVE_COMMON_UNICODE_H_
#define TPSERVE_COMMON_UNICODE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace tpserve {

// Length of the UTF-8 sequence a lead byte starts (1 for ASCII and for bytes
// that cannot start a sequence, so callers always advance).
int Utf8SequenceLength(uint8_t lead);

// Whether `text` is well-formed UTF-8 (no overlongs, surrogates or code
// points past U+10FFFF).
bool IsValidUtf8(absl::string_view text);

// Appends code point `cp` encoded as UTF-8.
void AppendUtf8(uint32_t cp, std::string& out);

// Splits `bytes` into what can be emitted now and what must wait: returns the
// length of the longest prefix that does not end inside a sequence that more
// bytes could still complete. Invalid bytes are part of the prefix (callers
// replace them when emitting).
size_t CompleteUtf8Prefix(absl::string_view bytes);

// Replaces every ill-formed sequence with U+FFFD, so output is valid UTF-8.
std::string SanitizeUtf8(absl::string_view bytes);

// GPT-2 byte-level BPE alphabet: byte b <-> a printable code point, e.g.
// ' ' -> 'Ġ' (U+0120), '\n' -> 'Ċ' (U+010A).
const std::array<std::string, 256>& ByteToUnicode();
// The byte behind one code point of that alphabet, or nullopt.
std::optional<uint8_t> UnicodeToByte(uint32_t cp);

// Decodes the code point at text[*pos] and advances *pos; nullopt (and
// advances by one byte) on an ill-formed sequence.
std::optional<uint32_t> DecodeUtf8(absl::string_view text, size_t* pos);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_UNICODE_H_
