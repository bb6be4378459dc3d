// Splits a template into tokens as jinja2's lexer does with the settings
// transformers uses (trim_blocks, lstrip_blocks, keep_trailing_newline off):
// whitespace control (`{%-`, `-%}`, `{%+`, `+%}`) is resolved here, so the
// parser sees text tokens that are already what gets printed.
#ifndef TPSERVE_COMMON_JINJA_LEXER_H_
#define TPSERVE_COMMON_JINJA_LEXER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tpserve::jinja {

struct Token {
  enum class Kind {
    kText,        // Template data, printed as is.
    kVarBegin,    // {{
    kVarEnd,      // }}
    kBlockBegin,  // {%
    kBlockEnd,    // %}
    kName,
    kString,  // text holds the unescaped value.
    kInt,
    kFloat,
    kOperator,  // text: + - * / // % ** ~ == != < <= > >= = ( ) [ ] { } , . : |
    kEnd,
  };
  Kind kind;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
};

// Errors name the line, e.g. "line 3: unterminated string".
absl::StatusOr<std::vector<Token>> Tokenize(absl::string_view source);

}  // namespace tpserve::jinja

#endif  // TPSERVE_COMMON_JINJA_LEXER_H_
