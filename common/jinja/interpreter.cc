#include "common/jinja/interpreter.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/jinja/builtins.h"
#include "common/jinja/depth_guard.h"
#include "common/status_macros.h"

namespace tpserve::jinja {

// A macro: its definition and the scope it was defined in. The scope is
// held weakly: scopes hold the macros they define, and a strong pointer
// back would be a cycle that never frees.
struct Interpreter::Macro {
  const Stmt* def;
  std::weak_ptr<Frame> scope;
  const StmtList* caller_body = nullptr;  // Set for {% call %}'s `caller`.
};

namespace {

// Prefixes a line number to an error that has none yet, so the innermost
// construct names its line.
absl::Status AtLine(absl::Status status, int line) {
  if (status.ok() || absl::StartsWith(status.message(), "line ")) {
    return status;
  }
  return absl::Status(status.code(),
                      absl::StrCat("line ", line, ": ", status.message()));
}

class MacroFunction : public Callable {
 public:
  explicit MacroFunction(Interpreter::Macro macro) : macro_(std::move(macro)) {}
  absl::StatusOr<Value> Call(Interpreter& in, CallArgs args) override {
    return in.CallMacro(macro_, std::move(args));
  }
  std::string Name() const override {
    return macro_.caller_body != nullptr ? "caller" : macro_.def->text;
  }

 private:
  Interpreter::Macro macro_;
};

// loop.cycle(a, b, ...): the argument at loop.index0 modulo their count.
class CycleFunction : public Callable {
 public:
  explicit CycleFunction(int64_t index0) : index0_(index0) {}
  absl::StatusOr<Value> Call(Interpreter&, CallArgs args) override {
    if (args.positional.empty()) {
      return absl::InvalidArgumentError(
          "loop.cycle() needs at least one value");
    }
    return args.positional[index0_ % args.positional.size()];
  }
  std::string Name() const override { return "cycle"; }

 private:
  int64_t index0_;
};

// Statements and expressions being evaluated at once, across macro calls:
// the C++ recursion, bounded well inside a thread's stack (a few hundred
// bytes a level, more under sanitizers). Parse depth and macro depth bound
// it too, but their product does not fit.
constexpr int kMaxDepth = 1000;

absl::Status TooDeep() {
  return absl::ResourceExhaustedError(
      absl::StrCat("the template nests statements, expressions and macro "
                   "calls over ",
                   kMaxDepth, " deep"));
}

}  // namespace

absl::Status Interpreter::Step() { return Charge(1); }

absl::Status Interpreter::Charge(int64_t steps) {
  steps_ += steps;
  if (steps_ > options_.limits.max_steps) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the template ran over ", options_.limits.max_steps,
                     " evaluation steps (a loop or recursion limit)"));
  }
  return absl::OkStatus();
}

absl::Status Interpreter::CheckString(size_t bytes) const {
  if (bytes > options_.limits.max_output_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the template built a string of over ",
                     options_.limits.max_output_bytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status Interpreter::CheckSize(size_t items) const {
  if (items > options_.limits.max_list_items) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the template built a list of over ",
                     options_.limits.max_list_items, " items"));
  }
  return absl::OkStatus();
}

absl::Status Interpreter::NewString(size_t bytes) {
  TP_RETURN_IF_ERROR(CheckString(bytes));
  // Building it was work in proportion to its size.
  return Charge(static_cast<int64_t>(bytes / 64));
}

absl::Status Interpreter::CheckList(size_t items) {
  if (items > options_.limits.max_list_items) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the template built a list of over ",
                     options_.limits.max_list_items, " items"));
  }
  return Charge(static_cast<int64_t>(items));
}

absl::Status Interpreter::Append(absl::string_view text) {
  if (out_->size() + text.size() > options_.limits.max_output_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the template's output is over ",
                     options_.limits.max_output_bytes, " bytes"));
  }
  out_->append(text.data(), text.size());
  return absl::OkStatus();
}

absl::StatusOr<std::string> Interpreter::Render(const StmtList& program,
                                                const Dict& variables) {
  auto globals = std::make_shared<Frame>();
  Dict builtins;
  AddGlobals(builtins);
  for (const Dict* vars : {static_cast<const Dict*>(&builtins), &variables}) {
    for (const auto& [name, value] : vars->items()) {
      if (name.is_string()) globals->vars[name.AsString()] = value;
    }
  }
  frame_ = std::make_shared<Frame>();
  frame_->parent = globals;
  std::string out;
  out_ = &out;
  Flow flow = Flow::kNormal;
  absl::Status status = Exec(program, &flow);
  frame_.reset();
  out_ = nullptr;
  if (!status.ok()) return status;
  return out;
}

Value Interpreter::Lookup(const std::string& name) const {
  for (const Frame* f = frame_.get(); f != nullptr; f = f->parent.get()) {
    auto it = f->vars.find(name);
    if (it != f->vars.end()) return it->second;
  }
  return Value::Undefined(absl::StrCat("'", name, "' is undefined"));
}

void Interpreter::Assign(const std::vector<std::string>& targets,
                         const Value& value, int line, absl::Status* status) {
  if (targets.size() == 1) {
    frame_->vars[targets[0]] = value;
    return;
  }
  absl::StatusOr<std::vector<Value>> items = Iterate(value);
  if (!items.ok()) {
    *status = AtLine(items.status(), line);
    return;
  }
  if (items->size() != targets.size()) {
    *status = absl::InvalidArgumentError(
        absl::StrCat("line ", line, ": cannot unpack ", items->size(),
                     " values into ", targets.size(), " names"));
    return;
  }
  for (size_t i = 0; i < targets.size(); ++i) {
    frame_->vars[targets[i]] = (*items)[i];
  }
}

absl::Status Interpreter::Exec(const StmtList& body, Flow* flow) {
  for (const auto& stmt : body) {
    TP_RETURN_IF_ERROR(ExecOne(*stmt, flow));
    if (*flow != Flow::kNormal) return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::Status Interpreter::ExecOne(const Stmt& stmt, Flow* flow) {
  DepthGuard guard(&depth_);
  if (depth_ > kMaxDepth) return TooDeep();
  TP_RETURN_IF_ERROR(Step());
  switch (stmt.kind) {
    case Stmt::Kind::kText:
      return Append(stmt.text);
    case Stmt::Kind::kOutput: {
      absl::StatusOr<Value> v = Eval(*stmt.expr);
      if (!v.ok()) return AtLine(v.status(), stmt.line);
      return Append(Str(*v));
    }
    case Stmt::Kind::kIf:
      for (size_t i = 0; i < stmt.conditions.size(); ++i) {
        absl::StatusOr<Value> cond = Eval(*stmt.conditions[i]);
        if (!cond.ok()) return AtLine(cond.status(), stmt.conditions[i]->line);
        if (cond->Truthy()) return Exec(stmt.bodies[i], flow);
      }
      return Exec(stmt.else_body, flow);
    case Stmt::Kind::kFor:
      return ExecFor(stmt);
    case Stmt::Kind::kSet:
    case Stmt::Kind::kSetBlock:
      return ExecSet(stmt);
    case Stmt::Kind::kMacro: {
      Macro macro{&stmt, frame_};
      frame_->vars[stmt.text] =
          Value::Function(std::make_shared<MacroFunction>(std::move(macro)));
      return absl::OkStatus();
    }
    case Stmt::Kind::kCallBlock: {
      // `caller` is a macro over the block's body, passed to the callee
      // (which sees it whether or not it names it as a parameter).
      Macro caller{&stmt, frame_, &stmt.body};
      absl::StatusOr<Value> fn = Eval(*stmt.expr->a);
      if (!fn.ok()) return AtLine(fn.status(), stmt.line);
      absl::StatusOr<CallArgs> args = EvalArgs(*stmt.expr);
      if (!args.ok()) return AtLine(args.status(), stmt.line);
      args->keyword.emplace_back(
          "caller",
          Value::Function(std::make_shared<MacroFunction>(std::move(caller))));
      absl::StatusOr<Value> v = CallFunction(*fn, std::move(*args));
      if (!v.ok()) return AtLine(v.status(), stmt.line);
      return Append(Str(*v));
    }
    case Stmt::Kind::kFilterBlock: {
      TP_ASSIGN_OR_RETURN(std::string text, Capture(stmt.body));
      const Value input = Value::String(std::move(text));
      absl::StatusOr<Value> v = EvalFilter(*stmt.filter, &input);
      if (!v.ok()) return AtLine(v.status(), stmt.line);
      return Append(Str(*v));
    }
    case Stmt::Kind::kBreak:
      *flow = Flow::kBreak;
      return absl::OkStatus();
    case Stmt::Kind::kContinue:
      *flow = Flow::kContinue;
      return absl::OkStatus();
  }
  return absl::InternalError("unknown statement");
}

absl::Status Interpreter::ExecFor(const Stmt& stmt) {
  absl::StatusOr<Value> iterable = Eval(*stmt.expr);
  if (!iterable.ok()) return AtLine(iterable.status(), stmt.line);
  absl::StatusOr<std::vector<Value>> all = Iterate(*iterable);
  if (!all.ok()) return AtLine(all.status(), stmt.line);
  // A str iterates as one value per character.
  TP_RETURN_IF_ERROR(AtLine(CheckList(all->size()), stmt.line));
  // The inline `if` filters before loop.* is counted, as in jinja2. It
  // sees each item in a scope of its own.
  std::vector<Value> items;
  if (stmt.filter != nullptr) {
    for (const Value& item : *all) {
      TP_RETURN_IF_ERROR(Step());
      auto scope = std::make_shared<Frame>();
      scope->parent = frame_;
      std::swap(frame_, scope);
      absl::Status status;
      Assign(stmt.targets, item, stmt.line, &status);
      absl::StatusOr<Value> keep =
          status.ok() ? Eval(*stmt.filter) : absl::StatusOr<Value>(status);
      std::swap(frame_, scope);
      if (!keep.ok()) return AtLine(keep.status(), stmt.line);
      if (keep->Truthy()) items.push_back(item);
    }
  } else {
    items = std::move(*all);
  }
  if (items.empty()) {
    Flow flow = Flow::kNormal;
    return Exec(stmt.else_body, &flow);
  }
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    TP_RETURN_IF_ERROR(Step());
    Dict loop;
    loop.Set("index", Value::Int(i + 1));
    loop.Set("index0", Value::Int(i));
    loop.Set("revindex", Value::Int(n - i));
    loop.Set("revindex0", Value::Int(n - i - 1));
    loop.Set("first", Value::Bool(i == 0));
    loop.Set("last", Value::Bool(i == n - 1));
    loop.Set("length", Value::Int(n));
    loop.Set("depth", Value::Int(1));
    loop.Set("depth0", Value::Int(0));
    loop.Set("previtem", i > 0 ? items[i - 1]
                               : Value::Undefined("there is no previous item"));
    loop.Set("nextitem", i + 1 < n ? items[i + 1]
                                   : Value::Undefined("there is no next item"));
    loop.Set("cycle", Value::Function(std::make_shared<CycleFunction>(i)));
    auto scope = std::make_shared<Frame>();
    scope->parent = frame_;
    scope->vars["loop"] = Value::MakeDict(std::move(loop));
    std::swap(frame_, scope);
    absl::Status status;
    Assign(stmt.targets, items[i], stmt.line, &status);
    Flow flow = Flow::kNormal;
    if (status.ok()) status = Exec(stmt.body, &flow);
    std::swap(frame_, scope);
    TP_RETURN_IF_ERROR(status);
    if (flow == Flow::kBreak) break;
  }
  return absl::OkStatus();
}

absl::Status Interpreter::ExecSet(const Stmt& stmt) {
  Value value;
  if (stmt.kind == Stmt::Kind::kSetBlock) {
    TP_ASSIGN_OR_RETURN(std::string text, Capture(stmt.body));
    value = Value::String(std::move(text));
    if (stmt.filter != nullptr) {
      absl::StatusOr<Value> v = EvalFilter(*stmt.filter, &value);
      if (!v.ok()) return AtLine(v.status(), stmt.line);
      value = std::move(*v);
    }
  } else {
    absl::StatusOr<Value> v = Eval(*stmt.expr);
    if (!v.ok()) return AtLine(v.status(), stmt.line);
    value = std::move(*v);
  }
  if (!stmt.text.empty()) {  // {% set ns.attr = value %}
    const Value ns = Lookup(stmt.targets[0]);
    if (ns.kind() != Value::Kind::kNamespace) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", stmt.line, ": cannot assign attribute on non-namespace '",
          stmt.targets[0], "'"));
    }
    if (value.nesting().holds_reference) {
      // It could close a cycle (ns.x = ns), which nothing would free.
      return absl::InvalidArgumentError(
          absl::StrCat("line ", stmt.line, ": namespace attribute '", stmt.text,
                       "' cannot hold a namespace or a function"));
    }
    Dict& attributes = ns.MutableNamespace();
    attributes.nesting.depth =
        std::max(attributes.nesting.depth, value.nesting().depth + 1);
    if (attributes.nesting.depth > options_.limits.max_json_depth) {
      return absl::ResourceExhaustedError(
          absl::StrCat("line ", stmt.line,
                       ": the template built values nested "
                       "over ",
                       options_.limits.max_json_depth, " deep"));
    }
    attributes.Set(stmt.text, std::move(value));
    return absl::OkStatus();
  }
  absl::Status status;
  Assign(stmt.targets, value, stmt.line, &status);
  return status;
}

absl::StatusOr<std::string> Interpreter::Capture(const StmtList& body) {
  std::string text;
  std::string* saved = out_;
  out_ = &text;
  Flow flow = Flow::kNormal;
  absl::Status status = Exec(body, &flow);
  out_ = saved;
  if (!status.ok()) return status;
  return text;
}

absl::StatusOr<Value> Interpreter::CallMacro(const Macro& macro,
                                             CallArgs args) {
  std::shared_ptr<Frame> scope_parent = macro.scope.lock();
  if (scope_parent == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "macro '", macro.def->text, "' called after its scope ended"));
  }
  if (call_depth_ >= options_.limits.max_call_depth) {
    return absl::ResourceExhaustedError(
        absl::StrCat("macro calls nested over ", options_.limits.max_call_depth,
                     " deep (runaway recursion?)"));
  }
  auto scope = std::make_shared<Frame>();
  scope->parent = std::move(scope_parent);
  const std::vector<MacroParam>& params = macro.def->params;
  if (args.positional.size() > params.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("macro '", macro.def->text, "' takes ", params.size(),
                     " arguments, got ", args.positional.size()));
  }
  // Defaults are evaluated in the macro's scope, at call time.
  std::swap(frame_, scope);
  absl::Status status;
  for (size_t i = 0; i < params.size() && status.ok(); ++i) {
    const MacroParam& p = params[i];
    if (i < args.positional.size()) {
      frame_->vars[p.name] = args.positional[i];
      continue;
    }
    bool found = false;
    for (auto& [name, value] : args.keyword) {
      if (name == p.name) {
        frame_->vars[p.name] = value;
        found = true;
      }
    }
    if (found) continue;
    if (p.default_value == nullptr) {
      frame_->vars[p.name] = Value::Undefined(
          absl::StrCat("parameter '", p.name, "' was not provided"));
      continue;
    }
    absl::StatusOr<Value> d = Eval(*p.default_value);
    if (!d.ok()) {
      status = d.status();
    } else {
      frame_->vars[p.name] = std::move(*d);
    }
  }
  for (const auto& [name, value] : args.keyword) {
    bool known = name == "caller";  // From a {% call %} block.
    if (known) frame_->vars["caller"] = value;
    for (const MacroParam& p : params) known = known || p.name == name;
    if (!known && status.ok()) {
      status = absl::InvalidArgumentError(absl::StrCat(
          "macro '", macro.def->text, "' has no parameter '", name, "'"));
    }
  }
  if (!status.ok()) {
    std::swap(frame_, scope);
    return status;
  }
  absl::StatusOr<std::string> text;
  {
    ++call_depth_;
    text = Capture(macro.caller_body != nullptr ? *macro.caller_body
                                                : macro.def->body);
    --call_depth_;
  }
  std::swap(frame_, scope);
  if (!text.ok()) return text.status();
  return Value::String(std::move(*text));
}

absl::StatusOr<Value> Interpreter::CallFunction(const Value& fn,
                                                CallArgs args) {
  if (fn.is_undefined()) return UndefinedError(fn);
  if (fn.kind() != Value::Kind::kCallable) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", fn.TypeName(), "' object is not callable"));
  }
  return fn.AsCallable()->Call(*this, std::move(args));
}

absl::StatusOr<CallArgs> Interpreter::EvalArgs(const Expr& expr) {
  CallArgs args;
  for (const ExprPtr& e : expr.items) {
    TP_ASSIGN_OR_RETURN(Value v, Eval(*e));
    args.positional.push_back(std::move(v));
  }
  for (const Keyword& k : expr.keywords) {
    TP_ASSIGN_OR_RETURN(Value v, Eval(*k.value));
    args.keyword.emplace_back(k.name, std::move(v));
  }
  return args;
}

absl::StatusOr<Value> Interpreter::EvalCall(const Expr& expr) {
  TP_ASSIGN_OR_RETURN(Value fn, Eval(*expr.a));
  TP_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(expr));
  return CallFunction(fn, std::move(args));
}

absl::StatusOr<Value> Interpreter::EvalFilter(const Expr& expr,
                                              const Value* input) {
  // A chain `x | f | g` nests as g(f(x)); the innermost `a` is the input
  // (null in filter blocks, where `input` is the block's text).
  Value value;
  if (expr.a != nullptr) {
    if (expr.a->kind == Expr::Kind::kFilter) {
      TP_ASSIGN_OR_RETURN(value, EvalFilter(*expr.a, input));
    } else {
      TP_ASSIGN_OR_RETURN(value, Eval(*expr.a));
    }
  } else if (input != nullptr) {
    value = *input;
  }
  TP_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(expr));
  return ApplyFilter(*this, expr.name, value, std::move(args));
}

absl::StatusOr<Value> Interpreter::EvalTest(const Expr& expr) {
  TP_ASSIGN_OR_RETURN(Value value, Eval(*expr.a));
  TP_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(expr));
  TP_ASSIGN_OR_RETURN(bool result, ApplyTest(*this, expr.name, value, args));
  return Value::Bool(result != expr.negated);
}

absl::StatusOr<Value> Interpreter::EvalBinary(const Expr& expr) {
  TP_ASSIGN_OR_RETURN(Value a, Eval(*expr.a));
  TP_ASSIGN_OR_RETURN(Value b, Eval(*expr.b));
  if (expr.name == "~") {
    std::string s = Str(a);
    const std::string t = Str(b);
    TP_RETURN_IF_ERROR(NewString(s.size() + t.size()));
    s += t;
    return Value::String(std::move(s));
  }
  return Arithmetic(*this, expr.name, a, b);
}

namespace {

absl::StatusOr<bool> CompareOnce(const Value& a, const std::string& op,
                                 const Value& b) {
  if (op == "==") return Equals(a, b);
  if (op == "!=") return !Equals(a, b);
  if (op == "in" || op == "not in") {
    TP_ASSIGN_OR_RETURN(bool in, Contains(b, a));
    return in == (op == "in");
  }
  if (a.is_undefined()) return UndefinedError(a);
  if (b.is_undefined()) return UndefinedError(b);
  absl::StatusOr<int> c = Compare(a, b);
  if (!c.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", op, "' not supported between instances of '",
                     a.TypeName(), "' and '", b.TypeName(), "'"));
  }
  if (op == "<") return *c < 0;
  if (op == "<=") return *c <= 0;
  if (op == ">") return *c > 0;
  return *c >= 0;
}

}  // namespace

absl::StatusOr<Value> Interpreter::EvalCompare(const Expr& expr) {
  TP_ASSIGN_OR_RETURN(Value left, Eval(*expr.a));
  for (const Keyword& link : expr.keywords) {
    TP_ASSIGN_OR_RETURN(Value right, Eval(*link.value));
    if (link.name == "in" || link.name == "not in") {  // A scan of `right`.
      if (right.is_list()) {
        TP_RETURN_IF_ERROR(
            Charge(static_cast<int64_t>(right.AsList().items.size())));
      } else if (right.is_string()) {
        TP_RETURN_IF_ERROR(
            Charge(static_cast<int64_t>(right.AsString().size() / 64)));
      }
    }
    TP_ASSIGN_OR_RETURN(bool holds, CompareOnce(left, link.name, right));
    if (!holds) return Value::Bool(false);
    left = std::move(right);
  }
  return Value::Bool(true);
}

absl::StatusOr<Value> Interpreter::Eval(const Expr& expr) {
  DepthGuard guard(&depth_);
  if (depth_ > kMaxDepth) return TooDeep();
  TP_ASSIGN_OR_RETURN(Value v, EvalNode(expr));
  if (v.is_list()) TP_RETURN_IF_ERROR(CheckSize(v.AsList().items.size()));
  if (v.nesting().depth > options_.limits.max_json_depth) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the template built values nested over ",
                     options_.limits.max_json_depth, " deep"));
  }
  return v;
}

absl::StatusOr<Value> Interpreter::EvalNode(const Expr& expr) {
  TP_RETURN_IF_ERROR(Step());
  switch (expr.kind) {
    case Expr::Kind::kLiteral:
      return expr.value;
    case Expr::Kind::kName:
      return Lookup(expr.name);
    case Expr::Kind::kList:
    case Expr::Kind::kTuple: {
      std::vector<Value> items;
      for (const ExprPtr& e : expr.items) {
        TP_ASSIGN_OR_RETURN(Value v, Eval(*e));
        items.push_back(std::move(v));
      }
      return Value::List(std::move(items), expr.kind == Expr::Kind::kTuple);
    }
    case Expr::Kind::kDict: {
      Dict dict;
      for (size_t i = 0; i + 1 < expr.items.size(); i += 2) {
        TP_ASSIGN_OR_RETURN(Value k, Eval(*expr.items[i]));
        TP_ASSIGN_OR_RETURN(Value v, Eval(*expr.items[i + 1]));
        TP_RETURN_IF_ERROR(dict.SetKey(std::move(k), std::move(v)));
      }
      return Value::MakeDict(std::move(dict));
    }
    case Expr::Kind::kGetAttr: {
      TP_ASSIGN_OR_RETURN(Value obj, Eval(*expr.a));
      return GetAttr(obj, expr.name);
    }
    case Expr::Kind::kGetItem: {
      TP_ASSIGN_OR_RETURN(Value obj, Eval(*expr.a));
      TP_ASSIGN_OR_RETURN(Value key, Eval(*expr.b));
      if (obj.is_string()) {  // Indexing walks the code points.
        TP_RETURN_IF_ERROR(
            Charge(static_cast<int64_t>(obj.AsString().size() / 64)));
      }
      return GetItem(obj, key);
    }
    case Expr::Kind::kSlice: {
      TP_ASSIGN_OR_RETURN(Value obj, Eval(*expr.a));
      Value parts[3] = {Value::None(), Value::None(), Value::None()};
      for (int i = 0; i < 3; ++i) {
        if (expr.items[i] != nullptr) {
          TP_ASSIGN_OR_RETURN(parts[i], Eval(*expr.items[i]));
        }
      }
      return SliceOf(obj, parts[0], parts[1], parts[2]);
    }
    case Expr::Kind::kCall:
      return EvalCall(expr);
    case Expr::Kind::kFilter:
      return EvalFilter(expr, nullptr);
    case Expr::Kind::kTest:
      return EvalTest(expr);
    case Expr::Kind::kNegate:
    case Expr::Kind::kPlus: {
      TP_ASSIGN_OR_RETURN(Value v, Eval(*expr.a));
      if (expr.kind == Expr::Kind::kPlus && v.is_number()) return v;
      return Arithmetic(*this, "-", Value::Int(0), v);
    }
    case Expr::Kind::kNot: {
      TP_ASSIGN_OR_RETURN(Value v, Eval(*expr.a));
      return Value::Bool(!v.Truthy());
    }
    case Expr::Kind::kAnd: {
      TP_ASSIGN_OR_RETURN(Value a, Eval(*expr.a));
      if (!a.Truthy()) return a;
      return Eval(*expr.b);
    }
    case Expr::Kind::kOr: {
      TP_ASSIGN_OR_RETURN(Value a, Eval(*expr.a));
      if (a.Truthy()) return a;
      return Eval(*expr.b);
    }
    case Expr::Kind::kBinary:
      return EvalBinary(expr);
    case Expr::Kind::kCompare:
      return EvalCompare(expr);
    case Expr::Kind::kCondition: {
      TP_ASSIGN_OR_RETURN(Value cond, Eval(*expr.b));
      if (cond.Truthy()) return Eval(*expr.a);
      if (expr.c != nullptr) return Eval(*expr.c);
      return Value::Undefined("the condition was false and has no else");
    }
  }
  return absl::InternalError("unknown expression");
}

}  // namespace tpserve::jinja
