#include "common/jinja/parser.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/jinja/depth_guard.h"
#include "common/jinja/lexer.h"
#include "common/status_macros.h"

namespace tpserve::jinja {
namespace {

using TK = Token::Kind;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  absl::StatusOr<StmtList> Run() {
    StmtList out;
    std::string end;
    TP_RETURN_IF_ERROR(Body({}, &out, &end));
    return out;
  }

 private:
  // A left-nested chain (a + b + c, a or b or c, x.y.z, x | f | g) makes a
  // tree as deep as the chain is long, which the interpreter recurses down:
  // each link counts into depth_ while the chain's parse runs.
  class ChainDepth {
   public:
    explicit ChainDepth(Parser* parser) : parser_(parser) {}
    ~ChainDepth() { parser_->depth_ -= links_; }
    ChainDepth(const ChainDepth&) = delete;
    ChainDepth& operator=(const ChainDepth&) = delete;
    absl::Status Link() {
      ++links_;
      if (++parser_->depth_ > kMaxParseDepth) {
        return parser_->Error("expression nested too deeply");
      }
      return absl::OkStatus();
    }

   private:
    Parser* parser_;
    int links_ = 0;
  };

  const Token& Peek(size_t ahead = 0) const {
    const size_t i = pos_ + ahead;
    return i < tokens_.size() ? tokens_[i] : tokens_.back();
  }
  const Token& Next() {
    const Token& t = Peek();
    if (pos_ < tokens_.size() - 1) ++pos_;
    return t;
  }
  bool IsOp(absl::string_view op, size_t ahead = 0) const {
    return Peek(ahead).kind == TK::kOperator && Peek(ahead).text == op;
  }
  bool IsName(absl::string_view name, size_t ahead = 0) const {
    return Peek(ahead).kind == TK::kName && Peek(ahead).text == name;
  }
  bool SkipOp(absl::string_view op) {
    if (!IsOp(op)) return false;
    Next();
    return true;
  }
  bool SkipName(absl::string_view name) {
    if (!IsName(name)) return false;
    Next();
    return true;
  }

  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", Peek().line, ": ", what));
  }
  static std::string Describe(const Token& t) {
    switch (t.kind) {
      case TK::kVarEnd:
        return "'}}'";
      case TK::kBlockEnd:
        return "'%}'";
      case TK::kEnd:
        return "the end of the template";
      case TK::kString:
        return "a string";
      case TK::kText:
        return "template text";
      default:
        return absl::StrCat("'", t.text, "'");
    }
  }
  absl::Status Unexpected(absl::string_view expected) const {
    return Error(
        absl::StrCat("expected ", expected, ", got ", Describe(Peek())));
  }
  absl::Status ExpectOp(absl::string_view op) {
    if (SkipOp(op)) return absl::OkStatus();
    return Unexpected(absl::StrCat("'", op, "'"));
  }
  absl::Status ExpectBlockEnd() {
    if (Peek().kind == TK::kBlockEnd) {
      Next();
      return absl::OkStatus();
    }
    return Unexpected("'%}'");
  }
  absl::StatusOr<std::string> ExpectName() {
    if (Peek().kind != TK::kName) return Unexpected("a name");
    return Next().text;
  }

  ExprPtr NewExpr(Expr::Kind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // ---- Statements ----

  // Parses statements until a block tag named in `ends`; leaves the parser
  // after that tag's name and reports it in *end ("" at the end of input,
  // allowed only when `ends` is empty).
  absl::Status Body(std::vector<absl::string_view> ends, StmtList* out,
                    std::string* end) {
    DepthGuard guard(&depth_);
    if (depth_ > kMaxParseDepth) return Error("blocks nested too deeply");
    while (true) {
      const Token& t = Peek();
      if (t.kind == TK::kEnd) {
        if (ends.empty()) {
          *end = "";
          return absl::OkStatus();
        }
        return Error(absl::StrCat("missing {% ", absl::StrJoin(ends, " or "),
                                  " %} before the end of the template"));
      }
      if (t.kind == TK::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kText;
        s->line = t.line;
        s->text = Next().text;
        out->push_back(std::move(s));
        continue;
      }
      if (t.kind == TK::kVarBegin) {
        Next();
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kOutput;
        s->line = t.line;
        TP_ASSIGN_OR_RETURN(s->expr, Tuple(/*condexpr=*/true));
        if (Peek().kind != TK::kVarEnd) return Unexpected("'}}'");
        Next();
        out->push_back(std::move(s));
        continue;
      }
      if (t.kind != TK::kBlockBegin) return Unexpected("a tag");
      Next();
      if (Peek().kind != TK::kName) return Unexpected("a tag name");
      const std::string name = Peek().text;
      for (absl::string_view e : ends) {
        if (name == e) {
          Next();
          *end = name;
          return absl::OkStatus();
        }
      }
      TP_ASSIGN_OR_RETURN(std::unique_ptr<Stmt> stmt, Statement());
      out->push_back(std::move(stmt));
    }
  }

  absl::StatusOr<std::unique_ptr<Stmt>> Statement() {
    const int line = Peek().line;
    const std::string name = Next().text;
    auto s = std::make_unique<Stmt>();
    s->line = line;
    if (name == "if") {
      s->kind = Stmt::Kind::kIf;
      std::string end = "elif";
      while (end == "elif") {
        TP_ASSIGN_OR_RETURN(ExprPtr cond, Tuple(/*condexpr=*/false));
        TP_RETURN_IF_ERROR(ExpectBlockEnd());
        StmtList body;
        TP_RETURN_IF_ERROR(Body({"elif", "else", "endif"}, &body, &end));
        s->conditions.push_back(std::move(cond));
        s->bodies.push_back(std::move(body));
      }
      if (end == "else") {
        TP_RETURN_IF_ERROR(ExpectBlockEnd());
        TP_RETURN_IF_ERROR(Body({"endif"}, &s->else_body, &end));
      }
      TP_RETURN_IF_ERROR(ExpectBlockEnd());
      return s;
    }
    if (name == "for") {
      s->kind = Stmt::Kind::kFor;
      TP_ASSIGN_OR_RETURN(s->targets, AssignTargets());
      if (!SkipName("in")) return Unexpected("'in'");
      TP_ASSIGN_OR_RETURN(s->expr, Tuple(/*condexpr=*/false));
      if (SkipName("if")) {
        TP_ASSIGN_OR_RETURN(s->filter, Expression(/*condexpr=*/true));
      }
      if (IsName("recursive")) {
        return Error("recursive for loops are not supported");
      }
      TP_RETURN_IF_ERROR(ExpectBlockEnd());
      std::string end;
      TP_RETURN_IF_ERROR(Body({"else", "endfor"}, &s->body, &end));
      if (end == "else") {
        TP_RETURN_IF_ERROR(ExpectBlockEnd());
        TP_RETURN_IF_ERROR(Body({"endfor"}, &s->else_body, &end));
      }
      TP_RETURN_IF_ERROR(ExpectBlockEnd());
      return s;
    }
    if (name == "set") {
      TP_ASSIGN_OR_RETURN(std::string first, ExpectName());
      if (SkipOp(".")) {  // {% set ns.attr = value %}
        s->kind = Stmt::Kind::kSet;
        s->targets = {first};
        TP_ASSIGN_OR_RETURN(s->text, ExpectName());
        TP_RETURN_IF_ERROR(ExpectOp("="));
        TP_ASSIGN_OR_RETURN(s->expr, Tuple(/*condexpr=*/true));
        TP_RETURN_IF_ERROR(ExpectBlockEnd());
        return s;
      }
      s->targets = {first};
      while (SkipOp(",")) {
        TP_ASSIGN_OR_RETURN(std::string next, ExpectName());
        s->targets.push_back(next);
      }
      if (SkipOp("=")) {
        s->kind = Stmt::Kind::kSet;
        TP_ASSIGN_OR_RETURN(s->expr, Tuple(/*condexpr=*/true));
        TP_RETURN_IF_ERROR(ExpectBlockEnd());
        return s;
      }
      if (s->targets.size() != 1) return Unexpected("'='");
      s->kind = Stmt::Kind::kSetBlock;
      if (IsOp("|")) {
        TP_ASSIGN_OR_RETURN(s->filter, Filters(nullptr));
      }
      TP_RETURN_IF_ERROR(ExpectBlockEnd());
      std::string end;
      TP_RETURN_IF_ERROR(Body({"endset"}, &s->body, &end));
      TP_RETURN_IF_ERROR(ExpectBlockEnd());
      return s;
    }
    if (name == "macro") {
      s->kind = Stmt::Kind::kMacro;
      TP_ASSIGN_OR_RETURN(s->text, ExpectName());
      TP_RETURN_IF_ERROR(Params(&s->params));
      TP_RETURN_IF_ERROR(ExpectBlockEnd());
      std::string end;
      TP_RETURN_IF_ERROR(Body({"endmacro"}, &s->body, &end));
      if (Peek().kind == TK::kName) Next();  // {% endmacro name %}
      TP_RETURN_IF_ERROR(ExpectBlockEnd());
      return s;
    }
    if (name == "call") {
      s->kind = Stmt::Kind::kCallBlock;
      if (IsOp("(")) TP_RETURN_IF_ERROR(Params(&s->params));
      TP_ASSIGN_OR_RETURN(s->expr, Expression(/*condexpr=*/true));
      if (s->expr->kind != Expr::Kind::kCall) {
        return Error("{% call %} needs a macro call");
      }
      TP_RETURN_IF_ERROR(ExpectBlockEnd());
      std::string end;
      TP_RETURN_IF_ERROR(Body({"endcall"}, &s->body, &end));
      TP_RETURN_IF_ERROR(ExpectBlockEnd());
      return s;
    }
    if (name == "filter") {
      s->kind = Stmt::Kind::kFilterBlock;
      TP_ASSIGN_OR_RETURN(s->filter, Filters(nullptr, /*first_bar=*/false));
      TP_RETURN_IF_ERROR(ExpectBlockEnd());
      std::string end;
      TP_RETURN_IF_ERROR(Body({"endfilter"}, &s->body, &end));
      TP_RETURN_IF_ERROR(ExpectBlockEnd());
      return s;
    }
    if (name == "break" || name == "continue") {
      s->kind = name == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
      TP_RETURN_IF_ERROR(ExpectBlockEnd());
      return s;
    }
    if (name == "generation") {
      // transformers' AssistantTracker: marks the assistant's tokens and
      // renders its body unchanged. An `if true` keeps the tree simple.
      s->kind = Stmt::Kind::kIf;
      auto yes = NewExpr(Expr::Kind::kLiteral, line);
      yes->value = Value::Bool(true);
      s->conditions.push_back(std::move(yes));
      TP_RETURN_IF_ERROR(ExpectBlockEnd());
      StmtList body;
      std::string end;
      TP_RETURN_IF_ERROR(Body({"endgeneration"}, &body, &end));
      TP_RETURN_IF_ERROR(ExpectBlockEnd());
      s->bodies.push_back(std::move(body));
      return s;
    }
    pos_ -= 1;
    return Error(absl::StrCat("unsupported tag '", name, "'"));
  }

  // `a`, `a, b` or `(a, b)` as the target of for / set.
  absl::StatusOr<std::vector<std::string>> AssignTargets() {
    std::vector<std::string> names;
    const bool paren = SkipOp("(");
    do {
      if (paren && IsOp(")")) break;
      TP_ASSIGN_OR_RETURN(std::string n, ExpectName());
      names.push_back(n);
    } while (SkipOp(","));
    if (paren) TP_RETURN_IF_ERROR(ExpectOp(")"));
    return names;
  }

  absl::Status Params(std::vector<MacroParam>* params) {
    TP_RETURN_IF_ERROR(ExpectOp("("));
    while (!IsOp(")")) {
      MacroParam p;
      TP_ASSIGN_OR_RETURN(p.name, ExpectName());
      if (SkipOp("=")) {
        TP_ASSIGN_OR_RETURN(p.default_value, Expression(/*condexpr=*/true));
      }
      params->push_back(std::move(p));
      if (!SkipOp(",")) break;
    }
    return ExpectOp(")");
  }

  // ---- Expressions (jinja2's precedence, lowest first) ----

  // A comma-separated list is a tuple: `{{ a, b }}`, `set x = 1, 2`.
  absl::StatusOr<ExprPtr> Tuple(bool condexpr) {
    const int line = Peek().line;
    TP_ASSIGN_OR_RETURN(ExprPtr first, Expression(condexpr));
    if (!IsOp(",")) return first;
    auto tuple = NewExpr(Expr::Kind::kTuple, line);
    tuple->items.push_back(std::move(first));
    while (SkipOp(",")) {
      if (AtTupleEnd()) break;
      TP_ASSIGN_OR_RETURN(ExprPtr item, Expression(condexpr));
      tuple->items.push_back(std::move(item));
    }
    return tuple;
  }
  bool AtTupleEnd() const {
    const Token& t = Peek();
    return t.kind == TK::kVarEnd || t.kind == TK::kBlockEnd ||
           t.kind == TK::kEnd || IsOp(")") || IsName("if");
  }

  absl::StatusOr<ExprPtr> Expression(bool condexpr) {
    DepthGuard guard(&depth_);
    if (depth_ > kMaxParseDepth) return Error("expression nested too deeply");
    TP_ASSIGN_OR_RETURN(ExprPtr expr, Or());
    if (!condexpr) return expr;
    ChainDepth links(this);
    while (IsName("if")) {
      TP_RETURN_IF_ERROR(links.Link());
      const int line = Next().line;
      auto cond = NewExpr(Expr::Kind::kCondition, line);
      cond->a = std::move(expr);
      TP_ASSIGN_OR_RETURN(cond->b, Or());
      if (SkipName("else")) {
        TP_ASSIGN_OR_RETURN(cond->c, Expression(/*condexpr=*/true));
      }
      expr = std::move(cond);
    }
    return expr;
  }

  absl::StatusOr<ExprPtr> Or() {
    TP_ASSIGN_OR_RETURN(ExprPtr left, And());
    ChainDepth links(this);
    while (IsName("or")) {
      TP_RETURN_IF_ERROR(links.Link());
      auto e = NewExpr(Expr::Kind::kOr, Next().line);
      e->a = std::move(left);
      TP_ASSIGN_OR_RETURN(e->b, And());
      left = std::move(e);
    }
    return left;
  }

  absl::StatusOr<ExprPtr> And() {
    TP_ASSIGN_OR_RETURN(ExprPtr left, Not());
    ChainDepth links(this);
    while (IsName("and")) {
      TP_RETURN_IF_ERROR(links.Link());
      auto e = NewExpr(Expr::Kind::kAnd, Next().line);
      e->a = std::move(left);
      TP_ASSIGN_OR_RETURN(e->b, Not());
      left = std::move(e);
    }
    return left;
  }

  absl::StatusOr<ExprPtr> Not() {
    if (IsName("not")) {
      DepthGuard guard(&depth_);
      if (depth_ > kMaxParseDepth) return Error("expression nested too deeply");
      auto e = NewExpr(Expr::Kind::kNot, Next().line);
      TP_ASSIGN_OR_RETURN(e->a, Not());
      return e;
    }
    return Compare();
  }

  // `a < b <= c` chains as in Python: (a < b) and (b <= c), each operand
  // evaluated once. The operators and operands after the first are kept as
  // (op, operand) pairs in `keywords`.
  absl::StatusOr<ExprPtr> Compare() {
    TP_ASSIGN_OR_RETURN(ExprPtr left, Math1());
    ExprPtr chain;  // Flat: one node holds every link.
    while (true) {
      std::string op;
      const Token& t = Peek();
      if (t.kind == TK::kOperator &&
          (t.text == "==" || t.text == "!=" || t.text == "<" ||
           t.text == "<=" || t.text == ">" || t.text == ">=")) {
        op = t.text;
        Next();
      } else if (IsName("in")) {
        op = "in";
        Next();
      } else if (IsName("not") && IsName("in", 1)) {
        op = "not in";
        Next();
        Next();
      } else {
        break;
      }
      if (chain == nullptr) {
        chain = NewExpr(Expr::Kind::kCompare, t.line);
        chain->a = std::move(left);
      }
      Keyword k;
      k.name = op;
      TP_ASSIGN_OR_RETURN(k.value, Math1());
      chain->keywords.push_back(std::move(k));
    }
    if (chain == nullptr) return left;
    return chain;
  }

  absl::StatusOr<ExprPtr> Binary(absl::StatusOr<ExprPtr> (Parser::*next)(),
                                 std::initializer_list<absl::string_view> ops) {
    TP_ASSIGN_OR_RETURN(ExprPtr left, (this->*next)());
    ChainDepth links(this);
    while (true) {
      bool matched = false;
      for (absl::string_view op : ops) {
        if (!IsOp(op)) continue;
        TP_RETURN_IF_ERROR(links.Link());
        auto e = NewExpr(Expr::Kind::kBinary, Next().line);
        e->name = std::string(op);
        e->a = std::move(left);
        TP_ASSIGN_OR_RETURN(e->b, (this->*next)());
        left = std::move(e);
        matched = true;
        break;
      }
      if (!matched) return left;
    }
  }
  absl::StatusOr<ExprPtr> Math1() {
    return Binary(&Parser::Concat, {"+", "-"});
  }
  absl::StatusOr<ExprPtr> Concat() { return Binary(&Parser::Math2, {"~"}); }
  absl::StatusOr<ExprPtr> Math2() {
    return Binary(&Parser::Pow, {"*", "/", "//", "%"});
  }
  absl::StatusOr<ExprPtr> Pow() {
    return Binary(&Parser::UnaryWithFilters, {"**"});
  }
  absl::StatusOr<ExprPtr> UnaryWithFilters() { return Unary(true); }

  absl::StatusOr<ExprPtr> Unary(bool with_filters) {
    DepthGuard guard(&depth_);
    if (depth_ > kMaxParseDepth) return Error("expression nested too deeply");
    ExprPtr node;
    if (IsOp("-") || IsOp("+")) {
      const Token& t = Next();
      node = NewExpr(t.text == "-" ? Expr::Kind::kNegate : Expr::Kind::kPlus,
                     t.line);
      TP_ASSIGN_OR_RETURN(node->a, Unary(false));
    } else {
      TP_ASSIGN_OR_RETURN(node, Primary());
    }
    TP_ASSIGN_OR_RETURN(node, Postfix(std::move(node)));
    if (with_filters) {
      ChainDepth links(this);
      while (IsOp("|") || IsName("is") || IsOp("(")) {
        TP_RETURN_IF_ERROR(links.Link());
        if (IsOp("|")) {
          TP_ASSIGN_OR_RETURN(node, Filters(std::move(node)));
        } else if (IsName("is")) {
          TP_ASSIGN_OR_RETURN(node, Test(std::move(node)));
        } else {
          TP_ASSIGN_OR_RETURN(node, Call(std::move(node)));
        }
      }
    }
    return node;
  }

  absl::StatusOr<ExprPtr> Primary() {
    const Token& t = Peek();
    switch (t.kind) {
      case TK::kName: {
        Next();
        auto e = NewExpr(Expr::Kind::kLiteral, t.line);
        if (t.text == "true" || t.text == "True") {
          e->value = Value::Bool(true);
        } else if (t.text == "false" || t.text == "False") {
          e->value = Value::Bool(false);
        } else if (t.text == "none" || t.text == "None") {
          e->value = Value::None();
        } else {
          e->kind = Expr::Kind::kName;
          e->name = t.text;
        }
        return e;
      }
      case TK::kString: {
        std::string s;
        const int line = t.line;
        while (Peek().kind == TK::kString) s += Next().text;  // 'a' 'b'
        auto e = NewExpr(Expr::Kind::kLiteral, line);
        e->value = Value::String(std::move(s));
        return e;
      }
      case TK::kInt:
      case TK::kFloat: {
        Next();
        auto e = NewExpr(Expr::Kind::kLiteral, t.line);
        e->value = t.kind == TK::kInt ? Value::Int(t.int_value)
                                      : Value::Float(t.float_value);
        return e;
      }
      case TK::kOperator:
        if (t.text == "(") {
          Next();
          if (SkipOp(")")) return NewExpr(Expr::Kind::kTuple, t.line);
          TP_ASSIGN_OR_RETURN(ExprPtr first, Expression(/*condexpr=*/true));
          if (SkipOp(")")) return first;
          auto tuple = NewExpr(Expr::Kind::kTuple, t.line);
          tuple->items.push_back(std::move(first));
          while (SkipOp(",")) {
            if (IsOp(")")) break;
            TP_ASSIGN_OR_RETURN(ExprPtr item, Expression(/*condexpr=*/true));
            tuple->items.push_back(std::move(item));
          }
          TP_RETURN_IF_ERROR(ExpectOp(")"));
          return tuple;
        }
        if (t.text == "[") {
          Next();
          auto list = NewExpr(Expr::Kind::kList, t.line);
          while (!IsOp("]")) {
            TP_ASSIGN_OR_RETURN(ExprPtr item, Expression(/*condexpr=*/true));
            list->items.push_back(std::move(item));
            if (!SkipOp(",")) break;
          }
          TP_RETURN_IF_ERROR(ExpectOp("]"));
          return list;
        }
        if (t.text == "{") {
          Next();
          auto dict = NewExpr(Expr::Kind::kDict, t.line);
          while (!IsOp("}")) {
            TP_ASSIGN_OR_RETURN(ExprPtr key, Expression(/*condexpr=*/true));
            TP_RETURN_IF_ERROR(ExpectOp(":"));
            TP_ASSIGN_OR_RETURN(ExprPtr value, Expression(/*condexpr=*/true));
            dict->items.push_back(std::move(key));
            dict->items.push_back(std::move(value));
            if (!SkipOp(",")) break;
          }
          TP_RETURN_IF_ERROR(ExpectOp("}"));
          return dict;
        }
        break;
      default:
        break;
    }
    return Unexpected("an expression");
  }

  absl::StatusOr<ExprPtr> Postfix(ExprPtr node) {
    ChainDepth links(this);
    while (IsOp(".") || IsOp("[") || IsOp("(")) {
      TP_RETURN_IF_ERROR(links.Link());
      if (IsOp(".")) {
        const int line = Next().line;
        if (Peek().kind == TK::kInt) {  // a.0 is a[0]
          auto e = NewExpr(Expr::Kind::kGetItem, line);
          auto index = NewExpr(Expr::Kind::kLiteral, line);
          index->value = Value::Int(Next().int_value);
          e->a = std::move(node);
          e->b = std::move(index);
          node = std::move(e);
          continue;
        }
        auto e = NewExpr(Expr::Kind::kGetAttr, line);
        TP_ASSIGN_OR_RETURN(e->name, ExpectName());
        e->a = std::move(node);
        node = std::move(e);
      } else if (IsOp("[")) {
        TP_ASSIGN_OR_RETURN(node, Subscript(std::move(node)));
      } else {
        TP_ASSIGN_OR_RETURN(node, Call(std::move(node)));
      }
    }
    return node;
  }

  absl::StatusOr<ExprPtr> Subscript(ExprPtr node) {
    const int line = Next().line;  // '['
    ExprPtr parts[3];
    int colons = 0;
    while (!IsOp("]")) {
      if (SkipOp(":")) {
        if (++colons > 2) return Error("a slice has at most two ':'");
        continue;
      }
      if (parts[colons] != nullptr) return Unexpected("']'");
      TP_ASSIGN_OR_RETURN(parts[colons], Expression(/*condexpr=*/true));
    }
    Next();  // ']'
    if (colons == 0) {
      if (parts[0] == nullptr) return Error("empty subscript");
      auto e = NewExpr(Expr::Kind::kGetItem, line);
      e->a = std::move(node);
      e->b = std::move(parts[0]);
      return e;
    }
    auto e = NewExpr(Expr::Kind::kSlice, line);
    e->a = std::move(node);
    e->items.push_back(std::move(parts[0]));
    e->items.push_back(std::move(parts[1]));
    e->items.push_back(std::move(parts[2]));
    return e;
  }

  // Arguments of a call, filter or test: positional, then name=value.
  absl::Status Args(Expr* e) {
    TP_RETURN_IF_ERROR(ExpectOp("("));
    while (!IsOp(")")) {
      if (IsOp("*") || IsOp("**"))
        return Error("*args in calls are not supported");
      if (Peek().kind == TK::kName && IsOp("=", 1)) {
        Keyword k;
        k.name = Next().text;
        Next();
        TP_ASSIGN_OR_RETURN(k.value, Expression(/*condexpr=*/true));
        e->keywords.push_back(std::move(k));
      } else {
        if (!e->keywords.empty()) {
          return Error("positional argument after a keyword argument");
        }
        TP_ASSIGN_OR_RETURN(ExprPtr arg, Expression(/*condexpr=*/true));
        e->items.push_back(std::move(arg));
      }
      if (!SkipOp(",")) break;
    }
    return ExpectOp(")");
  }

  absl::StatusOr<ExprPtr> Call(ExprPtr callee) {
    auto e = NewExpr(Expr::Kind::kCall, Peek().line);
    e->a = std::move(callee);
    TP_RETURN_IF_ERROR(Args(e.get()));
    return e;
  }

  // `| f | g(x)` applied to `node` (null for filter blocks: applied to the
  // block's output).
  absl::StatusOr<ExprPtr> Filters(ExprPtr node, bool first_bar = true) {
    bool need_bar = first_bar;
    ChainDepth links(this);
    while (!need_bar || IsOp("|")) {
      TP_RETURN_IF_ERROR(links.Link());
      if (need_bar) Next();
      need_bar = true;
      auto e = NewExpr(Expr::Kind::kFilter, Peek().line);
      TP_ASSIGN_OR_RETURN(e->name, ExpectName());
      while (SkipOp(".")) {
        TP_ASSIGN_OR_RETURN(std::string part, ExpectName());
        absl::StrAppend(&e->name, ".", part);
      }
      if (IsOp("(")) TP_RETURN_IF_ERROR(Args(e.get()));
      e->a = std::move(node);
      node = std::move(e);
    }
    return node;
  }

  absl::StatusOr<ExprPtr> Test(ExprPtr node) {
    auto e = NewExpr(Expr::Kind::kTest, Next().line);  // 'is'
    e->negated = SkipName("not");
    TP_ASSIGN_OR_RETURN(e->name, ExpectName());
    while (SkipOp(".")) {
      TP_ASSIGN_OR_RETURN(std::string part, ExpectName());
      absl::StrAppend(&e->name, ".", part);
    }
    e->a = std::move(node);
    const Token& t = Peek();
    if (IsOp("(")) {
      TP_RETURN_IF_ERROR(Args(e.get()));
    } else if ((t.kind == TK::kName || t.kind == TK::kString ||
                t.kind == TK::kInt || t.kind == TK::kFloat || IsOp("[") ||
                IsOp("{")) &&
               !IsName("else") && !IsName("or") && !IsName("and")) {
      if (IsName("is")) return Error("tests cannot be chained with 'is'");
      // `x is divisibleby 3`: one argument without parentheses.
      TP_ASSIGN_OR_RETURN(ExprPtr arg, Primary());
      TP_ASSIGN_OR_RETURN(arg, Postfix(std::move(arg)));
      e->items.push_back(std::move(arg));
    }
    return e;
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

absl::StatusOr<StmtList> Parse(absl::string_view source) {
  TP_ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(source));
  return Parser(std::move(tokens)).Run();
}

}  // namespace tpserve::jinja
