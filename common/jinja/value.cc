#include "common/jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/unicode.h"

namespace tpserve::jinja {

const Value* Dict::Find(absl::string_view key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &items_[it->second].second;
}

const Value* Dict::FindKey(const Value& key) const {
  if (key.is_string()) return Find(key.AsString());
  std::optional<std::string> hash = HashKey(key);
  if (!hash) return nullptr;
  auto it = other_index_.find(*hash);
  return it == other_index_.end() ? nullptr : &items_[it->second].second;
}

void Dict::Set(std::string key, Value value) {
  auto it = index_.find(key);
  if (it != index_.end()) {
    items_[it->second].second = std::move(value);
    return;
  }
  index_.emplace(key, items_.size());
  items_.emplace_back(Value::String(std::move(key)), std::move(value));
}

absl::Status Dict::SetKey(Value key, Value value) {
  if (key.is_string()) {
    auto it = index_.find(key.AsString());
    if (it != index_.end()) {
      items_[it->second].second = std::move(value);
    } else {
      index_.emplace(key.AsString(), items_.size());
      items_.emplace_back(std::move(key), std::move(value));
    }
    return absl::OkStatus();
  }
  std::optional<std::string> hash = HashKey(key);
  if (!hash) {
    return absl::InvalidArgumentError(
        absl::StrCat("unhashable type: '", key.TypeName(), "'"));
  }
  auto it = other_index_.find(*hash);
  if (it != other_index_.end()) {
    items_[it->second].second = std::move(value);
  } else {
    other_index_.emplace(std::move(*hash), items_.size());
    items_.emplace_back(std::move(key), std::move(value));
  }
  return absl::OkStatus();
}

Value Value::Undefined(std::string name) {
  Value v;
  v.data_ = UndefinedName{std::move(name)};
  return v;
}
Value Value::None() {
  Value v;
  v.data_ = NoneTag{};
  return v;
}
Value Value::Bool(bool b) {
  Value v;
  v.data_ = b;
  return v;
}
Value Value::Int(int64_t i) {
  Value v;
  v.data_ = i;
  return v;
}
Value Value::Float(double f) {
  Value v;
  v.data_ = f;
  return v;
}
Value Value::String(std::string s) {
  Value v;
  v.data_ = std::make_shared<const std::string>(std::move(s));
  return v;
}
Value Value::Markup(std::string s) {
  Value v;
  v.data_ = MarkupPtr{std::make_shared<const std::string>(std::move(s))};
  return v;
}
namespace {

void Include(const Value& item, Nesting& n) {
  const Nesting in = item.nesting();
  n.depth = std::max(n.depth, in.depth + 1);
  n.holds_reference = n.holds_reference || in.holds_reference;
}

Nesting NestingOf(const std::vector<Value>& items) {
  Nesting n;
  for (const Value& item : items) Include(item, n);
  return n;
}

}  // namespace

Nesting Value::nesting() const {
  switch (kind()) {
    case Kind::kList:
      return AsList().nesting;
    case Kind::kDict:
      return AsDict().nesting;
    case Kind::kIterator:
      return AsIterator().nesting;
    case Kind::kNamespace:
      return Nesting{AsDict().nesting.depth, true};
    case Kind::kCallable:
      return AsCallable()->nesting();
    default:
      return Nesting{0, false};
  }
}

Value Value::List(std::vector<Value> items, bool tuple) {
  Value v;
  auto data = std::make_shared<ListData>();
  data->nesting = NestingOf(items);
  data->items = std::move(items);
  data->tuple = tuple;
  v.data_ = std::shared_ptr<const ListData>(std::move(data));
  return v;
}
Value Value::MakeDict(Dict dict) {
  Value v;
  dict.nesting = Nesting();
  for (const auto& [key, item] : dict.items()) {
    Include(key, dict.nesting);
    Include(item, dict.nesting);
  }
  v.data_ = std::make_shared<const Dict>(std::move(dict));
  return v;
}
Value Value::Namespace(Dict dict) {
  Value v;
  dict.nesting = Nesting();
  for (const auto& [key, item] : dict.items()) {
    Include(key, dict.nesting);
    Include(item, dict.nesting);
  }
  v.data_ = NamespacePtr{std::make_shared<Dict>(std::move(dict))};
  return v;
}
Value Value::Function(std::shared_ptr<Callable> fn) {
  Value v;
  v.data_ = std::move(fn);
  return v;
}

Value Value::Iterator(std::vector<Value> items, const char* type_name,
                      bool single_pass) {
  Value v;
  auto data = std::make_shared<IterData>();
  data->nesting = NestingOf(items);
  data->items = std::move(items);
  data->type_name = type_name;
  data->single_pass = single_pass;
  v.data_ = std::shared_ptr<const IterData>(std::move(data));
  return v;
}

Value Value::FromJson(const nlohmann::ordered_json& json) {
  switch (json.type()) {
    case nlohmann::ordered_json::value_t::null:
      return None();
    case nlohmann::ordered_json::value_t::boolean:
      return Bool(json.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Int(json.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const uint64_t u = json.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) {
        return Float(static_cast<double>(u));
      }
      return Int(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Float(json.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return String(json.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(json.size());
      for (const auto& item : json) items.push_back(FromJson(item));
      return List(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Dict dict;
      for (const auto& [key, item] : json.items())
        dict.Set(key, FromJson(item));
      return MakeDict(std::move(dict));
    }
    default:  // Binary and discarded values do not come from JSON text.
      return None();
  }
}

double Value::AsDouble() const {
  switch (kind()) {
    case Kind::kInt:
      return static_cast<double>(AsInt());
    case Kind::kBool:
      return AsBool() ? 1.0 : 0.0;
    default:
      return std::get<double>(data_);
  }
}

const Dict& Value::AsDict() const {
  if (kind() == Kind::kNamespace) return *std::get<NamespacePtr>(data_).p;
  return *std::get<std::shared_ptr<const Dict>>(data_);
}

bool Value::Truthy() const {
  switch (kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return AsBool();
    case Kind::kInt:
      return AsInt() != 0;
    case Kind::kFloat:
      return AsDouble() != 0.0;
    case Kind::kString:
      return !AsString().empty();
    case Kind::kList:
      return !AsList().items.empty();
    case Kind::kDict:
      return AsDict().size() != 0;
    case Kind::kNamespace:
    case Kind::kCallable:
      return true;
    case Kind::kIterator:  // A generator is true even when it yields nothing.
      return AsIterator().single_pass || !AsIterator().items.empty();
  }
  return false;
}

absl::string_view Value::TypeName() const {
  switch (kind()) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return is_markup() ? "Markup" : "str";
    case Kind::kList:
      return AsList().tuple ? "tuple" : "list";
    case Kind::kDict:
      return "dict";
    case Kind::kNamespace:
      return "Namespace";
    case Kind::kCallable:
      return "function";
    case Kind::kIterator:
      return AsIterator().type_name;
  }
  return "object";
}

std::string FormatFloat(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  if (f == 0) return std::signbit(f) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then Python's layout: fixed notation for
  // decimal exponents in [-4, 16), scientific otherwise.
  char buf[64];
  auto res =
      std::to_chars(buf, buf + sizeof(buf), f, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const size_t e = sci.find('e');
  const int exponent = std::stoi(sci.substr(e + 1));
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  if (exponent < -4 || exponent >= 16) {
    std::string mantissa = digits.substr(0, 1);
    if (digits.size() > 1) absl::StrAppend(&mantissa, ".", digits.substr(1));
    char exp[16];
    std::snprintf(exp, sizeof(exp), "e%c%02d", exponent < 0 ? '-' : '+',
                  std::abs(exponent));
    return absl::StrCat(sign, mantissa, exp);
  }
  if (exponent < 0) {
    return absl::StrCat(sign, "0.", std::string(-exponent - 1, '0'), digits);
  }
  const size_t int_len = static_cast<size_t>(exponent) + 1;
  if (digits.size() <= int_len) {
    return absl::StrCat(sign, digits, std::string(int_len - digits.size(), '0'),
                        ".0");
  }
  return absl::StrCat(sign, digits.substr(0, int_len), ".",
                      digits.substr(int_len));
}

namespace {

// Python's str.isprintable, for the code points repr escapes: controls,
// format characters, separators other than the space, and the like.
bool IsPrintable(uint32_t cp) {
  if (cp < 0x20 || (cp >= 0x7f && cp <= 0xa0) || cp == 0xad) return false;
  if (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200f) ||
      (cp >= 0x2028 && cp <= 0x202f) || (cp >= 0x205f && cp <= 0x2064) ||
      cp == 0x3000 || cp == 0xfeff || (cp >= 0xd800 && cp <= 0xdfff) ||
      (cp >= 0xe000 && cp <= 0xf8ff) || cp == 0x061c || cp == 0x180e) {
    return false;
  }
  return true;
}

void AppendRepr(const Value& value, std::string& out);

void AppendStringRepr(absl::string_view s, std::string& out) {
  const bool has_single = s.find('\'') != absl::string_view::npos;
  const bool has_double = s.find('"') != absl::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  out += quote;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t start = pos;
    std::optional<uint32_t> cp = DecodeUtf8(s, &pos);
    if (!cp) {  // Cannot come from valid input; keep the byte visible.
      absl::StrAppend(
          &out, "\\x",
          absl::Hex(static_cast<uint8_t>(s[start]), absl::kZeroPad2));
      continue;
    }
    const uint32_t c = *cp;
    if (c == static_cast<uint32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (!IsPrintable(c)) {
      if (c <= 0xff) {
        absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
      } else if (c <= 0xffff) {
        absl::StrAppend(&out, "\\u", absl::Hex(c, absl::kZeroPad4));
      } else {
        absl::StrAppend(&out, "\\U", absl::Hex(c, absl::kZeroPad8));
      }
    } else {
      absl::StrAppend(&out, s.substr(start, pos - start));
    }
  }
  out += quote;
}

// Repr stops growing past this size: shared sub-lists can make a value
// whose repr is terabytes ([[[0] * 1000] * 1000] * 1000). Callers bound
// their strings far below it (RenderLimits), so a stopped repr is always
// an error there, never a silently short one.
constexpr size_t kMaxReprBytes = 16u << 20;

void AppendRepr(const Value& value, std::string& out) {
  if (out.size() > kMaxReprBytes) return;
  switch (value.kind()) {
    case Value::Kind::kUndefined:
      out += "Undefined";  // repr() of jinja2's Undefined.
      return;
    case Value::Kind::kNone:
      out += "None";
      return;
    case Value::Kind::kBool:
      out += value.AsBool() ? "True" : "False";
      return;
    case Value::Kind::kInt:
      absl::StrAppend(&out, value.AsInt());
      return;
    case Value::Kind::kFloat:
      out += FormatFloat(value.AsDouble());
      return;
    case Value::Kind::kString:
      if (value.is_markup()) out += "Markup(";
      AppendStringRepr(value.AsString(), out);
      if (value.is_markup()) out += ')';
      return;
    case Value::Kind::kList: {
      const ListData& list = value.AsList();
      out += list.tuple ? '(' : '[';
      for (size_t i = 0; i < list.items.size(); ++i) {
        if (i > 0) out += ", ";
        AppendRepr(list.items[i], out);
      }
      if (list.tuple && list.items.size() == 1) out += ',';
      out += list.tuple ? ')' : ']';
      return;
    }
    case Value::Kind::kDict:
    case Value::Kind::kNamespace: {
      if (value.kind() == Value::Kind::kNamespace) out += "<Namespace ";
      out += '{';
      bool first = true;
      for (const auto& [key, item] : value.AsDict().items()) {
        if (!first) out += ", ";
        first = false;
        AppendRepr(key, out);
        out += ": ";
        AppendRepr(item, out);
      }
      out += '}';
      if (value.kind() == Value::Kind::kNamespace) out += '>';
      return;
    }
    case Value::Kind::kCallable:
      absl::StrAppend(&out, "<function ", value.AsCallable()->Name(), ">");
      return;
    case Value::Kind::kIterator: {
      const IterData& it = value.AsIterator();
      if (it.single_pass) {
        // Python adds the object's address, which would make the prompt
        // differ from run to run; we leave it out.
        absl::StrAppend(&out, "<", it.type_name, " object>");
        return;
      }
      absl::StrAppend(&out, it.type_name, "([");
      for (size_t i = 0; i < it.items.size(); ++i) {
        if (i > 0) out += ", ";
        AppendRepr(it.items[i], out);
      }
      out += "])";
      return;
    }
  }
}

}  // namespace

std::string Repr(const Value& value) {
  std::string out;
  AppendRepr(value, out);
  return out;
}

std::string Str(const Value& value) {
  if (value.is_string()) return value.AsString();
  if (value.is_undefined()) return "";  // str() of jinja2's Undefined.
  return Repr(value);
}

bool Equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind() != Value::Kind::kFloat && b.kind() != Value::Kind::kFloat) {
      const int64_t x = a.kind() == Value::Kind::kBool ? a.AsBool() : a.AsInt();
      const int64_t y = b.kind() == Value::Kind::kBool ? b.AsBool() : b.AsInt();
      return x == y;
    }
    return a.AsDouble() == b.AsDouble();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.AsString() == b.AsString();
    case Value::Kind::kList: {
      const auto& x = a.AsList();
      const auto& y = b.AsList();
      // Shared sub-lists ([a] * 1000) compare at once, not item by item.
      if (&x == &y) return true;
      if (x.tuple != y.tuple || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i) {
        if (!Equals(x.items[i], y.items[i])) return false;
      }
      return true;
    }
    case Value::Kind::kDict: {
      const Dict& x = a.AsDict();
      const Dict& y = b.AsDict();
      if (&x == &y) return true;
      if (x.size() != y.size()) return false;
      for (const auto& [key, item] : x.items()) {
        const Value* other = y.FindKey(key);
        if (other == nullptr || !Equals(item, *other)) return false;
      }
      return true;
    }
    case Value::Kind::kNamespace:
      return &a.MutableNamespace() == &b.MutableNamespace();
    case Value::Kind::kCallable:
      return a.AsCallable() == b.AsCallable();
    case Value::Kind::kIterator: {
      // Generators, iterators and dict_values are equal only to
      // themselves; dict_keys and dict_items compare as sets.
      const IterData& x = a.AsIterator();
      const IterData& y = b.AsIterator();
      if (&x == &y) return true;
      if (x.single_pass || y.single_pass ||
          absl::string_view(x.type_name) != y.type_name ||
          absl::string_view(x.type_name) == "dict_values" ||
          x.items.size() != y.items.size()) {
        return false;
      }
      for (const Value& item : x.items) {
        bool found = false;
        for (const Value& other : y.items) {
          if (Equals(item, other)) {
            found = true;
            break;
          }
        }
        if (!found) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

std::optional<std::string> HashKey(const Value& key) {
  switch (key.kind()) {
    case Value::Kind::kUndefined:  // jinja2's Undefineds are all one key.
      return "U";
    case Value::Kind::kNone:
      return "N";
    case Value::Kind::kBool:
      return key.AsBool() ? "i1" : "i0";
    case Value::Kind::kInt:
      return absl::StrCat("i", key.AsInt());
    case Value::Kind::kFloat: {
      const double f = key.AsDouble();
      if (std::trunc(f) == f && std::fabs(f) < 9.2e18) {
        return absl::StrCat("i", static_cast<int64_t>(f));
      }
      return absl::StrCat("f", FormatFloat(f));
    }
    case Value::Kind::kString:
      return absl::StrCat("s", key.AsString().size(), ":", key.AsString());
    case Value::Kind::kList: {
      if (!key.AsList().tuple) return std::nullopt;
      std::string out = absl::StrCat("t", key.AsList().items.size(), "(");
      for (const Value& item : key.AsList().items) {
        std::optional<std::string> h = HashKey(item);
        if (!h) return std::nullopt;
        absl::StrAppend(&out, h->size(), ":", *h);
      }
      return out;
    }
    case Value::Kind::kNamespace:  // Hashed by identity.
      return absl::StrCat("p",
                          reinterpret_cast<uintptr_t>(&key.MutableNamespace()));
    case Value::Kind::kCallable:
      return absl::StrCat("p",
                          reinterpret_cast<uintptr_t>(key.AsCallable().get()));
    case Value::Kind::kIterator:
      if (!key.AsIterator().single_pass) return std::nullopt;
      return absl::StrCat("p", reinterpret_cast<uintptr_t>(&key.AsIterator()));
    case Value::Kind::kDict:
      return std::nullopt;
  }
  return std::nullopt;
}

absl::StatusOr<int> Compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind() == Value::Kind::kInt && b.kind() == Value::Kind::kInt) {
      return a.AsInt() < b.AsInt() ? -1 : (a.AsInt() > b.AsInt() ? 1 : 0);
    }
    const double x = a.AsDouble(), y = b.AsDouble();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    // UTF-8 byte order is code point order.
    const int c = a.AsString().compare(b.AsString());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_list() && b.is_list()) {
    const auto& x = a.AsList().items;
    const auto& y = b.AsList().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (Equals(x[i], y[i])) continue;
      return Compare(x[i], y[i]);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("'<' not supported between instances of '", a.TypeName(),
                   "' and '", b.TypeName(), "'"));
}

size_t CodePointCount(absl::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<uint8_t>(c) & 0xc0) != 0x80;
  return n;
}

std::vector<size_t> CodePointOffsets(absl::string_view s) {
  std::vector<size_t> offsets;
  offsets.reserve(s.size() + 1);
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<uint8_t>(s[i]) & 0xc0) != 0x80) offsets.push_back(i);
  }
  offsets.push_back(s.size());
  return offsets;
}

}  // namespace tpserve::jinja
