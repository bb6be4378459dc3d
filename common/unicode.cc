#include "common/unicode.h"

namespace tpserve {

int Utf8SequenceLength(uint8_t lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;  // Continuation or invalid lead byte.
}

std::optional<uint32_t> DecodeUtf8(absl::string_view text, size_t* pos) {
  const size_t i = *pos;
  const uint8_t lead = static_cast<uint8_t>(text[i]);
  const int len = Utf8SequenceLength(lead);
  *pos = i + 1;
  if (len == 1) {
    if (lead < 0x80) return lead;
    return std::nullopt;
  }
  if (i + len > text.size()) return std::nullopt;
  uint32_t cp = lead & (0x7F >> len);
  for (int k = 1; k < len; ++k) {
    const uint8_t c = static_cast<uint8_t>(text[i + k]);
    if ((c & 0xC0) != 0x80) return std::nullopt;
    cp = (cp << 6) | (c & 0x3F);
  }
  // Overlong forms, surrogates and values past Unicode are ill-formed.
  static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return std::nullopt;
  }
  *pos = i + len;
  return cp;
}

bool IsValidUtf8(absl::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    if (!DecodeUtf8(text, &pos)) return false;
  }
  return true;
}

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

namespace {

// Whether `part` (a lead byte and fewer continuation bytes than it needs)
// can still grow into a well-formed sequence. The second byte carries the
// range limits that rule out overlongs, surrogates and values past U+10FFFF.
bool IsPrefixOfValidSequence(absl::string_view part) {
  const uint8_t lead = static_cast<uint8_t>(part[0]);
  if (lead < 0xC2 || lead > 0xF4) return false;
  for (size_t i = 1; i < part.size(); ++i) {
    const uint8_t c = static_cast<uint8_t>(part[i]);
    if ((c & 0xC0) != 0x80) return false;
    if (i == 1) {
      if (lead == 0xE0 && c < 0xA0) return false;
      if (lead == 0xED && c > 0x9F) return false;
      if (lead == 0xF0 && c < 0x90) return false;
      if (lead == 0xF4 && c > 0x8F) return false;
    }
  }
  return true;
}

}  // namespace

size_t CompleteUtf8Prefix(absl::string_view bytes) {
  // Only the last three bytes can belong to an unfinished sequence: find the
  // last lead byte among them and hold it back if it is still incomplete.
  const size_t n = bytes.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const uint8_t c = static_cast<uint8_t>(bytes[n - back]);
    if ((c & 0xC0) == 0x80) continue;
    const size_t len = Utf8SequenceLength(c);
    if (len > back && IsPrefixOfValidSequence(bytes.substr(n - back))) {
      return n - back;
    }
    break;
  }
  return n;
}

std::string SanitizeUtf8(absl::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    const size_t start = pos;
    if (DecodeUtf8(bytes, &pos)) {
      out.append(bytes.data() + start, pos - start);
      continue;
    }
    // One U+FFFD per maximal subpart (Unicode's recommended practice): a
    // truncated sequence is one replacement, not one per byte.
    const size_t len = Utf8SequenceLength(bytes[start]);
    size_t end = start + 1;
    while (end < bytes.size() && end - start < len &&
           IsPrefixOfValidSequence(bytes.substr(start, end - start + 1))) {
      ++end;
    }
    pos = end;
    AppendUtf8(0xFFFD, out);
  }
  return out;
}

namespace {

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes map to themselves, the
// other 68 bytes to U+0100 onwards, in byte order.
struct ByteAlphabet {
  std::array<std::string, 256> to_unicode;
  std::array<int16_t, 512> to_byte;  // Indexed by code point (< 0x200).

  ByteAlphabet() {
    to_byte.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') ||
                             (b >= 0xA1 && b <= 0xAC) ||
                             (b >= 0xAE && b <= 0xFF);
      const int cp = printable ? b : next++;
      AppendUtf8(cp, to_unicode[b]);
      to_byte[cp] = static_cast<int16_t>(b);
    }
  }
};

const ByteAlphabet& Alphabet() {
  static const ByteAlphabet* alphabet = new ByteAlphabet();
  return *alphabet;
}

}  // namespace

const std::array<std::string, 256>& ByteToUnicode() {
  return Alphabet().to_unicode;
}

std::optional<uint8_t> UnicodeToByte(uint32_t cp) {
  if (cp >= 512) return std::nullopt;
  const int16_t b = Alphabet().to_byte[cp];
  if (b < 0) return std::nullopt;
  return static_cast<uint8_t>(b);
}

}  // namespace tpserve
