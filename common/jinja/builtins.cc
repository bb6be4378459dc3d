// jinja2's filters and tests, Python's str/dict/list methods, and the
// globals transformers gives chat templates. Each follows the Python
// implementation (jinja2/filters.py, jinja2/tests.py, CPython's str), so a
// template prints what it prints under jinja2.
#include "common/jinja/builtins.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/jinja/text.h"
#include "common/status_macros.h"
#include "common/unicode.h"

namespace tpserve::jinja {
namespace {

// Arguments of a builtin by position or keyword, against its Python
// signature `names`.
class Params {
 public:
  Params(absl::string_view fn, const CallArgs& args,
         std::vector<absl::string_view> names)
      : fn_(fn), args_(args), names_(std::move(names)) {}

  // Unknown keywords and too many positionals are errors, as in Python.
  absl::Status Check() const {
    if (args_.positional.size() > names_.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(fn_, "() takes at most ", names_.size(),
                       " arguments, got ", args_.positional.size()));
    }
    for (const auto& [name, value] : args_.keyword) {
      if (std::find(names_.begin(), names_.end(), name) == names_.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            fn_, "() got an unexpected keyword argument '", name, "'"));
      }
    }
    return absl::OkStatus();
  }
  const Value* Get(size_t i) const {
    if (i < args_.positional.size()) return &args_.positional[i];
    for (const auto& [name, value] : args_.keyword) {
      if (name == names_[i]) return &value;
    }
    return nullptr;
  }
  Value Or(size_t i, Value fallback) const {
    const Value* v = Get(i);
    return v != nullptr ? *v : fallback;
  }
  bool Bool(size_t i, bool fallback) const {
    const Value* v = Get(i);
    return v != nullptr ? v->Truthy() : fallback;
  }
  absl::StatusOr<std::string> String(size_t i, std::string fallback) const {
    const Value* v = Get(i);
    if (v == nullptr || v->is_none()) return fallback;
    if (!v->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(
          fn_, "(): ", names_[i], " must be a string, not ", v->TypeName()));
    }
    return v->AsString();
  }
  absl::StatusOr<int64_t> Int(size_t i, int64_t fallback) const {
    const Value* v = Get(i);
    if (v == nullptr || v->is_none()) return fallback;
    if (v->kind() != Value::Kind::kInt && v->kind() != Value::Kind::kBool) {
      return absl::InvalidArgumentError(absl::StrCat(
          fn_, "(): ", names_[i], " must be an integer, not ", v->TypeName()));
    }
    return v->kind() == Value::Kind::kBool ? v->AsBool() : v->AsInt();
  }

 private:
  absl::string_view fn_;
  const CallArgs& args_;
  std::vector<absl::string_view> names_;
};

absl::Status NeedString(absl::string_view fn, const Value& v) {
  if (v.is_undefined()) return UndefinedError(v);
  return TypeError(absl::StrCat(fn, ": expected a string, got ", v.TypeName()));
}

// The key sort/unique/min/max/dictsort compare: lowercased strings unless
// case_sensitive.
Value SortKey(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string())
    return Value::String(Lower(v.AsString()));
  return v;
}

absl::StatusOr<Value> AttributeOf(const Value& item, absl::string_view path) {
  // "a.b" walks attributes; "0" is an index (jinja2's make_attrgetter).
  Value v = item;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    int64_t index;
    if (absl::SimpleAtoi(part, &index)) {
      TP_ASSIGN_OR_RETURN(v, GetItem(v, Value::Int(index)));
    } else {
      TP_ASSIGN_OR_RETURN(v, GetItem(v, Value::String(std::string(part))));
    }
  }
  return v;
}

absl::StatusOr<std::vector<Value>> Sorted(
    std::vector<Value> items, bool reverse, bool case_sensitive,
    const std::optional<std::string>& attr) {
  std::vector<std::pair<Value, Value>> keyed;
  for (Value& item : items) {
    Value key = item;
    if (attr) {
      TP_ASSIGN_OR_RETURN(key, AttributeOf(item, *attr));
    }
    keyed.emplace_back(SortKey(key, case_sensitive), std::move(item));
  }
  absl::Status error;
  std::stable_sort(
      keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
        absl::StatusOr<int> c =
            reverse ? Compare(b.first, a.first) : Compare(a.first, b.first);
        if (!c.ok()) {
          error = c.status();
          return false;
        }
        return *c < 0;
      });
  TP_RETURN_IF_ERROR(error);
  std::vector<Value> out;
  for (auto& [key, item] : keyed) out.push_back(std::move(item));
  return out;
}

absl::StatusOr<Value> ToJsonFilter(Interpreter& in, const Value& input,
                                   const CallArgs& args) {
  // transformers: tojson(x, ensure_ascii=False, indent=None,
  // separators=None, sort_keys=False) -> json.dumps(...).
  Params p("tojson", args,
           {"ensure_ascii", "indent", "separators", "sort_keys"});
  TP_RETURN_IF_ERROR(p.Check());
  JsonStyle style = DefaultJsonStyle();
  style.ensure_ascii = p.Bool(0, false);
  style.sort_keys = p.Bool(3, false);
  if (const Value* indent = p.Get(1); indent != nullptr && !indent->is_none()) {
    style.has_indent = true;
    if (indent->is_string()) {
      style.indent = indent->AsString();
    } else if (indent->kind() == Value::Kind::kInt) {
      const int64_t width = std::max<int64_t>(indent->AsInt(), 0);
      TP_RETURN_IF_ERROR(in.CheckString(static_cast<size_t>(
          std::min<int64_t>(width, in.options().limits.max_output_bytes + 1))));
      style.indent = std::string(static_cast<size_t>(width), ' ');
    } else {
      return TypeError("tojson(): indent must be an int or a string");
    }
    style.item_separator = ",";
  }
  if (const Value* sep = p.Get(2); sep != nullptr && !sep->is_none()) {
    if (!sep->is_list() || sep->AsList().items.size() != 2 ||
        !sep->AsList().items[0].is_string() ||
        !sep->AsList().items[1].is_string()) {
      return TypeError("tojson(): separators must be a pair of strings");
    }
    style.item_separator = sep->AsList().items[0].AsString();
    style.key_separator = sep->AsList().items[1].AsString();
  }
  TP_ASSIGN_OR_RETURN(std::string s,
                      ToJson(input, style, in.options().limits.max_json_depth,
                             in.options().limits.max_output_bytes));
  return Value::String(std::move(s));
}

// select/reject/selectattr/rejectattr: items for which a test (or, with no
// test, truthiness) holds, or fails.
absl::StatusOr<Value> SelectFilter(Interpreter& in, absl::string_view name,
                                   const Value& input, const CallArgs& args) {
  const bool by_attr = absl::EndsWith(name, "attr");
  const bool keep = absl::StartsWith(name, "select");
  size_t next = 0;
  std::optional<std::string> attr;
  if (by_attr) {
    if (args.positional.empty() || !args.positional[0].is_string()) {
      return TypeError(absl::StrCat(name, "(): needs an attribute name"));
    }
    attr = args.positional[next++].AsString();
  }
  std::optional<std::string> test;
  if (next < args.positional.size()) {
    if (!args.positional[next].is_string()) {
      return TypeError(
          absl::StrCat(name, "(): the test name must be a string"));
    }
    test = args.positional[next++].AsString();
  }
  CallArgs test_args;
  test_args.positional.assign(args.positional.begin() + next,
                              args.positional.end());
  test_args.keyword = args.keyword;
  // jinja2 yields nothing for a false input (None, [], an Undefined).
  std::vector<Value> items;
  if (input.Truthy()) {
    TP_ASSIGN_OR_RETURN(items, Iterate(input));
  }
  std::vector<Value> out;
  for (const Value& item : items) {
    TP_RETURN_IF_ERROR(in.Step());
    Value subject = item;
    if (attr) {
      TP_ASSIGN_OR_RETURN(subject, AttributeOf(item, *attr));
    }
    bool result = subject.Truthy();
    if (test) {
      TP_ASSIGN_OR_RETURN(result, ApplyTest(in, *test, subject, test_args));
    }
    if (result == keep) out.push_back(item);
  }
  return Value::Generator(std::move(out));
}

absl::StatusOr<Value> MapFilter(Interpreter& in, const Value& input,
                                const CallArgs& args) {
  std::vector<Value> items;  // Nothing for a false input, as in jinja2.
  if (input.Truthy()) {
    TP_ASSIGN_OR_RETURN(items, Iterate(input));
  }
  std::vector<Value> out;
  if (args.positional.empty()) {  // map(attribute='x', default=...)
    std::optional<std::string> attr;
    Value fallback;
    for (const auto& [k, v] : args.keyword) {
      if (k == "attribute" && v.is_string()) attr = v.AsString();
      if (k == "default") fallback = v;
    }
    if (!attr) return TypeError("map(): needs a filter name or attribute=");
    for (const Value& item : items) {
      TP_RETURN_IF_ERROR(in.Step());
      TP_ASSIGN_OR_RETURN(Value v, AttributeOf(item, *attr));
      out.push_back(v.is_undefined() && !fallback.is_undefined() ? fallback
                                                                 : v);
    }
    return Value::Generator(std::move(out));
  }
  if (!args.positional[0].is_string()) {
    return TypeError("map(): the filter name must be a string");
  }
  CallArgs rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keyword = args.keyword;
  for (const Value& item : items) {
    TP_RETURN_IF_ERROR(in.Step());
    TP_ASSIGN_OR_RETURN(
        Value v, ApplyFilter(in, args.positional[0].AsString(), item, rest));
    out.push_back(std::move(v));
  }
  return Value::Generator(std::move(out));
}

// jinja2's do_indent, quirks included: it appends a newline and splits
// with str.splitlines, so every line break becomes \n, and `first` indents
// even an empty string.
absl::StatusOr<Value> Indent(Interpreter& in, const Value& input,
                             const CallArgs& args) {
  Params p("indent", args, {"width", "first", "blank"});
  TP_RETURN_IF_ERROR(p.Check());
  std::string pad;
  const Value width = p.Or(0, Value::Int(4));
  if (width.is_string()) {
    pad = width.AsString();
  } else if (width.kind() == Value::Kind::kInt) {
    const int64_t w = std::max<int64_t>(width.AsInt(), 0);
    TP_RETURN_IF_ERROR(in.CheckString(static_cast<size_t>(
        std::min<int64_t>(w, in.options().limits.max_output_bytes + 1))));
    pad = std::string(static_cast<size_t>(w), ' ');
  } else {
    return TypeError("indent(): width must be an int or a string");
  }
  const bool first = p.Bool(1, false), blank = p.Bool(2, false);
  if (!input.is_string()) {  // s += "\n" fails for anything else.
    if (input.is_undefined()) return UndefinedError(input);
    return TypeError(absl::StrCat("unsupported operand type(s) for +=: '",
                                  input.TypeName(), "' and 'str'"));
  }
  const std::vector<std::string> lines =
      SplitLines(absl::StrCat(input.AsString(), "\n"), false);
  std::string out = first ? pad : "";
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) {
      out += '\n';
      if (blank || !lines[i].empty()) out += pad;
    }
    out += lines[i];
    TP_RETURN_IF_ERROR(in.CheckString(out.size()));
  }
  return SameString(input, std::move(out));
}

// Python's round() (half to even, as jinja2's "common" method calls it);
// ints stay ints.
absl::StatusOr<Value> Round(const Value& input, const CallArgs& args) {
  Params p("round", args, {"precision", "method"});
  TP_RETURN_IF_ERROR(p.Check());
  TP_ASSIGN_OR_RETURN(int64_t precision, p.Int(0, 0));
  TP_ASSIGN_OR_RETURN(std::string method, p.String(1, "common"));
  if (!input.is_number()) return TypeError("round(): expected a number");
  if (input.kind() != Value::Kind::kFloat && method == "common") return input;
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double x = input.AsDouble() * scale;
  double r;
  if (method == "common") {
    r = std::nearbyint(x);  // The default rounding mode: half to even.
  } else if (method == "ceil") {
    r = std::ceil(x);
  } else if (method == "floor") {
    r = std::floor(x);
  } else {
    return TypeError("round(): method must be common, ceil or floor");
  }
  return Value::Float(r / scale);
}

}  // namespace

// The filter table, in alphabetical order.
absl::StatusOr<Value> ApplyFilter(Interpreter& in, absl::string_view name,
                                  const Value& input, CallArgs args) {
  TP_RETURN_IF_ERROR(in.Step());
  if (name == "default" || name == "d") {
    Params p(name, args, {"default_value", "boolean"});
    TP_RETURN_IF_ERROR(p.Check());
    const bool boolean = p.Bool(1, false);
    if (input.is_undefined() || (boolean && !input.Truthy())) {
      return p.Or(0, Value::String(""));
    }
    return input;
  }
  if (name == "tojson") return ToJsonFilter(in, input, args);
  if (name == "safe") {
    return input.is_markup() ? input : Value::Markup(Str(input));
  }
  if (name == "string") {  // markupsafe's soft_str: a Markup stays one.
    return input.is_string() ? input : Value::String(Str(input));
  }
  if (name == "list") {
    TP_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(input));
    return Value::List(std::move(items));
  }
  if (name == "items") {
    if (input.is_undefined()) return Value::Generator({});
    if (!input.is_dict()) return TypeError("items(): expected a dict");
    std::vector<Value> pairs;
    for (const auto& [k, v] : input.AsDict().items()) {
      pairs.push_back(Value::List({k, v}, /*tuple=*/true));
    }
    return Value::Generator(std::move(pairs));
  }
  if (name == "length" || name == "count") {
    if (input.is_string()) {
      return Value::Int(static_cast<int64_t>(CodePointCount(input.AsString())));
    }
    if (input.is_list()) {
      return Value::Int(static_cast<int64_t>(input.AsList().items.size()));
    }
    if (input.is_dict() || input.kind() == Value::Kind::kNamespace) {
      return Value::Int(static_cast<int64_t>(input.AsDict().size()));
    }
    if (input.is_iterator() && !input.AsIterator().single_pass) {
      return Value::Int(static_cast<int64_t>(input.AsIterator().items.size()));
    }
    if (input.is_undefined()) return Value::Int(0);
    return TypeError(
        absl::StrCat("object of type '", input.TypeName(), "' has no len()"));
  }
  if (name == "first" || name == "last") {
    if (input.is_iterator() && input.AsIterator().single_pass) {
      // first takes one item off a generator; last needs reversed(), which
      // a generator does not support.
      const IterData& it = input.AsIterator();
      if (name == "last") {
        return TypeError(
            absl::StrCat("'", it.type_name, "' object is not reversible"));
      }
      if (it.consumed < it.items.size()) return it.items[it.consumed++];
      return Value::Undefined("No first item, sequence was empty.");
    }
    TP_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(input));
    if (items.empty()) {
      return Value::Undefined(
          absl::StrCat("No ", name, " item, sequence was empty."));
    }
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    Params p("join", args, {"d", "attribute"});
    TP_RETURN_IF_ERROR(p.Check());
    TP_ASSIGN_OR_RETURN(std::string sep, p.String(0, ""));
    TP_ASSIGN_OR_RETURN(std::string attr, p.String(1, ""));
    TP_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(input));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      Value item = items[i];
      if (!attr.empty()) {
        TP_ASSIGN_OR_RETURN(item, AttributeOf(item, attr));
      }
      if (i > 0) out += sep;
      out += Str(item);
      TP_RETURN_IF_ERROR(in.CheckString(out.size()));
    }
    return Value::String(std::move(out));
  }
  if (name == "trim") {
    Params p("trim", args, {"chars"});
    TP_RETURN_IF_ERROR(p.Check());
    const Value* chars = p.Get(0);
    std::optional<std::string> set;
    if (chars != nullptr && chars->is_string()) set = chars->AsString();
    return SameString(input, Strip(Str(input), set, true, true));
  }
  if (name == "lower" || name == "upper" || name == "capitalize" ||
      name == "title") {
    const std::string s = Str(input);
    if (name == "lower") return SameString(input, Lower(s));
    if (name == "upper") return SameString(input, Upper(s));
    if (name == "capitalize") return SameString(input, Capitalize(s));
    // jinja2's title: words start after whitespace and -({[< (not Python's
    // str.title, which also splits at apostrophes).
    std::string out(s);
    bool start = true;
    for (char& c : out) {
      if (absl::ascii_isspace(c) ||
          absl::string_view("-({[<").find(c) != absl::string_view::npos) {
        start = true;
      } else {
        c = start ? absl::ascii_toupper(c) : absl::ascii_tolower(c);
        start = false;
      }
    }
    return Value::String(std::move(out));
  }
  if (name == "replace") {
    Params p("replace", args, {"old", "new", "count"});
    TP_RETURN_IF_ERROR(p.Check());
    TP_ASSIGN_OR_RETURN(std::string from, p.String(0, ""));
    TP_ASSIGN_OR_RETURN(std::string to, p.String(1, ""));
    TP_ASSIGN_OR_RETURN(int64_t count, p.Int(2, -1));
    std::optional<std::string> out = Replace(
        Str(input), from, to, count, in.options().limits.max_output_bytes);
    TP_RETURN_IF_ERROR(in.NewString(
        out ? out->size() : in.options().limits.max_output_bytes + 1));
    return Value::String(std::move(*out));
  }
  if (name == "select" || name == "reject" || name == "selectattr" ||
      name == "rejectattr") {
    return SelectFilter(in, name, input, args);
  }
  if (name == "map") return MapFilter(in, input, args);
  if (name == "sort" || name == "unique" || name == "min" || name == "max") {
    Params p(
        name, args,
        name == "sort"
            ? std::vector<absl::string_view>{"reverse", "case_sensitive",
                                             "attribute"}
            : std::vector<absl::string_view>{"case_sensitive", "attribute"});
    TP_RETURN_IF_ERROR(p.Check());
    const size_t base = name == "sort" ? 1 : 0;
    const bool reverse = name == "sort" && p.Bool(0, false);
    const bool case_sensitive = p.Bool(base, false);
    TP_ASSIGN_OR_RETURN(std::string attr_s, p.String(base + 1, ""));
    std::optional<std::string> attr;
    if (!attr_s.empty()) attr = attr_s;
    TP_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(input));
    if (name == "unique") {  // A generator, as in jinja2.
      std::vector<Value> out, seen;
      for (const Value& item : items) {
        Value key = item;
        if (attr) {
          TP_ASSIGN_OR_RETURN(key, AttributeOf(item, *attr));
        }
        key = SortKey(key, case_sensitive);
        bool dup = false;
        TP_RETURN_IF_ERROR(in.Charge(static_cast<int64_t>(seen.size())));
        for (const Value& s : seen) dup = dup || Equals(s, key);
        if (!dup) {
          seen.push_back(key);
          out.push_back(item);
        }
        TP_RETURN_IF_ERROR(in.Step());
      }
      return Value::Generator(std::move(out));
    }
    TP_ASSIGN_OR_RETURN(
        items, Sorted(std::move(items), reverse, case_sensitive, attr));
    if (name == "sort") return Value::List(std::move(items));
    if (items.empty())
      return Value::Undefined("No aggregated item, sequence was empty.");
    return name == "min" ? items.front() : items.back();
  }
  if (name == "dictsort") {
    Params p("dictsort", args, {"case_sensitive", "by", "reverse"});
    TP_RETURN_IF_ERROR(p.Check());
    if (!input.is_dict()) return TypeError("dictsort(): expected a dict");
    TP_ASSIGN_OR_RETURN(std::string by, p.String(1, "key"));
    std::vector<Value> pairs;
    for (const auto& [k, v] : input.AsDict().items()) {
      pairs.push_back(Value::List({k, v}, /*tuple=*/true));
    }
    TP_ASSIGN_OR_RETURN(
        pairs, Sorted(std::move(pairs), p.Bool(2, false), p.Bool(0, false),
                      by == "value" ? "1" : "0"));
    return Value::List(std::move(pairs));
  }
  if (name == "reverse") {
    if (input.is_string()) {
      auto cps = CodePoints(input.AsString());
      std::string out;
      for (auto it = cps.rbegin(); it != cps.rend(); ++it)
        AppendUtf8(it->second, out);
      return SameString(input, std::move(out));
    }
    // reversed(value) where Python has it (an iterator), else a list.
    const bool reversible =
        !(input.is_iterator() && input.AsIterator().single_pass);
    TP_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(input));
    std::reverse(items.begin(), items.end());
    if (!reversible) return Value::List(std::move(items));
    return Value::Iterator(std::move(items),
                           input.is_list() && !input.AsList().tuple
                               ? "list_reverseiterator"
                               : "reversed",
                           /*single_pass=*/true);
  }
  if (name == "int" || name == "float") {
    Params p(name, args, {"default", "base"});
    TP_RETURN_IF_ERROR(p.Check());
    const Value fallback =
        p.Or(0, name == "int" ? Value::Int(0) : Value::Float(0.0));
    double d = 0;
    if (input.is_number()) {
      d = input.AsDouble();
    } else if (input.is_string()) {
      const std::string s = Strip(input.AsString(), std::nullopt, true, true);
      int64_t i;
      if (name == "int" && absl::SimpleAtoi(s, &i)) return Value::Int(i);
      if (!absl::SimpleAtod(s, &d)) return fallback;
    } else {
      return fallback;
    }
    if (name == "float") return Value::Float(d);
    if (!std::isfinite(d) || std::fabs(d) > 9.2e18) return fallback;
    return Value::Int(static_cast<int64_t>(d));
  }
  if (name == "abs") {
    if (input.kind() == Value::Kind::kFloat)
      return Value::Float(std::fabs(input.AsDouble()));
    if (input.is_number()) {
      return Arithmetic(in, "*", input,
                        Value::Int(input.AsDouble() < 0 ? -1 : 1));
    }
    return TypeError("abs(): expected a number");
  }
  if (name == "round") return Round(input, args);
  if (name == "sum") {
    Params p("sum", args, {"attribute", "start"});
    TP_RETURN_IF_ERROR(p.Check());
    TP_ASSIGN_OR_RETURN(std::string attr, p.String(0, ""));
    Value total = p.Or(1, Value::Int(0));
    TP_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(input));
    for (const Value& item : items) {
      Value v = item;
      if (!attr.empty()) {
        TP_ASSIGN_OR_RETURN(v, AttributeOf(item, attr));
      }
      TP_ASSIGN_OR_RETURN(total, Arithmetic(in, "+", total, v));
    }
    return total;
  }
  if (name == "escape" || name == "e") return Escape(input);
  if (name == "forceescape") return Value::Markup(HtmlEscape(Str(input)));
  if (name == "indent") return Indent(in, input, args);
  if (name == "format") {
    if (!input.is_string()) return NeedString("format", input);
    TP_ASSIGN_OR_RETURN(std::string s,
                        PercentFormat(in, input.AsString(), args.positional,
                                      input.is_markup()));
    return SameString(input, std::move(s));
  }
  if (name == "attr") {
    if (args.positional.size() != 1 || !args.positional[0].is_string()) {
      return TypeError("attr(): needs one attribute name");
    }
    return GetAttr(input, args.positional[0].AsString());
  }
  if (name == "wordcount") {
    return Value::Int(static_cast<int64_t>(
        Split(Str(input), std::nullopt, -1, false).size()));
  }
  if (name == "center") {
    Params p("center", args, {"width"});
    TP_RETURN_IF_ERROR(p.Check());
    TP_ASSIGN_OR_RETURN(int64_t width, p.Int(0, 80));
    const std::string s = Str(input);
    const int64_t len = static_cast<int64_t>(CodePointCount(s));
    if (width <= len) return SameString(input, s);
    TP_RETURN_IF_ERROR(in.CheckString(static_cast<size_t>(
        std::min<int64_t>(width, in.options().limits.max_output_bytes + 1))));
    const int64_t total = width - len;
    // CPython's str.center: the odd space goes left only when both the
    // padding and the width are odd.
    const int64_t left = total / 2 + (total & width & 1);
    return SameString(input, absl::StrCat(std::string(left, ' '), s,
                                          std::string(total - left, ' ')));
  }
  if (name == "batch") {
    Params p("batch", args, {"linecount", "fill_with"});
    TP_RETURN_IF_ERROR(p.Check());
    TP_ASSIGN_OR_RETURN(int64_t n, p.Int(0, 1));
    if (n <= 0) return TypeError("batch(): linecount must be positive");
    TP_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(input));
    std::vector<Value> out, cur;
    for (Value& item : items) {
      cur.push_back(std::move(item));
      if (static_cast<int64_t>(cur.size()) == n) {
        out.push_back(Value::List(std::move(cur)));
        cur.clear();
      }
    }
    if (!cur.empty()) {
      if (const Value* fill = p.Get(1); fill != nullptr) {
        TP_RETURN_IF_ERROR(in.CheckList(static_cast<size_t>(
            std::min<int64_t>(n, in.options().limits.max_list_items + 1))));
        while (static_cast<int64_t>(cur.size()) < n) cur.push_back(*fill);
      }
      out.push_back(Value::List(std::move(cur)));
    }
    return Value::Generator(std::move(out));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown filter '", name, "'"));
}

}  // namespace tpserve::jinja
