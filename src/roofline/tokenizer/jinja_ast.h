// The parsed template: expression and statement nodes. Nodes are plain structs told apart by `kind`;
// the renderer switches on it. Every node keeps its source line for runtime error messages.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "roofline/tokenizer/jinja_value.h"

namespace roofline::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Args {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keyword;
};

enum class BinaryOp : uint8_t {
  Add, Sub, Mul, Div, FloorDiv, Mod, Pow, Concat,  // + - * / // % ** ~
  And, Or,
};
enum class CompareOp : uint8_t { Eq, Ne, Lt, Le, Gt, Ge, In, NotIn };
enum class UnaryOp : uint8_t { Not, Neg, Pos };

struct Expr {
  enum class Kind : uint8_t {
    Literal, Name, List, Dict, Getattr, Getitem, Slice, Unary, Binary, Compare, Conditional, Call, Filter, Test,
  };
  Kind kind;
  int line;
  Expr(Kind k, int l) : kind(k), line(l) {}
  virtual ~Expr() = default;
};

struct LiteralExpr : Expr {
  Value value;
  LiteralExpr(int l, Value v) : Expr(Kind::Literal, l), value(std::move(v)) {}
};
struct NameExpr : Expr {
  std::string name;
  NameExpr(int l, std::string n) : Expr(Kind::Name, l), name(std::move(n)) {}
};
struct ListExpr : Expr {  // [a, b] or a tuple (a, b)
  std::vector<ExprPtr> items;
  bool tuple;
  ListExpr(int l, std::vector<ExprPtr> i, bool t) : Expr(Kind::List, l), items(std::move(i)), tuple(t) {}
};
struct DictExpr : Expr {
  std::vector<std::pair<ExprPtr, ExprPtr>> entries;
  explicit DictExpr(int l) : Expr(Kind::Dict, l) {}
};
struct GetattrExpr : Expr {  // object.name
  ExprPtr object;
  std::string name;
  GetattrExpr(int l, ExprPtr o, std::string n) : Expr(Kind::Getattr, l), object(std::move(o)), name(std::move(n)) {}
};
struct GetitemExpr : Expr {  // object[index]
  ExprPtr object, index;
  GetitemExpr(int l, ExprPtr o, ExprPtr i) : Expr(Kind::Getitem, l), object(std::move(o)), index(std::move(i)) {}
};
struct SliceExpr : Expr {  // object[start:stop:step]; absent parts are null
  ExprPtr object, start, stop, step;
  explicit SliceExpr(int l) : Expr(Kind::Slice, l) {}
};
struct UnaryExpr : Expr {
  UnaryOp op;
  ExprPtr operand;
  UnaryExpr(int l, UnaryOp o, ExprPtr e) : Expr(Kind::Unary, l), op(o), operand(std::move(e)) {}
};
struct BinaryExpr : Expr {
  BinaryOp op;
  ExprPtr left, right;
  BinaryExpr(int l, BinaryOp o, ExprPtr a, ExprPtr b)
      : Expr(Kind::Binary, l), op(o), left(std::move(a)), right(std::move(b)) {}
};
struct CompareExpr : Expr {  // a < b <= c chains as in Python; `in` and `not in` chain too
  ExprPtr first;
  std::vector<std::pair<CompareOp, ExprPtr>> rest;
  CompareExpr(int l, ExprPtr f) : Expr(Kind::Compare, l), first(std::move(f)) {}
};
struct ConditionalExpr : Expr {  // then if condition else otherwise; otherwise may be null (-> undefined)
  ExprPtr condition, then, otherwise;
  explicit ConditionalExpr(int l) : Expr(Kind::Conditional, l) {}
};
struct CallExpr : Expr {
  ExprPtr callee;
  Args args;
  explicit CallExpr(int l) : Expr(Kind::Call, l) {}
};
struct FilterExpr : Expr {  // operand | name(args); operand is null inside {% filter %} / {% set x | f %}
  ExprPtr operand;
  std::string name;
  Args args;
  explicit FilterExpr(int l) : Expr(Kind::Filter, l) {}
};
struct TestExpr : Expr {  // operand is [not] name(args)
  ExprPtr operand;
  std::string name;
  Args args;
  bool negated = false;
  explicit TestExpr(int l) : Expr(Kind::Test, l) {}
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

// What `set` and `for` assign to: names (several unpack a sequence), or one namespace attribute.
struct Target {
  std::vector<std::string> names;
  std::string namespace_attr;  // non-empty: names[0].namespace_attr
};

struct Stmt {
  enum class Kind : uint8_t {
    Text, Output, If, For, Set, SetBlock, Macro, CallBlock, FilterBlock, With, Scope, Break, Continue,
  };
  Kind kind;
  int line;
  Stmt(Kind k, int l) : kind(k), line(l) {}
  virtual ~Stmt() = default;
};

struct TextStmt : Stmt {
  std::string text;
  TextStmt(int l, std::string t) : Stmt(Kind::Text, l), text(std::move(t)) {}
};
struct OutputStmt : Stmt {  // {{ expr }}
  ExprPtr expr;
  OutputStmt(int l, ExprPtr e) : Stmt(Kind::Output, l), expr(std::move(e)) {}
};
struct IfStmt : Stmt {  // if / elif branches in order, then else
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body otherwise;
  explicit IfStmt(int l) : Stmt(Kind::If, l) {}
};
struct ForStmt : Stmt {
  Target target;
  ExprPtr iterable, filter;  // filter: `for x in xs if cond`, may be null
  Body body, otherwise;      // otherwise runs when no item was visited
  explicit ForStmt(int l) : Stmt(Kind::For, l) {}
};
struct SetStmt : Stmt {  // {% set target = value %}
  Target target;
  ExprPtr value;
  explicit SetStmt(int l) : Stmt(Kind::Set, l) {}
};
struct SetBlockStmt : Stmt {  // {% set target | filters %}body{% endset %}
  Target target;
  ExprPtr filter;  // FilterExpr chain with a null innermost operand, or null
  Body body;
  explicit SetBlockStmt(int l) : Stmt(Kind::SetBlock, l) {}
};
struct MacroParam {
  std::string name;
  ExprPtr default_value;  // may be null
};
struct MacroStmt : Stmt {
  std::string name;
  std::vector<MacroParam> params;
  Body body;
  explicit MacroStmt(int l) : Stmt(Kind::Macro, l) {}
};
struct CallBlockStmt : Stmt {  // {% call(params) macro(args) %}body{% endcall %}: body is `caller()`
  std::vector<MacroParam> caller_params;
  ExprPtr call;
  Body body;
  explicit CallBlockStmt(int l) : Stmt(Kind::CallBlock, l) {}
};
struct FilterBlockStmt : Stmt {  // {% filter f %}body{% endfilter %}
  ExprPtr filter;
  Body body;
  explicit FilterBlockStmt(int l) : Stmt(Kind::FilterBlock, l) {}
};
struct WithStmt : Stmt {  // {% with a = 1 %}body{% endwith %}: a new scope
  std::vector<std::pair<Target, ExprPtr>> assignments;
  Body body;
  explicit WithStmt(int l) : Stmt(Kind::With, l) {}
};
struct ScopeStmt : Stmt {  // a body rendered in place, e.g. HF's {% generation %}...{% endgeneration %}
  Body body;
  explicit ScopeStmt(int l) : Stmt(Kind::Scope, l) {}
};
struct LoopControlStmt : Stmt {  // {% break %} / {% continue %} (jinja2.ext.loopcontrols, enabled by HF)
  explicit LoopControlStmt(int l, bool is_break) : Stmt(is_break ? Kind::Break : Kind::Continue, l) {}
};

}  // namespace roofline::jinja
