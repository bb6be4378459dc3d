#include "common/jinja/lexer.h"

#include <cerrno>
#include <cstdlib>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/unicode.h"

namespace tpserve::jinja {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
         c == '\f';
}

// jinja2 turns "\r\n" and "\r" into "\n" everywhere, and (without
// keep_trailing_newline) drops one newline at the very end.
std::string NormalizeNewlines(absl::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Python's "unicode-escape" decoding of a string literal's body, which is
// what jinja2 applies.
absl::StatusOr<std::string> Unescape(absl::string_view raw, int line) {
  std::string out;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\\' || i + 1 == raw.size()) {
      out += raw[i];
      continue;
    }
    const char c = raw[++i];
    switch (c) {
      case '\n':
        break;  // Line continuation.
      case '\\':
      case '\'':
      case '"':
        out += c;
        break;
      case 'a':
        out += '\a';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'v':
        out += '\v';
        break;
      case 'x':
      case 'u':
      case 'U': {
        const int digits = c == 'x' ? 2 : (c == 'u' ? 4 : 8);
        uint32_t cp = 0;
        for (int d = 0; d < digits; ++d) {
          const int h = i + 1 + d < raw.size() ? HexDigit(raw[i + 1 + d]) : -1;
          if (h < 0) {
            return absl::InvalidArgumentError(
                absl::StrCat("line ", line, ": truncated \\", std::string(1, c),
                             " escape in a string literal"));
          }
          cp = cp * 16 + h;
        }
        i += digits;
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
          return absl::InvalidArgumentError(
              absl::StrCat("line ", line, ": escape \\", std::string(1, c),
                           " names no Unicode character"));
        }
        AppendUtf8(cp, out);
        break;
      }
      default:
        if (c >= '0' && c <= '7') {
          uint32_t cp = c - '0';
          for (int d = 0; d < 2 && i + 1 < raw.size() && raw[i + 1] >= '0' &&
                          raw[i + 1] <= '7';
               ++d) {
            cp = cp * 8 + (raw[++i] - '0');
          }
          AppendUtf8(cp, out);
        } else if (c == 'N') {
          return absl::InvalidArgumentError(absl::StrCat(
              "line ", line, ": \\N{...} escapes are not supported"));
        } else {
          out += '\\';  // Python keeps unknown escapes as they are.
          out += c;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string source) : src_(std::move(source)) {}

  absl::StatusOr<std::vector<Token>> Run() {
    bool line_starting = true;
    while (pos_ < src_.size()) {
      const size_t tag = FindTagStart(pos_);
      if (tag == std::string::npos) {
        EmitText(src_.substr(pos_));
        pos_ = src_.size();
        break;
      }
      std::string text = src_.substr(pos_, tag - pos_);
      const char kind = src_[tag + 1];  // '{', '%' or '#'.
      size_t after = tag + 2;
      const char sign = after < src_.size() ? src_[after] : '\0';
      if (sign == '-') {
        while (!text.empty() && IsSpace(text.back())) text.pop_back();
        ++after;
      } else if (sign == '+' && kind != '{') {
        ++after;  // No lstrip for this tag.
      } else if (kind != '{') {
        const size_t l_pos = text.rfind('\n') + 1;  // 0 when none.
        if (l_pos > 0 || line_starting) {
          bool blank = l_pos < text.size();
          for (size_t i = l_pos; i < text.size(); ++i) {
            blank = blank && IsSpace(text[i]);
          }
          if (blank) text.resize(l_pos);
        }
      }
      EmitText(std::move(text));
      MoveTo(after);
      absl::Status s;
      if (kind == '#') {
        s = Comment();
      } else if (kind == '%' && IsRawTag()) {
        s = Raw();
      } else {
        s = Tag(kind == '{');
      }
      if (!s.ok()) return s;
      line_starting = pos_ > 0 && src_[pos_ - 1] == '\n';
    }
    tokens_.push_back(Token{Token::Kind::kEnd, "", 0, 0, line_});
    return std::move(tokens_);
  }

 private:
  size_t FindTagStart(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos;
         i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() &&
          (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) {
        return i;
      }
    }
    return std::string::npos;
  }

  // Moves to `to`, counting the newlines passed.
  void MoveTo(size_t to) {
    for (; pos_ < to && pos_ < src_.size(); ++pos_) line_ += src_[pos_] == '\n';
  }

  void EmitText(std::string text) {
    if (text.empty()) return;
    tokens_.push_back(Token{Token::Kind::kText, std::move(text), 0, 0, line_});
  }

  // After an end marker: "-" strips all whitespace that follows; a block or
  // comment end (trim_blocks) eats one newline unless marked "+".
  void AfterEnd(char sign, bool trims) {
    if (sign == '-') {
      while (pos_ < src_.size() && IsSpace(src_[pos_])) MoveTo(pos_ + 1);
    } else if (sign != '+' && trims && pos_ < src_.size() &&
               src_[pos_] == '\n') {
      MoveTo(pos_ + 1);
    }
  }

  absl::Status Comment() {
    const size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_, ": unterminated comment"));
    }
    const char sign = end > pos_ ? src_[end - 1] : '\0';
    MoveTo(end + 2);
    AfterEnd(sign, /*trims=*/true);
    return absl::OkStatus();
  }

  // Whether the block tag at pos_ is `{% raw %}`.
  bool IsRawTag() const {
    size_t i = pos_;
    while (i < src_.size() && IsSpace(src_[i])) ++i;
    if (src_.compare(i, 3, "raw") != 0) return false;
    i += 3;
    while (i < src_.size() && IsSpace(src_[i])) ++i;
    return src_.compare(i, 2, "%}") == 0 || src_.compare(i, 3, "-%}") == 0;
  }

  absl::Status Raw() {
    size_t close = src_.find("%}", pos_);
    const char open_sign = src_[close - 1];
    MoveTo(close + 2);
    AfterEnd(open_sign == '-' ? '-' : '\0', /*trims=*/false);
    // The body runs to the next {% endraw %} (whitespace control allowed).
    for (size_t i = src_.find("{%", pos_); i != std::string::npos;
         i = src_.find("{%", i + 2)) {
      size_t j = i + 2;
      const bool strip_before = j < src_.size() && src_[j] == '-';
      if (j < src_.size() && (src_[j] == '-' || src_[j] == '+')) ++j;
      while (j < src_.size() && IsSpace(src_[j])) ++j;
      if (src_.compare(j, 6, "endraw") != 0) continue;
      j += 6;
      while (j < src_.size() && IsSpace(src_[j])) ++j;
      char sign = '\0';
      if (j < src_.size() && (src_[j] == '-' || src_[j] == '+'))
        sign = src_[j++];
      if (src_.compare(j, 2, "%}") != 0) continue;
      std::string body = src_.substr(pos_, i - pos_);
      if (strip_before) {
        while (!body.empty() && IsSpace(body.back())) body.pop_back();
      }
      EmitText(std::move(body));
      MoveTo(j + 2);
      AfterEnd(sign, /*trims=*/true);
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError(
        absl::StrCat("line ", line_, ": {% raw %} without {% endraw %}"));
  }

  // The tokens inside {{ }} or {% %}, up to the end marker at bracket
  // depth 0 (so `{{ {'a': {'b': 1}} }}` ends at the last `}}`).
  absl::Status Tag(bool variable) {
    tokens_.push_back(
        Token{variable ? Token::Kind::kVarBegin : Token::Kind::kBlockBegin, "",
              0, 0, line_});
    int depth = 0;
    while (true) {
      while (pos_ < src_.size() && IsSpace(src_[pos_])) MoveTo(pos_ + 1);
      if (pos_ >= src_.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "line ", line_, ": unterminated ", variable ? "{{" : "{%"));
      }
      const char c = src_[pos_];
      const absl::string_view end = variable ? "}}" : "%}";
      if (depth == 0) {
        char sign = '\0';
        size_t at = pos_;
        if ((c == '-' || (c == '+' && !variable)) &&
            src_.compare(pos_ + 1, 2, end.data(), 2) == 0) {
          sign = c;
          ++at;
        }
        if (src_.compare(at, 2, end.data(), 2) == 0) {
          tokens_.push_back(
              Token{variable ? Token::Kind::kVarEnd : Token::Kind::kBlockEnd,
                    "", 0, 0, line_});
          pos_ = at + 2;
          AfterEnd(sign, /*trims=*/!variable);
          return absl::OkStatus();
        }
      }
      if (absl::ascii_isalpha(c) || c == '_') {
        size_t e = pos_;
        while (e < src_.size() &&
               (absl::ascii_isalnum(src_[e]) || src_[e] == '_')) {
          ++e;
        }
        Push(Token::Kind::kName, src_.substr(pos_, e - pos_));
        pos_ = e;
      } else if (absl::ascii_isdigit(c)) {
        if (absl::Status s = Number(); !s.ok()) return s;
      } else if (c == '\'' || c == '"') {
        if (absl::Status s = String(c); !s.ok()) return s;
      } else {
        static constexpr absl::string_view kTwo[] = {
            "//", "**", "==", "!=", "<=", ">="};
        std::string op(1, c);
        for (absl::string_view two : kTwo) {
          if (src_.compare(pos_, 2, two.data(), 2) == 0) op = std::string(two);
        }
        if (op.size() == 1 &&
            absl::string_view("+-*/%~<>=()[]{},.:|").find(c) ==
                absl::string_view::npos) {
          return absl::InvalidArgumentError(
              absl::StrCat("line ", line_, ": unexpected character '",
                           std::string(1, c), "'"));
        }
        if (op == "(" || op == "[" || op == "{") ++depth;
        if ((op == ")" || op == "]" || op == "}") && depth > 0) --depth;
        Push(Token::Kind::kOperator, op);
        pos_ += op.size();
      }
    }
  }

  void Push(Token::Kind kind, std::string text) {
    tokens_.push_back(Token{kind, std::move(text), 0, 0, line_});
  }

  absl::Status Number() {
    size_t e = pos_;
    auto digits = [&] {
      while (e < src_.size() && (absl::ascii_isdigit(src_[e]) ||
                                 (src_[e] == '_' && e + 1 < src_.size() &&
                                  absl::ascii_isdigit(src_[e + 1])))) {
        ++e;
      }
    };
    digits();
    bool is_float = false;
    if (e + 1 < src_.size() && src_[e] == '.' &&
        absl::ascii_isdigit(src_[e + 1])) {
      is_float = true;
      ++e;
      digits();
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t x = e + 1;
      if (x < src_.size() && (src_[x] == '+' || src_[x] == '-')) ++x;
      if (x < src_.size() && absl::ascii_isdigit(src_[x])) {
        is_float = true;
        e = x;
        digits();
      }
    }
    std::string text;
    for (size_t i = pos_; i < e; ++i) {
      if (src_[i] != '_') text += src_[i];
    }
    Token t{is_float ? Token::Kind::kFloat : Token::Kind::kInt, text, 0, 0,
            line_};
    errno = 0;
    if (is_float) {
      t.float_value = std::strtod(text.c_str(), nullptr);
    } else {
      t.int_value = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE) {
        return absl::InvalidArgumentError(absl::StrCat(
            "line ", line_, ": integer ", text, " is out of range"));
      }
    }
    tokens_.push_back(std::move(t));
    pos_ = e;
    return absl::OkStatus();
  }

  absl::Status String(char quote) {
    const int line = line_;
    size_t e = pos_ + 1;
    while (e < src_.size() && src_[e] != quote) {
      e += src_[e] == '\\' ? 2 : 1;
    }
    if (e >= src_.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line, ": unterminated string"));
    }
    auto value =
        Unescape(absl::string_view(src_).substr(pos_ + 1, e - pos_ - 1), line);
    if (!value.ok()) return value.status();
    MoveTo(e + 1);
    tokens_.push_back(
        Token{Token::Kind::kString, std::move(*value), 0, 0, line});
    return absl::OkStatus();
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<Token> tokens_;
};

}  // namespace

absl::StatusOr<std::vector<Token>> Tokenize(absl::string_view source) {
  return Lexer(NormalizeNewlines(source)).Run();
}

}  // namespace tpserve::jinja
