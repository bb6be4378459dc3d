// Python's str operations on UTF-8 text, as templates call them: strip,
// split, replace, case changes. Whitespace is Python's (str.isspace, which
// includes Unicode spaces); case changes touch ASCII letters only (a known
// difference from Python for non-ASCII letters, which templates do not
// case-change in practice).
#ifndef TPSERVE_COMMON_JINJA_TEXT_H_
#define TPSERVE_COMMON_JINJA_TEXT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/jinja/value.h"

namespace tpserve::jinja {

bool IsUnicodeSpace(uint32_t c);
// (byte offset, code point) of each character.
std::vector<std::pair<size_t, uint32_t>> CodePoints(absl::string_view s);
// str.strip/lstrip/rstrip: whitespace, or any character of `chars`.
std::string Strip(absl::string_view s, const std::optional<std::string>& chars,
                  bool left, bool right);
// str.split / str.rsplit (sep unset: runs of whitespace).
std::vector<Value> Split(absl::string_view s,
                         const std::optional<std::string>& sep,
                         int64_t maxsplit, bool from_right);
std::string Lower(absl::string_view s);
std::string Upper(absl::string_view s);
std::string Capitalize(absl::string_view s);
// Python's str.title.
std::string Title(absl::string_view s);
// str.replace (count < 0: all);
// nullopt when the result would exceed max_bytes (it stops building there).
std::optional<std::string> Replace(absl::string_view s, absl::string_view from,
                                   absl::string_view to, int64_t count,
                                   size_t max_bytes);

// str.splitlines(): lines end at \n, \r, \r\n, \v, \f, \x1c-\x1e, \x85,
// U+2028 and U+2029 (the break itself is dropped unless keepends).
std::vector<std::string> SplitLines(absl::string_view s, bool keepends);
// HTML escaping as markupsafe does it: & < > " ' become entities.
std::string HtmlEscape(absl::string_view s);
// markupsafe.escape(v): a Markup unchanged, anything else as the Markup of
// its escaped str().
Value Escape(const Value& v);
// A string result of an operation on `like`: a Markup when `like` is one
// (markupsafe's methods keep strings marked), a str otherwise.
Value SameString(const Value& like, std::string s);

}  // namespace tpserve::jinja

#endif  // TPSERVE_COMMON_JINJA_TEXT_H_
