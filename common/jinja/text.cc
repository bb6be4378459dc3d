#include "common/jinja/text.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/unicode.h"

namespace tpserve::jinja {

// Python's str.isspace for one code point.
bool IsUnicodeSpace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 ||
         c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
         c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
         c == 0x3000;
}

std::vector<std::pair<size_t, uint32_t>> CodePoints(absl::string_view s) {
  std::vector<std::pair<size_t, uint32_t>> out;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t start = pos;
    std::optional<uint32_t> cp = DecodeUtf8(s, &pos);
    out.emplace_back(start, cp.value_or(0xfffd));
  }
  return out;
}

// str.strip/lstrip/rstrip: whitespace, or any code point of `chars`.
std::string Strip(absl::string_view s, const std::optional<std::string>& chars,
                  bool left, bool right) {
  std::vector<uint32_t> set;
  if (chars) {
    for (auto [at, cp] : CodePoints(*chars)) set.push_back(cp);
  }
  auto strip = [&](uint32_t cp) {
    return chars ? std::find(set.begin(), set.end(), cp) != set.end()
                 : IsUnicodeSpace(cp);
  };
  const auto cps = CodePoints(s);
  size_t b = 0, e = cps.size();
  if (left) {
    while (b < e && strip(cps[b].second)) ++b;
  }
  if (right) {
    while (e > b && strip(cps[e - 1].second)) --e;
  }
  const size_t begin = b < cps.size() ? cps[b].first : s.size();
  const size_t end = e < cps.size() ? cps[e].first : s.size();
  return std::string(s.substr(begin, end - begin));
}

// str.split / str.rsplit.
std::vector<Value> Split(absl::string_view s,
                         const std::optional<std::string>& sep,
                         int64_t maxsplit, bool from_right) {
  std::vector<std::string> parts;
  if (!sep) {  // Runs of whitespace; no empty parts.
    std::vector<std::pair<size_t, size_t>> words;  // Byte spans.
    size_t begin = 0;
    bool in_word = false;
    for (auto [at, cp] : CodePoints(s)) {
      if (IsUnicodeSpace(cp)) {
        if (in_word) words.emplace_back(begin, at);
        in_word = false;
      } else if (!in_word) {
        begin = at;
        in_word = true;
      }
    }
    if (in_word) words.emplace_back(begin, s.size());
    const size_t n = words.size();
    if (maxsplit < 0 || static_cast<uint64_t>(maxsplit) + 1 >= n) {
      for (auto [b, e] : words) parts.emplace_back(s.substr(b, e - b));
    } else if (!from_right) {
      // maxsplit words, then the rest as it is (trailing space included).
      for (size_t i = 0; i < static_cast<size_t>(maxsplit); ++i) {
        parts.emplace_back(
            s.substr(words[i].first, words[i].second - words[i].first));
      }
      parts.emplace_back(s.substr(words[maxsplit].first));
    } else {
      const size_t keep = n - static_cast<size_t>(maxsplit);
      parts.emplace_back(s.substr(0, words[keep - 1].second));
      for (size_t i = keep; i < n; ++i) {
        parts.emplace_back(
            s.substr(words[i].first, words[i].second - words[i].first));
      }
    }
  } else if (!from_right) {
    size_t pos = 0;
    while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
      const size_t at = s.find(*sep, pos);
      if (at == absl::string_view::npos) break;
      parts.emplace_back(s.substr(pos, at - pos));
      pos = at + sep->size();
    }
    parts.emplace_back(s.substr(pos));
  } else {
    size_t end = s.size();
    std::vector<std::string> rev;
    while (maxsplit < 0 || static_cast<int64_t>(rev.size()) < maxsplit) {
      if (end < sep->size()) break;
      const size_t at = s.rfind(*sep, end - sep->size());
      if (at == absl::string_view::npos) break;
      rev.emplace_back(s.substr(at + sep->size(), end - at - sep->size()));
      end = at;
    }
    rev.emplace_back(s.substr(0, end));
    parts.assign(rev.rbegin(), rev.rend());
  }
  std::vector<Value> out;
  for (std::string& p : parts) out.push_back(Value::String(std::move(p)));
  return out;
}

std::string Lower(absl::string_view s) { return absl::AsciiStrToLower(s); }

std::string Upper(absl::string_view s) { return absl::AsciiStrToUpper(s); }

std::string Capitalize(absl::string_view s) {
  std::string out = Lower(s);
  if (!out.empty()) out[0] = absl::ascii_toupper(out[0]);
  return out;
}

// Python's str.title: a letter after a non-letter starts a word.
std::string Title(absl::string_view s) {
  std::string out(s);
  bool prev_cased = false;
  for (char& c : out) {
    if (absl::ascii_isalpha(c)) {
      c = prev_cased ? absl::ascii_tolower(c) : absl::ascii_toupper(c);
      prev_cased = true;
    } else {
      prev_cased = static_cast<uint8_t>(c) >= 0x80 && prev_cased;
    }
  }
  return out;
}

std::optional<std::string> Replace(absl::string_view s, absl::string_view from,
                                   absl::string_view to, int64_t count,
                                   size_t max_bytes) {
  std::string out;
  size_t pos = 0;
  int64_t done = 0;
  if (from.empty()) {  // Python inserts `to` between every character.
    const auto cps = CodePoints(s);
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || done < count) {
        absl::StrAppend(&out, to);
        ++done;
      }
      if (out.size() > max_bytes) return std::nullopt;
      if (i < cps.size()) {
        const size_t end = i + 1 < cps.size() ? cps[i + 1].first : s.size();
        absl::StrAppend(&out, s.substr(cps[i].first, end - cps[i].first));
      }
    }
    return out;
  }
  while (count < 0 || done < count) {
    const size_t at = s.find(from, pos);
    if (at == absl::string_view::npos) break;
    absl::StrAppend(&out, s.substr(pos, at - pos));
    absl::StrAppend(&out, to);
    if (out.size() > max_bytes) return std::nullopt;
    pos = at + from.size();
    ++done;
  }
  absl::StrAppend(&out, s.substr(pos));
  return out;
}

std::vector<std::string> SplitLines(absl::string_view s, bool keepends) {
  std::vector<std::string> lines;
  size_t start = 0, pos = 0;
  while (pos < s.size()) {
    const size_t at = pos;
    const uint32_t c = DecodeUtf8(s, &pos).value_or(0xfffd);
    const bool is_break = c == '\n' || c == '\r' || c == 0x0b || c == 0x0c ||
                          (c >= 0x1c && c <= 0x1e) || c == 0x85 ||
                          c == 0x2028 || c == 0x2029;
    if (!is_break) continue;
    if (c == '\r' && pos < s.size() && s[pos] == '\n') ++pos;
    lines.emplace_back(s.substr(start, (keepends ? pos : at) - start));
    start = pos;
  }
  if (start < s.size()) lines.emplace_back(s.substr(start));
  return lines;
}

std::string HtmlEscape(absl::string_view s) {
  return absl::StrReplaceAll(s, {{"&", "&amp;"},
                                 {"<", "&lt;"},
                                 {">", "&gt;"},
                                 {"\"", "&#34;"},
                                 {"'", "&#39;"}});
}

Value Escape(const Value& v) {
  if (v.is_markup()) return v;
  return Value::Markup(HtmlEscape(Str(v)));
}

Value SameString(const Value& like, std::string s) {
  return like.is_markup() ? Value::Markup(std::move(s))
                          : Value::String(std::move(s));
}

}  // namespace tpserve::jinja
