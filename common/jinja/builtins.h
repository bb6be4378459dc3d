// jinja2's operators, filters, tests and globals, and the Python methods
// templates call on strings, dicts and lists (str.strip, dict.items, ...).
// Names outside this set are errors that name them (e.g. "unknown filter
// 'wordwrap'"), never silently ignored.
#ifndef TPSERVE_COMMON_JINJA_BUILTINS_H_
#define TPSERVE_COMMON_JINJA_BUILTINS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/jinja/interpreter.h"
#include "common/jinja/value.h"

namespace tpserve::jinja {

// Python's TypeError (and the like): the template's, or its input's, fault.
inline absl::Status TypeError(absl::string_view what) {
  return absl::InvalidArgumentError(what);
}

// ---- operators.cc: the object model's operations ----

// `obj.name` as jinja2 resolves it: a method of str/dict/list first (a
// bound method), then a dict key or namespace attribute, else Undefined
// saying what was missing. An error only when obj is Undefined.
absl::StatusOr<Value> GetAttr(const Value& obj, const std::string& name);
// `obj[key]`: item first, then attribute (jinja2's order). Out-of-range
// indexes and missing keys are Undefined.
absl::StatusOr<Value> GetItem(const Value& obj, const Value& key);
// obj[start:stop:step] on a list, tuple or str (code points).
absl::StatusOr<Value> SliceOf(const Value& obj, const Value& start,
                              const Value& stop, const Value& step);
// + - * / // % ** on numbers, + and * on str/list, % formatting on str.
absl::StatusOr<Value> Arithmetic(Interpreter& in, absl::string_view op,
                                 const Value& a, const Value& b);
// `item in container`.
absl::StatusOr<bool> Contains(const Value& container, const Value& item);
// What `for` walks: list/tuple items, dict keys, str characters, what a
// generator has left (using it up); an Undefined is empty. Other types are
// a TypeError.
absl::StatusOr<std::vector<Value>> Iterate(const Value& value);
// An error for using an Undefined where a value is needed.
absl::Status UndefinedError(const Value& undefined);
// Python's % formatting and jinja2's `format` filter: %s %r %d %i %f %x %%.
// With `escape` (a Markup's %), the arguments are HTML-escaped as they go
// in.
absl::StatusOr<std::string> PercentFormat(Interpreter& in,
                                          absl::string_view format,
                                          const std::vector<Value>& args,
                                          bool escape = false);

// ---- builtins.cc: filters; methods.cc: tests, methods, globals ----

absl::StatusOr<Value> ApplyFilter(Interpreter& in, absl::string_view name,
                                  const Value& input, CallArgs args);
absl::StatusOr<bool> ApplyTest(Interpreter& in, absl::string_view name,
                               const Value& input, const CallArgs& args);
// Whether `obj.name` is a method (str.strip, dict.items, list.count, ...).
bool IsMethod(const Value& obj, absl::string_view name);
absl::StatusOr<Value> CallMethod(Interpreter& in, const Value& obj,
                                 absl::string_view name, CallArgs args);
// range, dict, namespace, raise_exception, strftime_now.
void AddGlobals(Dict& globals);

}  // namespace tpserve::jinja

#endif  // TPSERVE_COMMON_JINJA_BUILTINS_H_
