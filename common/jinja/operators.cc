// The object model's operations: attribute and item lookup, slices,
// arithmetic, `in`, iteration and % formatting, with Python's semantics.
#include <cmath>
#include <cstdio>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/jinja/builtins.h"
#include "common/jinja/text.h"
#include "common/status_macros.h"

namespace tpserve::jinja {
namespace {

// A method of a receiver, bound: `"a b".split` before it is called.
class BoundMethod : public Callable {
 public:
  BoundMethod(Value self, std::string name)
      : self_(std::move(self)), name_(std::move(name)) {}
  absl::StatusOr<Value> Call(Interpreter& in, CallArgs args) override {
    return CallMethod(in, self_, name_, std::move(args));
  }
  std::string Name() const override {
    return absl::StrCat(self_.TypeName(), ".", name_);
  }
  Nesting nesting() const override {
    Nesting n = self_.nesting();
    return Nesting{n.depth + 1, true};
  }

 private:
  Value self_;
  std::string name_;
};

Value MissingAttribute(const Value& obj, absl::string_view name) {
  return Value::Undefined(absl::StrCat(
      "'", obj.TypeName(), " object' has no attribute '", name, "'"));
}

// Python index normalisation: negative counts from the end; nullopt when
// out of range.
std::optional<size_t> Index(int64_t i, size_t size) {
  if (i < 0) i += static_cast<int64_t>(size);
  if (i < 0 || i >= static_cast<int64_t>(size)) return std::nullopt;
  return static_cast<size_t>(i);
}

absl::StatusOr<int64_t> CheckedInt(long double r) {
  if (r > static_cast<long double>(std::numeric_limits<int64_t>::max()) ||
      r < static_cast<long double>(std::numeric_limits<int64_t>::min())) {
    return absl::InvalidArgumentError("integer overflow");
  }
  return static_cast<int64_t>(r);
}

int64_t IntOf(const Value& v) {
  return v.kind() == Value::Kind::kBool ? v.AsBool() : v.AsInt();
}

}  // namespace

absl::Status UndefinedError(const Value& undefined) {
  const std::string& hint = undefined.undefined_name();
  return absl::InvalidArgumentError(hint.empty() ? "value is undefined" : hint);
}

absl::StatusOr<Value> GetAttr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) return UndefinedError(obj);
  if (IsMethod(obj, name)) {
    return Value::Function(std::make_shared<BoundMethod>(obj, name));
  }
  if (obj.is_dict() || obj.kind() == Value::Kind::kNamespace) {
    const Value* v = obj.AsDict().Find(name);
    if (v != nullptr) return *v;
  }
  return MissingAttribute(obj, name);
}

absl::StatusOr<Value> GetItem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) return UndefinedError(obj);
  if (obj.is_dict() || obj.kind() == Value::Kind::kNamespace) {
    const Value* v = obj.AsDict().FindKey(key);
    if (v != nullptr) return *v;
    if (key.is_string() && IsMethod(obj, key.AsString())) {
      return GetAttr(obj, key.AsString());
    }
    return MissingAttribute(obj, Str(key));
  }
  if (obj.is_list() &&
      (key.kind() == Value::Kind::kInt || key.kind() == Value::Kind::kBool)) {
    const auto& items = obj.AsList().items;
    std::optional<size_t> i = Index(IntOf(key), items.size());
    if (!i)
      return Value::Undefined(
          absl::StrCat("list index ", IntOf(key), " out of range"));
    return items[*i];
  }
  if (obj.is_string() &&
      (key.kind() == Value::Kind::kInt || key.kind() == Value::Kind::kBool)) {
    const std::string& s = obj.AsString();
    const std::vector<size_t> at = CodePointOffsets(s);
    std::optional<size_t> i = Index(IntOf(key), at.size() - 1);
    if (!i)
      return Value::Undefined(
          absl::StrCat("string index ", IntOf(key), " out of range"));
    return SameString(obj, s.substr(at[*i], at[*i + 1] - at[*i]));
  }
  if (key.is_string()) return GetAttr(obj, key.AsString());
  return MissingAttribute(obj, Str(key));
}

absl::StatusOr<Value> SliceOf(const Value& obj, const Value& start_v,
                              const Value& stop_v, const Value& step_v) {
  if (obj.is_undefined()) return UndefinedError(obj);
  for (const Value* v : {&start_v, &stop_v, &step_v}) {
    if (!v->is_none() && v->kind() != Value::Kind::kInt &&
        v->kind() != Value::Kind::kBool) {
      return TypeError("slice indices must be integers or None");
    }
  }
  const int64_t step = step_v.is_none() ? 1 : IntOf(step_v);
  if (step == 0) return TypeError("slice step cannot be zero");
  std::vector<size_t> offsets;
  int64_t size;
  if (obj.is_list()) {
    size = static_cast<int64_t>(obj.AsList().items.size());
  } else if (obj.is_string()) {
    offsets = CodePointOffsets(obj.AsString());
    size = static_cast<int64_t>(offsets.size()) - 1;
  } else {
    return TypeError(
        absl::StrCat("'", obj.TypeName(), "' object is not subscriptable"));
  }
  // Python's slice.indices().
  auto clamp = [&](const Value& v, int64_t dflt) {
    if (v.is_none()) return dflt;
    int64_t i = IntOf(v);
    if (i < 0) {
      i += size;
      if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= size) {
      i = step < 0 ? size - 1 : size;
    }
    return i;
  };
  const int64_t start = clamp(start_v, step < 0 ? size - 1 : 0);
  const int64_t stop = clamp(stop_v, step < 0 ? -1 : size);
  // Counted, not stepped: i += step would overflow for huge steps.
  std::vector<int64_t> picks;
  const __int128 span = step > 0 ? static_cast<__int128>(stop) - start
                                 : static_cast<__int128>(start) - stop;
  const __int128 magnitude = step > 0 ? step : -static_cast<__int128>(step);
  const __int128 count = span <= 0 ? 0 : (span + magnitude - 1) / magnitude;
  for (__int128 k = 0; k < count; ++k) {
    picks.push_back(static_cast<int64_t>(start + k * step));
  }
  if (obj.is_list()) {
    std::vector<Value> items;
    items.reserve(picks.size());
    for (int64_t i : picks) items.push_back(obj.AsList().items[i]);
    return Value::List(std::move(items), obj.AsList().tuple);
  }
  std::string out;
  const std::string& s = obj.AsString();
  for (int64_t i : picks)
    out.append(s, offsets[i], offsets[i + 1] - offsets[i]);
  return SameString(obj, std::move(out));
}

absl::StatusOr<Value> Arithmetic(Interpreter& in, absl::string_view op,
                                 const Value& a, const Value& b) {
  if (a.is_undefined()) return UndefinedError(a);
  if (b.is_undefined()) return UndefinedError(b);
  if (a.is_number() && b.is_number()) {
    const bool ints =
        a.kind() != Value::Kind::kFloat && b.kind() != Value::Kind::kFloat;
    if (ints) {
      const int64_t x = IntOf(a), y = IntOf(b);
      if (op == "+") {
        TP_ASSIGN_OR_RETURN(int64_t r,
                            CheckedInt(static_cast<long double>(x) + y));
        return Value::Int(r);
      }
      if (op == "-") {
        TP_ASSIGN_OR_RETURN(int64_t r,
                            CheckedInt(static_cast<long double>(x) - y));
        return Value::Int(r);
      }
      if (op == "*") {
        TP_ASSIGN_OR_RETURN(int64_t r,
                            CheckedInt(static_cast<long double>(x) * y));
        return Value::Int(r);
      }
      if (op == "//" || op == "%") {
        if (y == 0) return TypeError("integer division or modulo by zero");
        if (x == std::numeric_limits<int64_t>::min() && y == -1) {
          return absl::InvalidArgumentError("integer overflow");
        }
        int64_t q = x / y, r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) {  // Python floors.
          q -= 1;
          r += y;
        }
        return Value::Int(op == "//" ? q : r);
      }
      if (op == "**" && y >= 0) {
        long double r = std::pow(static_cast<long double>(x), y);
        TP_ASSIGN_OR_RETURN(int64_t i, CheckedInt(r));
        return Value::Int(i);
      }
    }
    const double x = a.AsDouble(), y = b.AsDouble();
    if (op == "+") return Value::Float(x + y);
    if (op == "-") return Value::Float(x - y);
    if (op == "*") return Value::Float(x * y);
    if (op == "/") {
      if (y == 0) return TypeError("division by zero");
      return Value::Float(x / y);
    }
    if (op == "//" || op == "%") {
      if (y == 0) return TypeError("float division or modulo by zero");
      double m = std::fmod(x, y);
      if (m != 0 && ((m < 0) != (y < 0))) m += y;
      if (op == "%") return Value::Float(m);
      return Value::Float(std::floor(x / y));
    }
    if (op == "**") return Value::Float(std::pow(x, y));
  }
  if (op == "+" && a.is_string() && b.is_string()) {
    TP_RETURN_IF_ERROR(in.NewString(a.AsString().size() + b.AsString().size()));
    if (a.is_markup() || b.is_markup()) {  // The plain side is escaped.
      return Value::Markup(Escape(a).AsString() + Escape(b).AsString());
    }
    return Value::String(a.AsString() + b.AsString());
  }
  if (op == "+" && a.is_list() && b.is_list() &&
      a.AsList().tuple == b.AsList().tuple) {
    TP_RETURN_IF_ERROR(
        in.CheckList(a.AsList().items.size() + b.AsList().items.size()));
    std::vector<Value> items = a.AsList().items;
    items.insert(items.end(), b.AsList().items.begin(), b.AsList().items.end());
    return Value::List(std::move(items), a.AsList().tuple);
  }
  if (op == "*" &&
      (a.is_string() || a.is_list() || b.is_string() || b.is_list())) {
    const Value& seq = a.is_string() || a.is_list() ? a : b;
    const Value& count = &seq == &a ? b : a;
    if (count.kind() == Value::Kind::kInt ||
        count.kind() == Value::Kind::kBool) {
      const int64_t n = std::max<int64_t>(0, IntOf(count));
      if (seq.is_string()) {
        const std::string& s = seq.AsString();
        if (!s.empty() && n > 0) {
          TP_RETURN_IF_ERROR(
              in.NewString(s.size() > in.options().limits.max_output_bytes / n
                               ? in.options().limits.max_output_bytes + 1
                               : s.size() * n));
        }
        std::string out;
        for (int64_t i = 0; i < n && !s.empty(); ++i) out += s;
        return SameString(seq, std::move(out));
      }
      const auto& items = seq.AsList().items;
      if (!items.empty() && n > 0) {
        TP_RETURN_IF_ERROR(
            in.CheckList(items.size() > in.options().limits.max_list_items / n
                             ? in.options().limits.max_list_items + 1
                             : items.size() * n));
      }
      std::vector<Value> out;
      for (int64_t i = 0; i < n; ++i) {
        out.insert(out.end(), items.begin(), items.end());
      }
      return Value::List(std::move(out), seq.AsList().tuple);
    }
  }
  if (op == "%" && a.is_string()) {
    std::vector<Value> args;
    if (b.is_list() && b.AsList().tuple) {
      args = b.AsList().items;
    } else {
      args.push_back(b);
    }
    TP_ASSIGN_OR_RETURN(std::string s,
                        PercentFormat(in, a.AsString(), args, a.is_markup()));
    return SameString(a, std::move(s));
  }
  return TypeError(absl::StrCat("unsupported operand type(s) for ", op, ": '",
                                a.TypeName(), "' and '", b.TypeName(), "'"));
}

absl::StatusOr<bool> Contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined:
      return false;  // jinja2's Undefined iterates as empty.
    case Value::Kind::kString:
      if (!item.is_string()) {
        return TypeError(
            absl::StrCat("'in <string>' requires string as left "
                         "operand, not ",
                         item.TypeName()));
      }
      return container.AsString().find(item.AsString()) != std::string::npos;
    case Value::Kind::kList:
      for (const Value& v : container.AsList().items) {
        if (Equals(v, item)) return true;
      }
      return false;
    case Value::Kind::kDict:
    case Value::Kind::kNamespace:
      if (!item.is_string() && !HashKey(item)) {
        return TypeError(
            absl::StrCat("unhashable type: '", item.TypeName(), "'"));
      }
      return container.AsDict().FindKey(item) != nullptr;
    case Value::Kind::kIterator: {
      // Scans what is left of a generator, using it up to the match.
      const IterData& it = container.AsIterator();
      for (size_t i = it.single_pass ? it.consumed : 0; i < it.items.size();
           ++i) {
        if (Equals(it.items[i], item)) {
          if (it.single_pass) it.consumed = i + 1;
          return true;
        }
      }
      if (it.single_pass) it.consumed = it.items.size();
      return false;
    }
    default:
      return TypeError(absl::StrCat("argument of type '", container.TypeName(),
                                    "' is not iterable"));
  }
}

absl::StatusOr<std::vector<Value>> Iterate(const Value& value) {
  switch (value.kind()) {
    case Value::Kind::kUndefined:
      return std::vector<Value>();
    case Value::Kind::kList:
      return value.AsList().items;
    case Value::Kind::kDict: {
      std::vector<Value> keys;
      for (const auto& [key, item] : value.AsDict().items()) {
        keys.push_back(key);
      }
      return keys;
    }
    case Value::Kind::kIterator: {
      const IterData& it = value.AsIterator();
      if (!it.single_pass) return it.items;
      std::vector<Value> rest(it.items.begin() + it.consumed, it.items.end());
      it.consumed = it.items.size();
      return rest;
    }
    case Value::Kind::kString: {
      const std::string& s = value.AsString();
      const std::vector<size_t> at = CodePointOffsets(s);
      std::vector<Value> chars;
      for (size_t i = 0; i + 1 < at.size(); ++i) {
        chars.push_back(Value::String(s.substr(at[i], at[i + 1] - at[i])));
      }
      return chars;
    }
    default:
      return TypeError(
          absl::StrCat("'", value.TypeName(), "' object is not iterable"));
  }
}

absl::StatusOr<std::string> PercentFormat(Interpreter& in,
                                          absl::string_view format,
                                          const std::vector<Value>& args,
                                          bool escape) {
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      out += format[i];
      continue;
    }
    if (++i >= format.size()) return TypeError("incomplete format");
    if (format[i] == '%') {
      out += '%';
      continue;
    }
    // Flags, width and precision, parsed here: padding counts code points
    // (as Python does), and only a spec printf defines reaches printf.
    bool left = false, plus = false, space = false, alt = false, zero = false;
    while (i < format.size() && absl::string_view("-+ #0").find(format[i]) !=
                                    absl::string_view::npos) {
      left |= format[i] == '-';
      plus |= format[i] == '+';
      space |= format[i] == ' ';
      alt |= format[i] == '#';
      zero |= format[i] == '0';
      ++i;
    }
    auto number = [&](int* out_n) {
      int n = 0, digits = 0;
      while (i < format.size() && absl::ascii_isdigit(format[i])) {
        if (++digits > 4) return false;  // Widths over 9999: refused.
        n = n * 10 + (format[i++] - '0');
      }
      *out_n = n;
      return true;
    };
    int width = 0, precision = -1;
    if (!number(&width)) return TypeError("format width too large");
    if (i < format.size() && format[i] == '.') {
      ++i;
      if (!number(&precision)) return TypeError("format precision too large");
    }
    if (i >= format.size()) return TypeError("incomplete format");
    const char conv = format[i];
    if (next >= args.size()) {
      return TypeError("not enough arguments for format string");
    }
    const Value& arg = args[next++];
    std::string piece;
    bool numeric = false;
    switch (conv) {
      case 's':
      case 'r': {
        piece = conv == 's' ? Str(arg) : Repr(arg);
        // Markup's % escapes what it formats in (Markup arguments aside).
        if (escape && (conv == 'r' || !arg.is_markup()))
          piece = HtmlEscape(piece);
        if (precision >= 0) {  // At most `precision` characters.
          const std::vector<size_t> at = CodePointOffsets(piece);
          if (static_cast<size_t>(precision) + 1 < at.size()) {
            piece.resize(at[precision]);
          }
        }
        break;
      }
      case 'd':
      case 'i':
      case 'x':
      case 'X': {
        numeric = true;
        if (!arg.is_number()) {
          return TypeError(absl::StrCat("%", std::string(1, conv),
                                        " format: a real number is required, "
                                        "not ",
                                        arg.TypeName()));
        }
        int64_t v;
        if (arg.kind() == Value::Kind::kFloat) {
          const double d = std::trunc(arg.AsDouble());
          if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) {
            return TypeError("cannot convert float to integer");
          }
          v = static_cast<int64_t>(d);
        } else {
          v = IntOf(arg);
        }
        // Python writes a negative hex number as -ff, not two's complement.
        const uint64_t magnitude =
            v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
        std::string digits;
        if (conv == 'x' || conv == 'X') {
          digits = absl::StrCat(absl::Hex(magnitude));
          if (conv == 'X') digits = absl::AsciiStrToUpper(digits);
          if (alt) digits = (conv == 'x' ? "0x" : "0X") + digits;
        } else {
          digits = absl::StrCat(magnitude);
        }
        if (precision >= 0 && digits.size() < static_cast<size_t>(precision)) {
          digits.insert(0, precision - digits.size(), '0');
        }
        piece = absl::StrCat(v < 0 ? "-" : (plus ? "+" : (space ? " " : "")),
                             digits);
        break;
      }
      case 'f':
      case 'e':
      case 'g': {
        numeric = true;
        if (!arg.is_number()) {
          return TypeError(
              absl::StrCat("must be real number, not ", arg.TypeName()));
        }
        std::string spec = "%";
        if (plus) spec += '+';
        if (space) spec += ' ';
        if (alt) spec += '#';
        if (precision >= 0) absl::StrAppend(&spec, ".", precision);
        spec += conv;
        char buf[512];
        std::snprintf(buf, sizeof(buf), spec.c_str(), arg.AsDouble());
        piece = buf;
        break;
      }
      default:
        return TypeError(absl::StrCat("unsupported format character '",
                                      std::string(1, conv), "'"));
    }
    const size_t len = CodePointCount(piece);
    if (static_cast<size_t>(width) > len) {
      const size_t pad = width - len;
      if (left) {
        piece.append(pad, ' ');
      } else if (zero && numeric) {  // Zeros go after the sign.
        const size_t sign =
            !piece.empty() &&
            (piece[0] == '-' || piece[0] == '+' || piece[0] == ' ');
        piece.insert(sign, pad, '0');
      } else {
        piece.insert(0, pad, ' ');
      }
    }
    out += piece;
    TP_RETURN_IF_ERROR(in.CheckString(out.size()));
  }
  if (next < args.size()) {
    return TypeError("not all arguments converted during string formatting");
  }
  return out;
}

}  // namespace tpserve::jinja
