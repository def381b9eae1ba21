#include "roofline/tokenizer/jinja_parser.h"

#include <charconv>
#include <cstdlib>
#include <initializer_list>

#include "roofline/core/error.h"
#include "roofline/tokenizer/jinja_lexer.h"

namespace roofline::jinja {
namespace {

using T = Token::Type;

// Nesting limit for expressions and blocks, so a hostile template cannot overflow the stack.
constexpr int kMaxDepth = 200;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  Body parse() {
    std::string end_tag;
    return parse_body({}, "", end_tag);
  }

 private:
  std::vector<Token> toks_;
  size_t i_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;  // break/continue are only legal inside a for body

  // ---- token helpers -----------------------------------------------------------------------------

  const Token& cur() const { return toks_[i_]; }
  const Token& peek(size_t n = 1) const { return toks_[std::min(i_ + n, toks_.size() - 1)]; }
  const Token& next() {
    const Token& t = toks_[i_];
    if (i_ + 1 < toks_.size()) ++i_;
    return t;
  }
  bool at_op(std::string_view op) const { return cur().type == T::Operator && cur().text == op; }
  bool at_name(std::string_view name) const { return cur().type == T::Name && cur().text == name; }

  [[noreturn]] void error(const Token& at, const std::string& message) const {
    fail("chat template syntax error at {}:{}: {}", at.line, at.column, message);
  }
  void expect_op(std::string_view op) {
    if (!at_op(op)) error(cur(), fmt::format("expected '{}', got {}", op, describe(cur())));
    next();
  }
  void expect(T type, std::string_view what) {
    if (cur().type != type) error(cur(), fmt::format("expected {}, got {}", what, describe(cur())));
    next();
  }
  void expect_block_end() { expect(T::BlockEnd, "end of statement block"); }
  std::string expect_name() {
    if (cur().type != T::Name) error(cur(), fmt::format("expected a name, got {}", describe(cur())));
    return next().text;
  }

  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) {
      if (++p.depth_ > kMaxDepth) p.error(p.cur(), "template nested too deeply");
    }
    ~DepthGuard() { --p.depth_; }
  };

  // ---- statements --------------------------------------------------------------------------------

  // Parses until a `{% tag %}` with tag in end_tags; consumes `{%` and the tag name, stores it in
  // end_tag, and leaves the rest of that tag to the caller. `opener` names the block for errors.
  Body parse_body(std::initializer_list<std::string_view> end_tags, std::string_view opener,
                  std::string& end_tag) {
    DepthGuard guard(*this);
    Body body;
    while (true) {
      const Token& t = cur();
      switch (t.type) {
        case T::Text:
          body.push_back(std::make_unique<TextStmt>(t.line, t.text));
          next();
          break;
        case T::VarBegin: {
          next();
          auto expr = parse_tuple(true, false, {});
          expect(T::VarEnd, "end of print statement");
          body.push_back(std::make_unique<OutputStmt>(t.line, std::move(expr)));
          break;
        }
        case T::BlockBegin: {
          const Token& name = peek();
          if (name.type != T::Name) error(name, "expected a statement name after '{%'");
          for (std::string_view end : end_tags) {
            if (name.text == end) {
              next();
              end_tag = next().text;
              return body;
            }
          }
          if (end_tags.size() != 0 && is_block_end(name.text))
            error(name, fmt::format("unexpected '{}': {}", name.text, expected_end(end_tags, opener)));
          next();
          body.push_back(parse_statement());
          break;
        }
        case T::End:
          if (end_tags.size() != 0) error(t, "unexpected end of template: " + expected_end(end_tags, opener));
          return body;
        default: error(t, fmt::format("unexpected {}", describe(t)));
      }
    }
  }

  static bool is_block_end(const std::string& tag) {
    return tag.rfind("end", 0) == 0 || tag == "elif" || tag == "else";
  }

  static std::string expected_end(std::initializer_list<std::string_view> end_tags, std::string_view opener) {
    std::string tags;
    for (std::string_view tag : end_tags) tags += (tags.empty() ? "'" : " or '") + std::string(tag) + "'";
    return fmt::format("looking for {} to close '{}'", tags, opener);
  }

  StmtPtr parse_statement() {
    const Token& t = cur();
    const std::string& name = t.text;
    int line = t.line;
    if (name == "if") return parse_if();
    if (name == "for") return parse_for();
    if (name == "set") return parse_set();
    if (name == "macro") return parse_macro();
    if (name == "call") return parse_call_block();
    if (name == "filter") return parse_filter_block();
    if (name == "with") return parse_with();
    if (name == "generation") {  // transformers' AssistantTracker: renders its body unchanged
      next();
      expect_block_end();
      auto stmt = std::make_unique<ScopeStmt>(line);
      std::string end;
      stmt->body = parse_body({"endgeneration"}, "generation", end);
      expect_block_end();
      return stmt;
    }
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) error(t, fmt::format("'{}' outside of a loop", name));
      bool is_break = name == "break";
      next();
      expect_block_end();
      return std::make_unique<LoopControlStmt>(line, is_break);
    }
    error(t, fmt::format("unknown tag '{}'", name));
  }

  StmtPtr parse_if() {
    auto stmt = std::make_unique<IfStmt>(next().line);
    std::string tag = "elif";
    while (tag == "elif") {
      auto condition = parse_tuple(false, false, {});
      expect_block_end();
      Body body = parse_body({"elif", "else", "endif"}, "if", tag);
      stmt->branches.emplace_back(std::move(condition), std::move(body));
    }
    if (tag == "else") {
      expect_block_end();
      stmt->otherwise = parse_body({"endif"}, "if", tag);
    }
    expect_block_end();
    return stmt;
  }

  StmtPtr parse_for() {
    auto stmt = std::make_unique<ForStmt>(next().line);
    stmt->target = parse_target(false);
    if (!at_name("in")) error(cur(), fmt::format("expected 'in', got {}", describe(cur())));
    next();
    stmt->iterable = parse_tuple(false, false, {"recursive"});
    if (at_name("if")) {
      next();
      stmt->filter = parse_expression(true);
    }
    if (at_name("recursive")) error(cur(), "recursive loops are not supported");
    expect_block_end();
    std::string tag;
    ++loop_depth_;
    stmt->body = parse_body({"endfor", "else"}, "for", tag);
    --loop_depth_;
    if (tag == "else") {
      expect_block_end();
      stmt->otherwise = parse_body({"endfor"}, "for", tag);
    }
    expect_block_end();
    return stmt;
  }

  // Names, `a, b` or `(a, b)` to unpack, or `ns.attr` (set only).
  Target parse_target(bool allow_namespace) {
    Target target;
    if (allow_namespace && cur().type == T::Name && peek().type == T::Operator && peek().text == ".") {
      target.names.push_back(next().text);
      next();
      target.namespace_attr = expect_name();
      return target;
    }
    bool parenthesized = at_op("(");
    if (parenthesized) next();
    while (true) {
      const Token& t = cur();
      std::string name = expect_name();
      if (name == "true" || name == "false" || name == "True" || name == "False" || name == "none" ||
          name == "None")
        error(t, fmt::format("cannot assign to '{}'", name));
      target.names.push_back(name);
      if (!at_op(",")) break;
      next();
      if (parenthesized && at_op(")")) break;
    }
    if (parenthesized) expect_op(")");
    return target;
  }

  StmtPtr parse_set() {
    int line = next().line;
    Target target = parse_target(true);
    if (at_op("=")) {
      next();
      auto stmt = std::make_unique<SetStmt>(line);
      stmt->target = std::move(target);
      stmt->value = parse_tuple(true, false, {});
      expect_block_end();
      return stmt;
    }
    auto stmt = std::make_unique<SetBlockStmt>(line);
    stmt->target = std::move(target);
    if (at_op("|")) stmt->filter = parse_filters(nullptr, false);
    expect_block_end();
    std::string tag;
    stmt->body = parse_body({"endset"}, "set", tag);
    expect_block_end();
    return stmt;
  }

  std::vector<MacroParam> parse_signature() {
    std::vector<MacroParam> params;
    expect_op("(");
    while (!at_op(")")) {
      if (!params.empty()) {
        expect_op(",");
        if (at_op(")")) break;
      }
      MacroParam param;
      param.name = expect_name();
      if (at_op("=")) {
        next();
        param.default_value = parse_expression(true);
      } else if (!params.empty() && params.back().default_value) {
        error(cur(), "non-default argument follows default argument");
      }
      params.push_back(std::move(param));
    }
    next();
    return params;
  }

  StmtPtr parse_macro() {
    auto stmt = std::make_unique<MacroStmt>(next().line);
    stmt->name = expect_name();
    stmt->params = parse_signature();
    expect_block_end();
    int saved_loop_depth = std::exchange(loop_depth_, 0);
    std::string tag;
    stmt->body = parse_body({"endmacro"}, "macro", tag);
    loop_depth_ = saved_loop_depth;
    expect_block_end();
    return stmt;
  }

  StmtPtr parse_call_block() {
    auto stmt = std::make_unique<CallBlockStmt>(next().line);
    if (at_op("(")) stmt->caller_params = parse_signature();
    const Token& at = cur();
    stmt->call = parse_expression(true);
    if (stmt->call->kind != Expr::Kind::Call) error(at, "expected a macro call after 'call'");
    expect_block_end();
    std::string tag;
    stmt->body = parse_body({"endcall"}, "call", tag);
    expect_block_end();
    return stmt;
  }

  StmtPtr parse_filter_block() {
    auto stmt = std::make_unique<FilterBlockStmt>(next().line);
    stmt->filter = parse_filters(nullptr, true);
    expect_block_end();
    std::string tag;
    stmt->body = parse_body({"endfilter"}, "filter", tag);
    expect_block_end();
    return stmt;
  }

  StmtPtr parse_with() {
    auto stmt = std::make_unique<WithStmt>(next().line);
    while (cur().type != T::BlockEnd) {
      if (!stmt->assignments.empty()) expect_op(",");
      Target target = parse_target(false);
      expect_op("=");
      stmt->assignments.emplace_back(std::move(target), parse_expression(true));
    }
    expect_block_end();
    std::string tag;
    stmt->body = parse_body({"endwith"}, "with", tag);
    expect_block_end();
    return stmt;
  }

  // ---- expressions -------------------------------------------------------------------------------

  bool at_tuple_end(std::initializer_list<std::string_view> extra_end_names) const {
    if (cur().type == T::VarEnd || cur().type == T::BlockEnd || at_op(")")) return true;
    for (std::string_view n : extra_end_names)
      if (at_name(n)) return true;
    return false;
  }

  // Comma-separated expressions: one expression, or a tuple when a comma appears.
  ExprPtr parse_tuple(bool with_condexpr, bool explicit_parentheses,
                      std::initializer_list<std::string_view> extra_end_names) {
    int line = cur().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (at_tuple_end(extra_end_names)) break;
      items.push_back(parse_expression(with_condexpr));
      if (!at_op(",")) break;
      is_tuple = true;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parentheses) error(cur(), fmt::format("expected an expression, got {}", describe(cur())));
    }
    return std::make_unique<ListExpr>(line, std::move(items), true);
  }

  ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  ExprPtr parse_condexpr() {
    DepthGuard guard(*this);
    ExprPtr expr = parse_or();
    while (at_name("if")) {
      auto cond = std::make_unique<ConditionalExpr>(next().line);
      cond->then = std::move(expr);
      cond->condition = parse_or();
      if (at_name("else")) {
        next();
        cond->otherwise = parse_condexpr();
      }
      expr = std::move(cond);
    }
    return expr;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (at_name("or")) {
      int line = next().line;
      left = std::make_unique<BinaryExpr>(line, BinaryOp::Or, std::move(left), parse_and());
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (at_name("and")) {
      int line = next().line;
      left = std::make_unique<BinaryExpr>(line, BinaryOp::And, std::move(left), parse_not());
    }
    return left;
  }

  ExprPtr parse_not() {
    if (at_name("not")) {
      DepthGuard guard(*this);
      int line = next().line;
      return std::make_unique<UnaryExpr>(line, UnaryOp::Not, parse_not());
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    int line = cur().line;
    ExprPtr first = parse_math1();
    std::unique_ptr<CompareExpr> cmp;
    while (true) {
      CompareOp op;
      if (at_op("==")) op = CompareOp::Eq;
      else if (at_op("!=")) op = CompareOp::Ne;
      else if (at_op("<")) op = CompareOp::Lt;
      else if (at_op("<=")) op = CompareOp::Le;
      else if (at_op(">")) op = CompareOp::Gt;
      else if (at_op(">=")) op = CompareOp::Ge;
      else if (at_name("in")) op = CompareOp::In;
      else if (at_name("not") && peek().type == T::Name && peek().text == "in") {
        next();
        op = CompareOp::NotIn;
      } else {
        break;
      }
      next();
      if (!cmp) cmp = std::make_unique<CompareExpr>(line, std::move(first));
      cmp->rest.emplace_back(op, parse_math1());
    }
    if (cmp) return cmp;
    return first;
  }

  template <typename Next>
  ExprPtr parse_binary(Next next_level, std::initializer_list<std::pair<std::string_view, BinaryOp>> ops) {
    ExprPtr left = (this->*next_level)();
    while (true) {
      const std::pair<std::string_view, BinaryOp>* match = nullptr;
      for (const auto& op : ops)
        if (at_op(op.first)) match = &op;
      if (!match) return left;
      int line = next().line;
      left = std::make_unique<BinaryExpr>(line, match->second, std::move(left), (this->*next_level)());
    }
  }

  ExprPtr parse_math1() { return parse_binary(&Parser::parse_concat, {{"+", BinaryOp::Add}, {"-", BinaryOp::Sub}}); }
  ExprPtr parse_concat() { return parse_binary(&Parser::parse_math2, {{"~", BinaryOp::Concat}}); }
  ExprPtr parse_math2() {
    return parse_binary(&Parser::parse_pow, {{"*", BinaryOp::Mul},
                                             {"/", BinaryOp::Div},
                                             {"//", BinaryOp::FloorDiv},
                                             {"%", BinaryOp::Mod}});
  }
  ExprPtr parse_pow() { return parse_binary(&Parser::parse_unary_filtered, {{"**", BinaryOp::Pow}}); }
  ExprPtr parse_unary_filtered() { return parse_unary(true); }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr node;
    if (at_op("-") || at_op("+")) {
      UnaryOp op = at_op("-") ? UnaryOp::Neg : UnaryOp::Pos;
      int line = next().line;
      node = std::make_unique<UnaryExpr>(line, op, parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    switch (t.type) {
      case T::Name:
        next();
        if (t.text == "true" || t.text == "True") return std::make_unique<LiteralExpr>(t.line, Value(true));
        if (t.text == "false" || t.text == "False") return std::make_unique<LiteralExpr>(t.line, Value(false));
        if (t.text == "none" || t.text == "None") return std::make_unique<LiteralExpr>(t.line, Value::none());
        return std::make_unique<NameExpr>(t.line, t.text);
      case T::String: {
        std::string s;
        while (cur().type == T::String) s += next().text;  // adjacent literals concatenate
        return std::make_unique<LiteralExpr>(t.line, Value(std::move(s)));
      }
      case T::Integer: {
        int64_t v = 0;
        auto [p, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
        if (ec != std::errc()) error(t, "integer literal out of range");
        next();
        return std::make_unique<LiteralExpr>(t.line, Value(v));
      }
      case T::Float:
        next();
        return std::make_unique<LiteralExpr>(t.line, Value(std::strtod(t.text.c_str(), nullptr)));
      case T::Operator:
        if (t.text == "(") {
          next();
          ExprPtr e = parse_tuple(true, true, {});
          expect_op(")");
          return e;
        }
        if (t.text == "[") return parse_list();
        if (t.text == "{") return parse_dict();
        break;
      default: break;
    }
    error(t, fmt::format("unexpected {}", describe(t)));
  }

  ExprPtr parse_list() {
    int line = next().line;
    std::vector<ExprPtr> items;
    while (!at_op("]")) {
      if (!items.empty()) {
        expect_op(",");
        if (at_op("]")) break;
      }
      items.push_back(parse_expression(true));
    }
    next();
    return std::make_unique<ListExpr>(line, std::move(items), false);
  }

  ExprPtr parse_dict() {
    auto dict = std::make_unique<DictExpr>(next().line);
    while (!at_op("}")) {
      if (!dict->entries.empty()) {
        expect_op(",");
        if (at_op("}")) break;
      }
      ExprPtr key = parse_expression(true);
      expect_op(":");
      dict->entries.emplace_back(std::move(key), parse_expression(true));
    }
    next();
    return dict;
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (at_op(".") || at_op("[")) node = parse_subscript(std::move(node));
      else if (at_op("(")) node = parse_call(std::move(node));
      else return node;
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (at_op("|")) node = parse_filters(std::move(node), false);
      else if (at_name("is")) node = parse_test(std::move(node));
      else if (at_op("(")) node = parse_call(std::move(node));
      else return node;
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const Token& t = next();
    if (t.text == ".") {
      const Token& attr = next();
      if (attr.type == T::Name) return std::make_unique<GetattrExpr>(t.line, std::move(node), attr.text);
      if (attr.type == T::Integer) {
        int64_t index = 0;
        auto [p, ec] = std::from_chars(attr.text.data(), attr.text.data() + attr.text.size(), index);
        if (ec != std::errc()) error(attr, "integer literal out of range");
        return std::make_unique<GetitemExpr>(t.line, std::move(node), std::make_unique<LiteralExpr>(attr.line, Value(index)));
      }
      error(attr, "expected a name or number after '.'");
    }
    // [index], [start:stop:step] or [a, b] (a tuple key)
    std::vector<ExprPtr> keys;
    std::unique_ptr<SliceExpr> slice;
    while (!at_op("]")) {
      if (!keys.empty() || slice) expect_op(",");
      if (slice) error(cur(), "slices inside tuple subscripts are not supported");
      ExprPtr first;
      if (!at_op(":")) {
        first = parse_expression(true);
        if (!at_op(":")) {
          keys.push_back(std::move(first));
          continue;
        }
      }
      if (!keys.empty()) error(cur(), "slices inside tuple subscripts are not supported");
      slice = std::make_unique<SliceExpr>(t.line);
      slice->start = std::move(first);
      next();  // ':'
      if (!at_op(":") && !at_op("]") && !at_op(",")) slice->stop = parse_expression(true);
      if (at_op(":")) {
        next();
        if (!at_op("]") && !at_op(",")) slice->step = parse_expression(true);
      }
    }
    next();  // ']'
    if (slice) {
      slice->object = std::move(node);
      return slice;
    }
    if (keys.empty()) error(t, "expected a subscript");
    ExprPtr key = keys.size() == 1 ? std::move(keys[0]) : std::make_unique<ListExpr>(t.line, std::move(keys), true);
    return std::make_unique<GetitemExpr>(t.line, std::move(node), std::move(key));
  }

  Args parse_call_args() {
    Args args;
    expect_op("(");
    bool need_comma = false;
    while (!at_op(")")) {
      if (need_comma) {
        expect_op(",");
        if (at_op(")")) break;
      }
      if (at_op("*") || at_op("**")) error(cur(), "*args and **kwargs in calls are not supported");
      if (cur().type == T::Name && peek().type == T::Operator && peek().text == "=") {
        std::string key = next().text;
        next();
        args.keyword.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!args.keyword.empty()) error(cur(), "positional argument follows keyword argument");
        args.positional.push_back(parse_expression(true));
      }
      need_comma = true;
    }
    next();
    return args;
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto call = std::make_unique<CallExpr>(cur().line);
    call->callee = std::move(callee);
    call->args = parse_call_args();
    return call;
  }

  std::string parse_dotted_name() {
    std::string name = expect_name();
    while (at_op(".")) {
      next();
      name.push_back('.');
      name += expect_name();
    }
    return name;
  }

  // `| f | g(x)`; with start_inline the first filter has no `|` ({% filter f %}).
  ExprPtr parse_filters(ExprPtr node, bool start_inline) {
    while (at_op("|") || start_inline) {
      if (!start_inline) next();
      start_inline = false;
      auto filter = std::make_unique<FilterExpr>(cur().line);
      filter->operand = std::move(node);
      filter->name = parse_dotted_name();
      if (at_op("(")) filter->args = parse_call_args();
      node = std::move(filter);
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    auto test = std::make_unique<TestExpr>(next().line);
    test->operand = std::move(node);
    if (at_name("not")) {
      next();
      test->negated = true;
    }
    test->name = parse_dotted_name();
    const Token& t = cur();
    bool starts_argument = t.type == T::Name || t.type == T::String || t.type == T::Integer || t.type == T::Float ||
                           (t.type == T::Operator && (t.text == "(" || t.text == "[" || t.text == "{"));
    if (at_op("(")) {
      test->args = parse_call_args();
    } else if (starts_argument && !at_name("else") && !at_name("or") && !at_name("and")) {
      // `x is divisibleby 3`: one argument without parentheses, as Jinja allows.
      if (at_name("is")) error(t, "you cannot chain multiple tests with 'is'");
      test->args.positional.push_back(parse_postfix(parse_primary()));
    }
    return test;
  }
};

}  // namespace

Body parse_template(std::string_view source) { return Parser(tokenize(source)).parse(); }

}  // namespace roofline::jinja
