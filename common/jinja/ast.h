// The syntax tree of a parsed template: expressions and statements, as
// jinja2's parser builds them (jinja2/nodes.py), reduced to the constructs
// chat templates use. Every node keeps its source line for error messages.
#ifndef TPSERVE_COMMON_JINJA_AST_H_
#define TPSERVE_COMMON_JINJA_AST_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/jinja/value.h"

namespace tpserve::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Keyword {
  std::string name;
  ExprPtr value;
};

struct Expr {
  enum class Kind {
    kLiteral,   // value
    kName,      // name
    kList,      // items
    kTuple,     // items
    kDict,      // items as key, value pairs
    kGetAttr,   // a.name
    kGetItem,   // a[b]
    kSlice,     // a[b:c:d]; absent parts are null
    kCall,      // a(items..., keywords...)
    kFilter,    // a | name(items..., keywords...)
    kTest,      // a is [not] name(items...)
    kNegate,    // -a
    kPlus,      // +a
    kNot,       // not a
    kAnd,       // a and b
    kOr,        // a or b
    kBinary,    // a op b: + - * / // % ** ~
    kCompare,   // a (op operand)...: == != < <= > >= in, "not in" in keywords
    kCondition  // a if b else c (c may be null)
  };
  Kind kind;
  int line = 0;
  Value value;           // kLiteral
  std::string name;      // kName, kGetAttr, kFilter, kTest; op for kBinary
  bool negated = false;  // kTest: "is not"
  ExprPtr a, b, c;       // Operands (see kinds).
  std::vector<ExprPtr> items;
  std::vector<Keyword> keywords;
};

struct Stmt;
using StmtList = std::vector<std::unique_ptr<Stmt>>;

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // May be null.
};

struct Stmt {
  enum class Kind {
    kText,         // text
    kOutput,       // {{ expr }}
    kIf,           // conditions[i] -> bodies[i]; else_body
    kFor,          // for targets in expr [if filter]: body; else_body
    kSet,          // set targets = expr  |  set ns.attr = expr (attr non-empty)
    kSetBlock,     // set targets[0] %}body{% endset
    kMacro,        // macro name(params): body
    kCallBlock,    // call expr: body (the body becomes `caller`)
    kFilterBlock,  // filter expr(s) applied to body's output
    kBreak,
    kContinue,
  };
  Kind kind;
  int line = 0;
  std::string text;  // kText; macro name; attribute for kSet
  ExprPtr expr;      // kOutput, kFor (iterable), kSet, kCallBlock
  ExprPtr filter;    // kFor's "if"; kFilterBlock's filter chain
  std::vector<std::string> targets;  // kFor / kSet names (tuple unpacking)
  std::vector<ExprPtr> conditions;   // kIf
  std::vector<StmtList> bodies;      // kIf branches
  StmtList body;                     // kFor, kSetBlock, kMacro, kCallBlock
  StmtList else_body;                // kIf, kFor
  std::vector<MacroParam> params;    // kMacro, kCallBlock
};

}  // namespace tpserve::jinja

#endif  // TPSERVE_COMMON_JINJA_AST_H_
