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
// (ImmutableSandboxedEnvironment), so they are shared, not copied. The
// mutable objects are the namespace, which `{% set ns.x = ... %}` writes,
// and generators, which iterating uses up (IterData).
#ifndef TPSERVE_COMMON_JINJA_VALUE_H_
#define TPSERVE_COMMON_JINJA_VALUE_H_

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tpserve::jinja {

class Value;
class Callable;

// How a container nests, kept when it is made (containers are immutable)
// so that the interpreter can refuse values that recursive code (repr,
// ==, tojson, destruction) could not walk: nesting past a bound, and
// cycles, which only a namespace or a function inside a namespace can
// close.
struct Nesting {
  int depth = 1;                 // 1 + the deepest item's.
  bool holds_reference = false;  // Some item is a namespace or function.
};

struct ListData {
  std::vector<Value> items;
  bool tuple = false;  // Prints as (a, b) rather than [a, b].
  Nesting nesting;
};

// What Python gives for a lazy iterable: the generators jinja2's filters
// return (map, select, reject, selectattr, rejectattr, unique, batch,
// items), reversed()'s iterators, and dict views (dict.items() and the
// like). Their items are computed when made, but they behave as Python's
// objects do: none is JSON serializable or subscriptable; generators and
// iterators are always true, have no len(), and are used up by whatever
// iterates them (a second loop over one sees nothing more); views are
// reusable and have a length.
struct IterData {
  std::vector<Value> items;
  const char* type_name;  // "generator", "dict_keys", ...
  bool single_pass;       // A generator or iterator, not a view.
  // Items a single-pass iterator has handed out (shared by every copy of
  // the value, as a Python generator is one object).
  mutable size_t consumed = 0;
  Nesting nesting;
};

// An insertion-ordered map (Python dicts keep insertion order, which tojson
// and iteration show). Keys are str, or any hashable value (int, float,
// bool, None, tuples of those), compared as Python does: 1, 1.0 and True
// are one key.
class Dict {
 public:
  // The value under a str key, or nullptr.
  const Value* Find(absl::string_view key) const;
  // The value under any key; nullptr when absent or unhashable.
  const Value* FindKey(const Value& key) const;
  void Set(std::string key, Value value);  // Replaces in place if present.
  // Any key; a TypeError (InvalidArgument) for unhashable ones (lists,
  // dicts), as in Python. A key equal to one present keeps that key.
  absl::Status SetKey(Value key, Value value);
  const std::vector<std::pair<Value, Value>>& items() const { return items_; }
  size_t size() const { return items_.size(); }
  // Set by Value::MakeDict (a namespace's attributes change; see
  // Value::nesting()).
  Nesting nesting;

 private:
  std::vector<std::pair<Value, Value>> items_;
  absl::flat_hash_map<std::string, size_t> index_;  // str keys
  // Other keys, by HashKey().
  absl::flat_hash_map<std::string, size_t> other_index_;
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
    kIterator,  // A generator, iterator or dict view (IterData).
  };

  Value() = default;  // Undefined.
  static Value Undefined(std::string name);
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double f);
  static Value String(std::string s);
  // markupsafe's Markup (what `|safe` and `|e` give): a str that `+`, `%`
  // and its own methods keep marked, escaping the plain strings they mix
  // in. It is a kString; is_markup() tells it apart.
  static Value Markup(std::string s);
  static Value List(std::vector<Value> items, bool tuple = false);
  static Value MakeDict(Dict dict);
  static Value Namespace(Dict dict);
  static Value Function(std::shared_ptr<Callable> fn);
  static Value Iterator(std::vector<Value> items, const char* type_name,
                        bool single_pass);
  static Value Generator(std::vector<Value> items) {
    return Iterator(std::move(items), "generator", true);
  }
  // JSON as json.loads gives it: objects keep their key order.
  static Value FromJson(const nlohmann::ordered_json& json);

  Kind kind() const {
    return data_.index() == kMarkupIndex ? Kind::kString
                                         : static_cast<Kind>(data_.index());
  }
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_string() const { return kind() == Kind::kString; }
  bool is_list() const { return kind() == Kind::kList; }
  bool is_dict() const { return kind() == Kind::kDict; }
  bool is_markup() const { return data_.index() == kMarkupIndex; }
  bool is_iterator() const { return kind() == Kind::kIterator; }
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
    if (const auto* m = std::get_if<MarkupPtr>(&data_)) return *m->p;
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
  const IterData& AsIterator() const {
    return *std::get<std::shared_ptr<const IterData>>(data_);
  }
  // The variable name an undefined value came from ("" if none).
  const std::string& undefined_name() const {
    return std::get<UndefinedName>(data_).name;
  }

  // 0 for scalars; a container's Nesting; a namespace and a function are
  // depth 1 and hold a reference (they are what a cycle would go through).
  Nesting nesting() const;

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
  struct MarkupPtr {
    std::shared_ptr<const std::string> p;
  };
  // The variant's alternatives follow Kind, then Markup's.
  using Data =
      std::variant<UndefinedName, NoneTag, bool, int64_t, double,
                   std::shared_ptr<const std::string>,
                   std::shared_ptr<const ListData>, std::shared_ptr<const Dict>,
                   NamespacePtr, std::shared_ptr<Callable>,
                   std::shared_ptr<const IterData>, MarkupPtr>;
  static constexpr size_t kMarkupIndex = 11;
  static_assert(std::variant_size_v<Data> == kMarkupIndex + 1);
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
// A text that is equal for keys Python's dict takes as one (1, 1.0, True;
// equal tuples), used to index non-str dict keys; nullopt when the value is
// unhashable (list, dict).
std::optional<std::string> HashKey(const Value& key);
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
  // What the function holds (a bound method its receiver), for
  // Value::nesting(). Depth 1, and always a reference: a function is what a
  // namespace must not hold.
  virtual Nesting nesting() const { return Nesting{1, true}; }
};

}  // namespace tpserve::jinja

#endif  // TPSERVE_COMMON_JINJA_VALUE_H_
