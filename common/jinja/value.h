// Values of the Jinja engine: Python's object model, as far as chat
// templates see it.
//
// Templates are written against Python jinja2, so a value behaves as the
// Python object would: `{{ x }}` prints str(x) (lists and dicts as their
// repr), `==` is Python equality (1 == 1.0 == True), strings are sequences
// of code points (len, indexing and slices count characters, not bytes),
// and a missing variable is jinja2's lenient Undefined (prints nothing, is
// falsy, and errors only when something is looked up on it).
//
// Lists and dicts are immutable once built, as in transformers' sandbox
// (ImmutableSandboxedEnvironment), so they are shared, not copied. The one
// mutable object is the namespace, which `{% set ns.x = ... %}` writes.
#ifndef TPSERVE_COMMON_JINJA_VALUE_H_
#define TPSERVE_COMMON_JINJA_VALUE_H_

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tpserve::jinja {

class Value;
class Callable;

struct ListData {
  std::vector<Value> items;
  bool tuple = false;  // Prints as (a, b) rather than [a, b].
};

// An insertion-ordered str -> value map (Python dicts keep insertion order,
// which tojson and iteration show).
class Dict {
 public:
  const Value* Find(absl::string_view key) const;
  void Set(std::string key, Value value);  // Replaces in place if present.
  const std::vector<std::pair<std::string, Value>>& items() const {
    return items_;
  }
  size_t size() const { return items_.size(); }

 private:
  std::vector<std::pair<std::string, Value>> items_;
  absl::flat_hash_map<std::string, size_t> index_;
};

class Value {
 public:
  enum class Kind {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kDict,
    kNamespace,
    kCallable,
  };

  Value() = default;  // Undefined.
  static Value Undefined(std::string name);
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double f);
  static Value String(std::string s);
  static Value List(std::vector<Value> items, bool tuple = false);
  static Value MakeDict(Dict dict);
  static Value Namespace(Dict dict);
  static Value Function(std::shared_ptr<Callable> fn);
  // JSON as json.loads gives it: objects keep their key order.
  static Value FromJson(const nlohmann::ordered_json& json);

  Kind kind() const { return static_cast<Kind>(data_.index()); }
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_string() const { return kind() == Kind::kString; }
  bool is_list() const { return kind() == Kind::kList; }
  bool is_dict() const { return kind() == Kind::kDict; }
  // Python's numbers.Number, which bool is too.
  bool is_number() const {
    return kind() == Kind::kInt || kind() == Kind::kFloat ||
           kind() == Kind::kBool;
  }

  bool AsBool() const { return std::get<bool>(data_); }
  int64_t AsInt() const { return std::get<int64_t>(data_); }
  // int, float or bool as a double.
  double AsDouble() const;
  const std::string& AsString() const {
    return *std::get<std::shared_ptr<const std::string>>(data_);
  }
  const ListData& AsList() const {
    return *std::get<std::shared_ptr<const ListData>>(data_);
  }
  const Dict& AsDict() const;  // A dict or a namespace's attributes.
  Dict& MutableNamespace() const { return *std::get<NamespacePtr>(data_).p; }
  const std::shared_ptr<Callable>& AsCallable() const {
    return std::get<std::shared_ptr<Callable>>(data_);
  }
  // The variable name an undefined value came from ("" if none).
  const std::string& undefined_name() const {
    return std::get<UndefinedName>(data_).name;
  }

  // Python truthiness.
  bool Truthy() const;
  // Python's type name, for error messages: str, int, list, dict, ...
  absl::string_view TypeName() const;

 private:
  struct UndefinedName {
    std::string name;
  };
  struct NoneTag {};
  struct NamespacePtr {
    std::shared_ptr<Dict> p;
  };
  using Data =
      std::variant<UndefinedName, NoneTag, bool, int64_t, double,
                   std::shared_ptr<const std::string>,
                   std::shared_ptr<const ListData>, std::shared_ptr<const Dict>,
                   NamespacePtr, std::shared_ptr<Callable>>;
  Data data_;
};

// Python str(value): strings as they are, Undefined as "", the rest as
// repr.
std::string Str(const Value& value);
// Python repr(value).
std::string Repr(const Value& value);
// Python repr of a float: shortest round-trip digits, "1.0", "1e-05",
// "1e+16", "inf", "nan".
std::string FormatFloat(double f);

// Python ==.
bool Equals(const Value& a, const Value& b);
// Python <: -1, 0 or 1; a TypeError (as InvalidArgument) when the types do
// not order (e.g. str < int).
absl::StatusOr<int> Compare(const Value& a, const Value& b);

// json.dumps(value, ensure_ascii=False, indent=..., separators=...,
// sort_keys=...) as transformers' `tojson` filter calls it.
struct JsonStyle {
  bool has_indent = false;
  std::string indent;  // Per level, when has_indent.
  // Defaults follow json.dumps: (", ", ": "), or ("," , ": ") with indent.
  std::string item_separator;
  std::string key_separator;
  bool sort_keys = false;
  bool ensure_ascii = false;
};
JsonStyle DefaultJsonStyle();
absl::StatusOr<std::string> ToJson(const Value& value, const JsonStyle& style,
                                   int max_depth, size_t max_bytes);

// Number of code points (Python len of a str).
size_t CodePointCount(absl::string_view s);
// Byte offsets of each code point start, plus s.size() at the end.
std::vector<size_t> CodePointOffsets(absl::string_view s);

// Functions callable from templates: builtins, macros, bound methods.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};
class Interpreter;
class Callable {
 public:
  virtual ~Callable() = default;
  virtual absl::StatusOr<Value> Call(Interpreter& interpreter,
                                     CallArgs args) = 0;
  virtual std::string Name() const = 0;
};

}  // namespace tpserve::jinja

#endif  // TPSERVE_COMMON_JINJA_VALUE_H_
