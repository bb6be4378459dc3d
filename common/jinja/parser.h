// Builds the syntax tree of a template (see ast.h) from its tokens, with
// jinja2's grammar and operator precedence (jinja2/parser.py). A construct
// outside what the engine runs (e.g. `{% include %}`, recursive loops) is
// an error that names it and its line.
#ifndef TPSERVE_COMMON_JINJA_PARSER_H_
#define TPSERVE_COMMON_JINJA_PARSER_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/jinja/ast.h"

namespace tpserve::jinja {

// Nesting (brackets, operators, blocks) deeper than this is refused, which
// bounds the parser's and the interpreter's recursion on untrusted input.
inline constexpr int kMaxParseDepth = 200;

absl::StatusOr<StmtList> Parse(absl::string_view source);

}  // namespace tpserve::jinja

#endif  // TPSERVE_COMMON_JINJA_PARSER_H_
