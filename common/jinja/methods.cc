// jinja2's tests, the Python methods templates call on values, and the
// globals transformers defines.
#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/jinja/builtins.h"
#include "common/jinja/text.h"
#include "common/status_macros.h"

namespace tpserve::jinja {
namespace {

absl::StatusOr<Value> OneArg(absl::string_view name, const CallArgs& args) {
  if (args.positional.size() != 1 || !args.keyword.empty()) {
    return TypeError(absl::StrCat("test '", name, "' takes one argument"));
  }
  return args.positional[0];
}

// The methods the immutable sandbox refuses (they would modify a value).
bool IsUnsafeMethod(const Value& obj, absl::string_view name) {
  static constexpr absl::string_view kList[] = {"append", "extend", "insert",
                                                "pop",    "remove", "reverse",
                                                "sort",   "clear"};
  static constexpr absl::string_view kDict[] = {"pop", "popitem", "update",
                                                "clear", "setdefault"};
  if (obj.is_list()) {
    return std::find(std::begin(kList), std::end(kList), name) !=
           std::end(kList);
  }
  if (obj.is_dict()) {
    return std::find(std::begin(kDict), std::end(kDict), name) !=
           std::end(kDict);
  }
  return false;
}

absl::StatusOr<std::optional<std::string>> OptString(const CallArgs& args,
                                                     size_t i) {
  if (i >= args.positional.size() || args.positional[i].is_none()) {
    return std::optional<std::string>();
  }
  if (!args.positional[i].is_string()) {
    return TypeError(absl::StrCat("expected a string argument, got ",
                                  args.positional[i].TypeName()));
  }
  return std::optional<std::string>(args.positional[i].AsString());
}

int64_t IntArg(const CallArgs& args, size_t i, int64_t fallback) {
  if (i < args.positional.size() &&
      args.positional[i].kind() == Value::Kind::kInt) {
    return args.positional[i].AsInt();
  }
  for (const auto& [k, v] : args.keyword) {
    if ((k == "maxsplit" || k == "count") && v.kind() == Value::Kind::kInt) {
      return v.AsInt();
    }
  }
  return fallback;
}

// str.startswith / endswith: a string or a tuple of strings.
absl::StatusOr<bool> Affix(absl::string_view s, const CallArgs& args,
                           bool prefix) {
  if (args.positional.empty())
    return TypeError("startswith/endswith need an argument");
  const Value& a = args.positional[0];
  std::vector<Value> options =
      a.is_list() ? a.AsList().items : std::vector<Value>{a};
  for (const Value& o : options) {
    if (!o.is_string()) return TypeError("startswith/endswith take strings");
    if (prefix ? absl::StartsWith(s, o.AsString())
               : absl::EndsWith(s, o.AsString())) {
      return true;
    }
  }
  return false;
}

// str.format with {} / {0} / {name} fields (no format specs).
absl::StatusOr<std::string> StrFormat(Interpreter& in, absl::string_view f,
                                      const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] == '{' && i + 1 < f.size() && f[i + 1] == '{') {
      out += '{';
      ++i;
    } else if (f[i] == '}' && i + 1 < f.size() && f[i + 1] == '}') {
      out += '}';
      ++i;
    } else if (f[i] == '{') {
      const size_t close = f.find('}', i);
      if (close == absl::string_view::npos)
        return TypeError("str.format: unmatched '{'");
      const absl::string_view field = f.substr(i + 1, close - i - 1);
      if (field.find_first_of(":!.[") != absl::string_view::npos) {
        return TypeError("str.format: format specs are not supported");
      }
      const Value* v = nullptr;
      size_t index;
      if (field.empty()) {
        index = auto_index++;
        if (index < args.positional.size()) v = &args.positional[index];
      } else if (absl::SimpleAtoi(field, &index)) {
        if (index < args.positional.size()) v = &args.positional[index];
      } else {
        for (const auto& [k, val] : args.keyword) {
          if (k == field) v = &val;
        }
      }
      if (v == nullptr) {
        return TypeError(
            absl::StrCat("str.format: no argument for {", field, "}"));
      }
      out += Str(*v);
      i = close;
    } else {
      out += f[i];
    }
    TP_RETURN_IF_ERROR(in.CheckString(out.size()));
  }
  return out;
}

absl::StatusOr<Value> StringMethod(Interpreter& in, const std::string& s,
                                   absl::string_view name,
                                   const CallArgs& args) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    TP_ASSIGN_OR_RETURN(std::optional<std::string> chars, OptString(args, 0));
    return Value::String(Strip(s, chars, name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    std::optional<std::string> sep;
    for (const auto& [k, v] : args.keyword) {
      if (k == "sep" && v.is_string()) sep = v.AsString();
    }
    if (!sep) {
      TP_ASSIGN_OR_RETURN(sep, OptString(args, 0));
    }
    if (sep && sep->empty()) return TypeError("str.split: empty separator");
    std::vector<Value> parts =
        Split(s, sep, IntArg(args, 1, -1), name == "rsplit");
    TP_RETURN_IF_ERROR(in.CheckList(parts.size()));
    return Value::List(std::move(parts));
  }
  if (name == "splitlines") {
    bool keepends = !args.positional.empty() && args.positional[0].Truthy();
    for (const auto& [k, v] : args.keyword) {
      if (k == "keepends") keepends = v.Truthy();
    }
    std::vector<Value> lines;
    for (std::string& line : SplitLines(s, keepends)) {
      lines.push_back(Value::String(std::move(line)));
    }
    TP_RETURN_IF_ERROR(in.CheckList(lines.size()));
    return Value::List(std::move(lines));
  }
  if (name == "startswith" || name == "endswith") {
    TP_ASSIGN_OR_RETURN(bool b, Affix(s, args, name == "startswith"));
    return Value::Bool(b);
  }
  if (name == "upper") return Value::String(Upper(s));
  if (name == "lower") return Value::String(Lower(s));
  if (name == "title") return Value::String(Title(s));
  if (name == "capitalize") return Value::String(Capitalize(s));
  if (name == "replace") {
    TP_ASSIGN_OR_RETURN(std::optional<std::string> from, OptString(args, 0));
    TP_ASSIGN_OR_RETURN(std::optional<std::string> to, OptString(args, 1));
    if (!from || !to) return TypeError("str.replace needs two strings");
    std::optional<std::string> out =
        Replace(s, *from, *to, IntArg(args, 2, -1),
                in.options().limits.max_output_bytes);
    TP_RETURN_IF_ERROR(in.NewString(
        out ? out->size() : in.options().limits.max_output_bytes + 1));
    return Value::String(std::move(*out));
  }
  if (name == "find" || name == "rfind" || name == "count" || name == "index") {
    TP_ASSIGN_OR_RETURN(std::optional<std::string> sub, OptString(args, 0));
    if (!sub) return TypeError(absl::StrCat("str.", name, " needs a string"));
    if (name == "count") {
      int64_t n = 0;
      if (sub->empty())
        return Value::Int(static_cast<int64_t>(CodePointCount(s)) + 1);
      for (size_t at = s.find(*sub); at != std::string::npos;
           at = s.find(*sub, at + sub->size())) {
        ++n;
      }
      return Value::Int(n);
    }
    const size_t at = name == "rfind" ? s.rfind(*sub) : s.find(*sub);
    if (at == std::string::npos) {
      if (name == "index") return TypeError("substring not found");
      return Value::Int(-1);
    }
    return Value::Int(static_cast<int64_t>(CodePointCount(s.substr(0, at))));
  }
  if (name == "join") {
    if (args.positional.size() != 1)
      return TypeError("str.join takes one argument");
    TP_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(args.positional[0]));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string()) {
        return TypeError(absl::StrCat("sequence item ", i,
                                      ": expected str instance, ",
                                      items[i].TypeName(), " found"));
      }
      if (i > 0) out += s;
      out += items[i].AsString();
      TP_RETURN_IF_ERROR(in.CheckString(out.size()));
    }
    return Value::String(std::move(out));
  }
  if (name == "format") {
    TP_ASSIGN_OR_RETURN(std::string out, StrFormat(in, s, args));
    return Value::String(std::move(out));
  }
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" ||
      name == "isspace" || name == "islower" || name == "isupper") {
    if (s.empty()) return Value::Bool(false);
    bool all = true, cased = false;
    for (auto [at, cp] : CodePoints(s)) {
      const char c = cp < 0x80 ? static_cast<char>(cp) : '\0';
      if (name == "isdigit") all = all && absl::ascii_isdigit(c);
      if (name == "isalpha") all = all && absl::ascii_isalpha(c);
      if (name == "isalnum") all = all && absl::ascii_isalnum(c);
      if (name == "isspace") all = all && IsUnicodeSpace(cp);
      if (name == "islower") {
        all = all && !absl::ascii_isupper(c);
        cased = cased || absl::ascii_islower(c);
      }
      if (name == "isupper") {
        all = all && !absl::ascii_islower(c);
        cased = cased || absl::ascii_isupper(c);
      }
    }
    if (name == "islower" || name == "isupper") all = all && cased;
    return Value::Bool(all);
  }
  return TypeError(absl::StrCat("str has no method '", name, "'"));
}

// A Markup's methods (markupsafe): the strings they take in are escaped,
// and the strings they give back are Markup too.
absl::StatusOr<Value> MarkupMethod(Interpreter& in, const Value& self,
                                   absl::string_view name, CallArgs args) {
  if (name == "join" && args.positional.size() == 1) {
    TP_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(args.positional[0]));
    for (Value& item : items) item = Escape(item);
    args.positional[0] = Value::List(std::move(items));
  } else if (name == "format") {
    for (Value& v : args.positional) v = Escape(v);
    for (auto& [k, v] : args.keyword) v = Escape(v);
  } else if (name == "replace" && args.positional.size() >= 2) {
    args.positional[1] = Escape(args.positional[1]);
  }
  TP_ASSIGN_OR_RETURN(Value r, StringMethod(in, self.AsString(), name, args));
  if (r.is_string()) return Value::Markup(r.AsString());
  if (r.is_list() &&
      (name == "split" || name == "rsplit" || name == "splitlines")) {
    std::vector<Value> parts;
    for (const Value& part : r.AsList().items) {
      parts.push_back(Value::Markup(part.AsString()));
    }
    return Value::List(std::move(parts));
  }
  return r;
}

constexpr absl::string_view kStringMethods[] = {
    "strip",      "lstrip",     "rstrip",   "split",   "rsplit",
    "splitlines", "startswith", "endswith", "upper",   "lower",
    "title",      "capitalize", "replace",  "find",    "rfind",
    "count",      "index",      "join",     "format",  "isdigit",
    "isalpha",    "isalnum",    "isspace",  "islower", "isupper"};
constexpr absl::string_view kDictMethods[] = {"get", "items", "keys", "values",
                                              "copy"};
constexpr absl::string_view kListMethods[] = {"count", "index", "copy"};

template <size_t N>
bool In(const absl::string_view (&names)[N], absl::string_view name) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

// Globals: functions templates call by name.
class Global : public Callable {
 public:
  using Fn = absl::StatusOr<Value> (*)(Interpreter&, const CallArgs&);
  Global(std::string name, Fn fn) : name_(std::move(name)), fn_(fn) {}
  absl::StatusOr<Value> Call(Interpreter& in, CallArgs args) override {
    return fn_(in, args);
  }
  std::string Name() const override { return name_; }

 private:
  std::string name_;
  Fn fn_;
};

absl::StatusOr<Value> Range(Interpreter& in, const CallArgs& args) {
  std::vector<int64_t> n;
  for (const Value& v : args.positional) {
    if (v.kind() != Value::Kind::kInt)
      return TypeError("range() takes integers");
    n.push_back(v.AsInt());
  }
  if (n.empty() || n.size() > 3 || !args.keyword.empty()) {
    return TypeError("range() takes 1 to 3 integers");
  }
  const int64_t start = n.size() == 1 ? 0 : n[0];
  const int64_t stop = n.size() == 1 ? n[0] : n[1];
  const int64_t step = n.size() == 3 ? n[2] : 1;
  if (step == 0) return TypeError("range() step must not be zero");
  // The item count, computed without overflow; items are made from it
  // (stepping i would overflow near INT64_MAX).
  const __int128 span = step > 0 ? static_cast<__int128>(stop) - start
                                 : static_cast<__int128>(start) - stop;
  const __int128 magnitude = step > 0 ? step : -static_cast<__int128>(step);
  const __int128 count = span <= 0 ? 0 : (span + magnitude - 1) / magnitude;
  if (count > static_cast<__int128>(in.options().limits.max_list_items)) {
    return in.CheckList(in.options().limits.max_list_items + 1);
  }
  TP_RETURN_IF_ERROR(in.CheckList(static_cast<size_t>(count)));
  std::vector<Value> items;
  items.reserve(static_cast<size_t>(count));
  for (int64_t k = 0; k < static_cast<int64_t>(count); ++k) {
    items.push_back(Value::Int(
        static_cast<int64_t>(start + k * static_cast<__int128>(step))));
  }
  return Value::List(std::move(items));
}

absl::StatusOr<Value> KeywordDict(const CallArgs& args, bool ns) {
  Dict dict;
  for (const Value& v : args.positional) {  // namespace(mapping)
    if (!v.is_dict())
      return TypeError("dict()/namespace() take a mapping or keywords");
    for (const auto& [k, item] : v.AsDict().items()) {
      TP_RETURN_IF_ERROR(dict.SetKey(k, item));
    }
  }
  for (const auto& [k, v] : args.keyword) dict.Set(k, v);
  return ns ? Value::Namespace(std::move(dict))
            : Value::MakeDict(std::move(dict));
}

absl::StatusOr<Value> NamespaceFn(Interpreter&, const CallArgs& args) {
  return KeywordDict(args, true);
}
absl::StatusOr<Value> DictFn(Interpreter&, const CallArgs& args) {
  return KeywordDict(args, false);
}

absl::StatusOr<Value> RaiseException(Interpreter&, const CallArgs& args) {
  const std::string message =
      args.positional.empty() ? "raise_exception()" : Str(args.positional[0]);
  // The template refused the conversation: the caller's input is wrong.
  return absl::InvalidArgumentError(absl::StrCat("template error: ", message));
}

absl::StatusOr<Value> StrftimeNow(Interpreter& in, const CallArgs& args) {
  if (args.positional.size() != 1 || !args.positional[0].is_string()) {
    return TypeError("strftime_now() takes one format string");
  }
  const absl::Time now = in.options().now.value_or(absl::Now());
  return Value::String(absl::FormatTime(args.positional[0].AsString(), now,
                                        in.options().time_zone));
}

}  // namespace

bool IsMethod(const Value& obj, absl::string_view name) {
  if (obj.is_string()) return In(kStringMethods, name);
  if (obj.is_dict()) return In(kDictMethods, name) || IsUnsafeMethod(obj, name);
  if (obj.is_list()) return In(kListMethods, name) || IsUnsafeMethod(obj, name);
  return false;
}

absl::StatusOr<Value> CallMethod(Interpreter& in, const Value& obj,
                                 absl::string_view name, CallArgs args) {
  TP_RETURN_IF_ERROR(in.Step());
  if (IsUnsafeMethod(obj, name)) {
    // jinja2's SecurityError; like every template error, the input's fault.
    return absl::InvalidArgumentError(
        absl::StrCat("access to attribute '", name, "' of '", obj.TypeName(),
                     "' object is unsafe."));
  }
  if (obj.is_markup()) return MarkupMethod(in, obj, name, std::move(args));
  if (obj.is_string()) return StringMethod(in, obj.AsString(), name, args);
  if (obj.is_dict()) {
    const Dict& d = obj.AsDict();
    if (name == "get") {
      if (args.positional.empty() || args.positional.size() > 2) {
        return TypeError("dict.get takes 1 or 2 arguments");
      }
      const Value& key = args.positional[0];
      if (!key.is_string() && !HashKey(key)) {
        return TypeError(
            absl::StrCat("unhashable type: '", key.TypeName(), "'"));
      }
      const Value* v = d.FindKey(key);
      if (v != nullptr) return *v;
      return args.positional.size() == 2 ? args.positional[1] : Value::None();
    }
    if (name == "copy") return obj;
    // Views: reusable, sized, printed as dict_items([...]).
    std::vector<Value> out;
    for (const auto& [k, v] : d.items()) {
      if (name == "items") {
        out.push_back(Value::List({k, v}, /*tuple=*/true));
      } else {
        out.push_back(name == "keys" ? k : v);
      }
    }
    return Value::Iterator(std::move(out),
                           name == "items"  ? "dict_items"
                           : name == "keys" ? "dict_keys"
                                            : "dict_values",
                           /*single_pass=*/false);
  }
  if (obj.is_list()) {
    const auto& items = obj.AsList().items;
    if (name == "copy") return obj;
    if (args.positional.size() != 1) {
      return TypeError(absl::StrCat("list.", name, " takes one argument"));
    }
    int64_t count = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!Equals(items[i], args.positional[0])) continue;
      if (name == "index") return Value::Int(static_cast<int64_t>(i));
      ++count;
    }
    if (name == "index") return TypeError("list.index(x): x not in list");
    return Value::Int(count);
  }
  return TypeError(
      absl::StrCat("'", obj.TypeName(), "' object has no method '", name, "'"));
}

absl::StatusOr<bool> ApplyTest(Interpreter& in, absl::string_view name,
                               const Value& v, const CallArgs& args) {
  TP_RETURN_IF_ERROR(in.Step());
  using K = Value::Kind;
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "boolean") return v.kind() == K::kBool;
  if (name == "true") return v.kind() == K::kBool && v.AsBool();
  if (name == "false") return v.kind() == K::kBool && !v.AsBool();
  if (name == "integer") return v.kind() == K::kInt;
  if (name == "float") return v.kind() == K::kFloat;
  if (name == "number") return v.is_number();
  if (name == "iterable") {
    return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined() ||
           v.is_iterator();
  }
  if (name == "sequence") {  // len() and [] both work.
    return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  }
  if (name == "callable") return v.kind() == K::kCallable;
  if (name == "escaped") return v.is_markup();
  if (name == "lower" || name == "upper") {
    if (!v.is_string()) return false;
    const std::string& s = v.AsString();
    return name == "lower" ? s == Lower(s) : s == Upper(s);
  }
  if (name == "odd" || name == "even" || name == "divisibleby") {
    if (v.kind() != K::kInt)
      return TypeError(absl::StrCat("test '", name, "' needs an integer"));
    if (name == "odd") return v.AsInt() % 2 != 0;
    if (name == "even") return v.AsInt() % 2 == 0;
    TP_ASSIGN_OR_RETURN(Value d, OneArg(name, args));
    if (d.kind() != K::kInt || d.AsInt() == 0)
      return TypeError("divisibleby needs a non-zero integer");
    return v.AsInt() % d.AsInt() == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==" || name == "sameas") {
    TP_ASSIGN_OR_RETURN(Value other, OneArg(name, args));
    if (name == "sameas" && v.kind() != other.kind()) return false;
    return Equals(v, other);
  }
  if (name == "ne" || name == "!=") {
    TP_ASSIGN_OR_RETURN(Value other, OneArg(name, args));
    return !Equals(v, other);
  }
  if (name == "in") {
    TP_ASSIGN_OR_RETURN(Value seq, OneArg(name, args));
    return Contains(seq, v);
  }
  if (name == "lt" || name == "lessthan" || name == "le" || name == "gt" ||
      name == "greaterthan" || name == "ge") {
    TP_ASSIGN_OR_RETURN(Value other, OneArg(name, args));
    TP_ASSIGN_OR_RETURN(int c, Compare(v, other));
    if (name == "lt" || name == "lessthan") return c < 0;
    if (name == "le") return c <= 0;
    if (name == "gt" || name == "greaterthan") return c > 0;
    return c >= 0;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown test '", name, "'"));
}

void AddGlobals(Dict& globals) {
  globals.Set("range",
              Value::Function(std::make_shared<Global>("range", &Range)));
  globals.Set("namespace", Value::Function(std::make_shared<Global>(
                               "namespace", &NamespaceFn)));
  globals.Set("dict",
              Value::Function(std::make_shared<Global>("dict", &DictFn)));
  globals.Set("raise_exception", Value::Function(std::make_shared<Global>(
                                     "raise_exception", &RaiseException)));
  globals.Set("strftime_now", Value::Function(std::make_shared<Global>(
                                  "strftime_now", &StrftimeNow)));
}

}  // namespace tpserve::jinja
