// Runs a parsed template over its variables, with jinja2's semantics as
// transformers configures it (see value.h for the object model). Scoping
// follows jinja2: each loop iteration and each macro call is a new scope
// whose assignments vanish when it ends (hence `namespace`); `if` blocks
// share their enclosing scope.
//
// Templates and the messages they run over are untrusted, so a render is
// bounded: output and every string built stay under max_output_bytes, lists
// under max_list_items, evaluation under max_steps (which bounds loops), and
// macro calls nest at most max_call_depth deep, values nest at most
// max_json_depth deep. Hitting a bound is a ResourceExhausted error; nothing
// is truncated silently. A namespace attribute cannot hold a namespace or a
// function (or a container of one), so values form no cycles: recursive
// walks (repr, ==, tojson, freeing) always end.
#ifndef TPSERVE_COMMON_JINJA_INTERPRETER_H_
#define TPSERVE_COMMON_JINJA_INTERPRETER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/jinja/ast.h"
#include "common/jinja/value.h"

namespace tpserve::jinja {

struct RenderLimits {
  size_t max_output_bytes = 4u << 20;
  size_t max_list_items = 1u << 20;
  // The 70 real templates of the conformance check each render its
  // conversations (up to 6 messages, 2 tools) in under 2x10^4 steps, so
  // hundreds of messages fit; 2x10^6 is about a second of a runaway loop.
  int64_t max_steps = 2'000'000;
  int max_call_depth = 40;
  // Lists/dicts inside each other; also tojson's depth.
  int max_json_depth = 64;
};

struct RenderOptions {
  RenderLimits limits;
  // What strftime_now() formats; the current time when unset (tests pin it).
  std::optional<absl::Time> now;
  absl::TimeZone time_zone = absl::LocalTimeZone();
};

struct Frame {
  absl::flat_hash_map<std::string, Value> vars;
  std::shared_ptr<Frame> parent;
};

class Interpreter {
 public:
  explicit Interpreter(const RenderOptions& options) : options_(options) {}

  // Renders `program` with `variables` (messages, tools, ...) over the
  // builtin globals (range, namespace, dict, raise_exception, strftime_now).
  absl::StatusOr<std::string> Render(const StmtList& program,
                                     const Dict& variables);

  // For builtins.
  const RenderOptions& options() const { return options_; }
  // Counts one unit of work; ResourceExhausted past max_steps.
  absl::Status Step();
  // InvalidArgument/ResourceExhausted when a string of `bytes` or a list of
  // `items` would exceed the limits.
  // CheckList, and NewString (CheckString for a string just built, not a
  // growing one), also count steps in proportion (items, bytes / 64), so
  // that the step bound bounds the time and memory spent building values.
  absl::Status CheckString(size_t bytes) const;
  absl::Status CheckSize(size_t items) const;  // CheckList without the charge.
  absl::Status NewString(size_t bytes);
  absl::Status CheckList(size_t items);
  // Counts `steps` units of work at once (O(n) operations).
  absl::Status Charge(int64_t steps);
  absl::StatusOr<Value> CallFunction(const Value& fn, CallArgs args);

  // Runs a macro body (macros are Callables made by the interpreter).
  struct Macro;
  absl::StatusOr<Value> CallMacro(const Macro& macro, CallArgs args);

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  absl::Status Exec(const StmtList& body, Flow* flow);
  absl::Status ExecOne(const Stmt& stmt, Flow* flow);
  absl::Status ExecFor(const Stmt& stmt);
  absl::Status ExecSet(const Stmt& stmt);
  // Runs `body` into a string (macro bodies, set blocks, filter blocks).
  absl::StatusOr<std::string> Capture(const StmtList& body);

  // EvalNode, with the nesting bound checked on what it made.
  absl::StatusOr<Value> Eval(const Expr& expr);
  absl::StatusOr<Value> EvalNode(const Expr& expr);
  absl::StatusOr<Value> EvalCall(const Expr& expr);
  absl::StatusOr<Value> EvalFilter(const Expr& expr, const Value* input);
  absl::StatusOr<Value> EvalTest(const Expr& expr);
  absl::StatusOr<Value> EvalBinary(const Expr& expr);
  absl::StatusOr<Value> EvalCompare(const Expr& expr);
  absl::StatusOr<CallArgs> EvalArgs(const Expr& expr);

  Value Lookup(const std::string& name) const;
  void Assign(const std::vector<std::string>& targets, const Value& value,
              int line, absl::Status* status);

  absl::Status Append(absl::string_view text);

  const RenderOptions& options_;
  int64_t steps_ = 0;
  int call_depth_ = 0;
  int depth_ = 0;  // Exec/Eval recursion (see kMaxDepth).
  std::shared_ptr<Frame> frame_;
  std::string* out_ = nullptr;
};

}  // namespace tpserve::jinja

#endif  // TPSERVE_COMMON_JINJA_INTERPRETER_H_
