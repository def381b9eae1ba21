#include "roofline/tokenizer/jinja_render.h"

#include <algorithm>

#include "roofline/tokenizer/jinja_builtins.h"
#include "roofline/tokenizer/jinja_ops.h"

namespace roofline::jinja {
namespace {

// Macro calls nest at most this deep (Python would hit its own recursion limit).
constexpr int kMaxCallDepth = 100;
// A template comes from a model file: nested loops must not run for hours nor outputs grow to gigabytes. A
// real chat template runs tens of statements per message; these bounds are far past any conversation.
constexpr int64_t kMaxStatements = 1'000'000;
constexpr size_t kMaxOutputBytes = size_t(1) << 28;

// Variables visible at one point of the template. Jinja gives each for-loop iteration, macro call and
// `with` block its own scope: a `set` inside them is gone afterwards (hence namespace()).
class Scope {
 public:
  explicit Scope(std::shared_ptr<Scope> parent) : parent_(std::move(parent)) {}

  const Value* find(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent_.get())
      if (const Value* v = dict_find(s->vars_, name)) return v;
    return nullptr;
  }

  void set(const std::string& name, Value value) {
    for (auto& [k, v] : vars_) {
      if (k == name) {
        v = std::move(value);
        return;
      }
    }
    vars_.emplace_back(name, std::move(value));
  }

 private:
  std::shared_ptr<Scope> parent_;
  ValueDict vars_;
};
using ScopePtr = std::shared_ptr<Scope>;

enum class Flow { Normal, Break, Continue };

// Runs `release` when the scope ends, exceptions included.
template <typename F>
struct OnExit {
  F release;
  ~OnExit() { release(); }
};
template <typename F>
OnExit(F) -> OnExit<F>;

class Renderer {
 public:
  std::string run(const Body& body, const ValueDict& variables) {
    auto globals = std::make_shared<Scope>(nullptr);
    for (auto& [name, fn] : global_functions()) globals->set(name, fn);
    // Namespaces are the one mutable kind of value, so `{% set ns.me = ns %}` makes a reference cycle;
    // emptying every namespace after the render frees such cycles.
    std::vector<Value> namespaces;
    OnExit release{[&namespaces] {
      for (Value& ns : namespaces) ns.namespace_attrs().clear();
    }};
    Value make_namespace = *globals->find("namespace");
    globals->set("namespace", Value::function("namespace", [&namespaces, make_namespace](CallArgs& args) {
                   namespaces.push_back(make_namespace.call(args));
                   return namespaces.back();
                 }));
    auto top = std::make_shared<Scope>(globals);
    for (const auto& [name, value] : variables) top->set(name, value);
    std::string out;
    exec_body(body, top, out);
    return out;
  }

 private:
  int line_ = 0;  // line of the statement or expression being evaluated, for error messages
  int call_depth_ = 0;
  int64_t statements_ = 0;  // executed so far, against kMaxStatements

  void count_statement() {
    if (++statements_ > kMaxStatements)
      render_error("the template ran more than {} statements (a loop that does not end in reasonable time)",
                   kMaxStatements);
  }

  // ---- statements --------------------------------------------------------------------------------

  Flow exec_body(const Body& body, const ScopePtr& scope, std::string& out) {
    for (const StmtPtr& stmt : body) {
      Flow flow = exec(*stmt, scope, out);
      if (flow != Flow::Normal) return flow;
    }
    return Flow::Normal;
  }

  std::string render_body(const Body& body, const ScopePtr& scope) {
    std::string out;
    exec_body(body, scope, out);
    return out;
  }

  // Value operations raise RenderError without a location; the innermost statement adds its line and
  // turns it into a plain roofline::Error, which outer statements let pass.
  Flow exec(const Stmt& stmt, const ScopePtr& scope, std::string& out) {
    line_ = stmt.line;
    try {
      count_statement();
      if (out.size() > kMaxOutputBytes) render_error("the output is larger than {} bytes", kMaxOutputBytes);
      return exec_unlocated(stmt, scope, out);
    } catch (const RenderError& e) {
      fail("chat template error at line {}: {}", line_, e.what());
    }
  }

  Flow exec_unlocated(const Stmt& stmt, const ScopePtr& scope, std::string& out) {
    switch (stmt.kind) {
      case Stmt::Kind::Text: out += static_cast<const TextStmt&>(stmt).text; break;
      case Stmt::Kind::Output: out += to_str(eval(*static_cast<const OutputStmt&>(stmt).expr, scope)); break;
      case Stmt::Kind::If: {
        const auto& s = static_cast<const IfStmt&>(stmt);
        for (const auto& [condition, body] : s.branches)
          if (truthy(eval(*condition, scope))) return exec_body(body, scope, out);
        return exec_body(s.otherwise, scope, out);
      }
      case Stmt::Kind::For: exec_for(static_cast<const ForStmt&>(stmt), scope, out); break;
      case Stmt::Kind::Set: {
        const auto& s = static_cast<const SetStmt&>(stmt);
        assign(s.target, eval(*s.value, scope), *scope);
        break;
      }
      case Stmt::Kind::SetBlock: {
        const auto& s = static_cast<const SetBlockStmt&>(stmt);
        Value value(render_body(s.body, std::make_shared<Scope>(scope)));
        if (s.filter) value = apply_filters(*s.filter, std::move(value), scope);
        assign(s.target, std::move(value), *scope);
        break;
      }
      case Stmt::Kind::Macro: define_macro(static_cast<const MacroStmt&>(stmt), scope); break;
      case Stmt::Kind::CallBlock: out += to_str(exec_call_block(static_cast<const CallBlockStmt&>(stmt), scope)); break;
      case Stmt::Kind::FilterBlock: {
        const auto& s = static_cast<const FilterBlockStmt&>(stmt);
        Value body(render_body(s.body, std::make_shared<Scope>(scope)));
        out += to_str(apply_filters(*s.filter, std::move(body), scope));
        break;
      }
      case Stmt::Kind::With: {
        const auto& s = static_cast<const WithStmt&>(stmt);
        auto inner = std::make_shared<Scope>(scope);
        for (const auto& [target, expr] : s.assignments) assign(target, eval(*expr, inner), *inner);
        return exec_body(s.body, inner, out);
      }
      case Stmt::Kind::Scope:
        return exec_body(static_cast<const ScopeStmt&>(stmt).body, std::make_shared<Scope>(scope), out);
      case Stmt::Kind::Break: return Flow::Break;
      case Stmt::Kind::Continue: return Flow::Continue;
    }
    return Flow::Normal;
  }

  void assign(const Target& target, Value value, Scope& scope) {
    if (!target.namespace_attr.empty()) {
      const Value* ns = scope.find(target.names[0]);
      if (!ns || !ns->is_namespace()) render_error("cannot assign attribute on non-namespace object");
      ValueDict& attrs = ns->namespace_attrs();
      for (auto& [k, v] : attrs) {
        if (k == target.namespace_attr) {
          v = std::move(value);
          return;
        }
      }
      attrs.emplace_back(target.namespace_attr, std::move(value));
      return;
    }
    if (target.names.size() == 1) {
      scope.set(target.names[0], std::move(value));
      return;
    }
    ValueList items = iterate(value.require_defined());
    if (items.size() != target.names.size()) {
      if (items.size() > target.names.size())
        render_error("too many values to unpack (expected {})", target.names.size());
      render_error("not enough values to unpack (expected {}, got {})", target.names.size(), items.size());
    }
    for (size_t i = 0; i < items.size(); ++i) scope.set(target.names[i], std::move(items[i]));
  }

  void exec_for(const ForStmt& s, const ScopePtr& scope, std::string& out) {
    ValueList items = iterate(eval(*s.iterable, scope));
    if (s.filter) {  // `for x in xs if cond`: loop.* counts only the items that pass
      ValueList kept;
      for (Value& item : items) {
        auto probe = std::make_shared<Scope>(scope);
        assign(s.target, item, *probe);
        if (truthy(eval(*s.filter, probe))) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      exec_body(s.otherwise, std::make_shared<Scope>(scope), out);
      return;
    }
    auto last_changed = std::make_shared<std::optional<Value>>();  // state of loop.changed()
    OnExit release{[&last_changed] { last_changed->reset(); }};    // it may hold `loop` itself: a cycle
    int64_t n = int64_t(items.size());
    for (int64_t i = 0; i < n; ++i) {
      count_statement();  // an iteration counts as one, so that empty loop bodies are bounded too
      auto iteration = std::make_shared<Scope>(scope);
      assign(s.target, items[size_t(i)], *iteration);
      iteration->set("loop", loop_object(items, i, last_changed));
      Flow flow = exec_body(s.body, iteration, out);
      if (flow == Flow::Break) break;
    }
  }

  static Value loop_object(const ValueList& items, int64_t i, const std::shared_ptr<std::optional<Value>>& changed) {
    int64_t n = int64_t(items.size());
    ValueDict loop = {{"index", Value(i + 1)},    {"index0", Value(i)},
                      {"revindex", Value(n - i)}, {"revindex0", Value(n - i - 1)},
                      {"first", Value(i == 0)},   {"last", Value(i == n - 1)},
                      {"length", Value(n)},       {"depth", Value(1)},
                      {"depth0", Value(0)}};
    if (i > 0) loop.emplace_back("previtem", items[size_t(i - 1)]);
    if (i + 1 < n) loop.emplace_back("nextitem", items[size_t(i + 1)]);
    loop.emplace_back("cycle", Value::function("loop.cycle", [i](CallArgs& args) {
                        if (args.positional.empty()) render_error("no items for cycling given");
                        return args.positional[size_t(i) % args.positional.size()];
                      }));
    loop.emplace_back("changed", Value::function("loop.changed", [changed](CallArgs& args) {
                        Value now = Value::list(args.positional);
                        if (*changed && equals(**changed, now)) return Value(false);
                        *changed = now;
                        return Value(true);
                      }));
    return Value::dict(std::move(loop));
  }

  // Macros see the scope they were defined in. They hold it weakly: the scope holds the macro, and a
  // strong reference would be a cycle that outlives the render.
  void define_macro(const MacroStmt& m, const ScopePtr& scope) {
    std::weak_ptr<Scope> home = scope;
    scope->set(m.name, Value::function(m.name, [this, &m, home](CallArgs& args) {
                 return Value(call_macro(m.name, m.params, m.body, home, args));
               }));
  }

  std::string call_macro(const std::string& name, const std::vector<MacroParam>& params, const Body& body,
                         const std::weak_ptr<Scope>& home, CallArgs& args) {
    ScopePtr parent = home.lock();
    if (!parent) render_error("macro '{}' called outside the scope that defined it", name);
    if (call_depth_ >= kMaxCallDepth) render_error("maximum macro recursion depth exceeded in '{}'", name);
    auto scope = std::make_shared<Scope>(parent);
    ValueList varargs;
    for (size_t i = 0; i < args.positional.size(); ++i) {
      if (i < params.size()) scope->set(params[i].name, std::move(args.positional[i]));
      else varargs.push_back(std::move(args.positional[i]));
    }
    ValueDict kwargs;
    std::vector<bool> bound(params.size());
    for (size_t i = 0; i < params.size() && i < args.positional.size(); ++i) bound[i] = true;
    for (auto& keyword : args.keyword) {
      const auto& key = keyword.first;  // a plain reference: lambdas cannot capture structured bindings in clang 14
      auto& value = keyword.second;
      auto it = std::find_if(params.begin(), params.end(), [&](const MacroParam& p) { return p.name == key; });
      if (it != params.end()) {
        size_t index = size_t(it - params.begin());
        if (bound[index]) render_error("macro '{}' got multiple values for argument '{}'", name, key);
        bound[index] = true;
        scope->set(key, std::move(value));
      } else if (key == "caller") {
        scope->set(key, std::move(value));
      } else {
        kwargs.emplace_back(key, std::move(value));
      }
    }
    ++call_depth_;
    OnExit leave{[this] { --call_depth_; }};
    for (size_t i = 0; i < params.size(); ++i) {
      if (bound[i]) continue;
      scope->set(params[i].name, params[i].default_value
                                     ? eval(*params[i].default_value, scope)
                                     : Value::undefined(fmt::format("parameter '{}' was not provided", params[i].name)));
    }
    scope->set("varargs", Value::list(std::move(varargs), true));
    scope->set("kwargs", Value::dict(std::move(kwargs)));
    int saved_line = line_;
    std::string out = render_body(body, scope);
    line_ = saved_line;
    return out;
  }

  // {% call(params) m(args) %}body{% endcall %}: m receives `caller`, which renders body.
  Value exec_call_block(const CallBlockStmt& s, const ScopePtr& scope) {
    std::weak_ptr<Scope> home = scope;
    Value caller = Value::function("caller", [this, &s, home](CallArgs& args) {
      return Value(call_macro("caller", s.caller_params, s.body, home, args));
    });
    const auto& call = static_cast<const CallExpr&>(*s.call);
    Value callee = eval(*call.callee, scope);
    CallArgs args = eval_args(call.args, scope);
    args.keyword.emplace_back("caller", std::move(caller));
    return callee.call(args);
  }

  // ---- expressions -------------------------------------------------------------------------------

  CallArgs eval_args(const Args& args, const ScopePtr& scope) {
    CallArgs out;
    for (const ExprPtr& e : args.positional) out.positional.push_back(eval(*e, scope));
    for (const auto& [key, e] : args.keyword) out.keyword.emplace_back(key, eval(*e, scope));
    return out;
  }

  // Applies a filter chain whose innermost operand is empty ({% filter %}, {% set x | f %}) to `input`.
  Value apply_filters(const Expr& chain, Value input, const ScopePtr& scope) {
    const auto& f = static_cast<const FilterExpr&>(chain);
    Value operand = f.operand ? apply_filters(*f.operand, std::move(input), scope) : std::move(input);
    CallArgs args = eval_args(f.args, scope);
    return apply_filter(f.name, operand, args);
  }

  static std::optional<int64_t> slice_bound(const Value& v) {
    if (v.is_undefined() || v.is_none()) return std::nullopt;
    if (!v.is_int() && !v.is_bool()) render_error("slice indices must be integers or None");
    return v.as_int();
  }

  Value eval(const Expr& e, const ScopePtr& scope) {
    line_ = e.line;
    switch (e.kind) {
      case Expr::Kind::Literal: return static_cast<const LiteralExpr&>(e).value;
      case Expr::Kind::Name: {
        const std::string& name = static_cast<const NameExpr&>(e).name;
        if (const Value* v = scope->find(name)) return *v;
        return Value::undefined(fmt::format("'{}' is undefined", name));
      }
      case Expr::Kind::List: {
        const auto& l = static_cast<const ListExpr&>(e);
        ValueList items;
        for (const ExprPtr& item : l.items) items.push_back(eval(*item, scope));
        return Value::list(std::move(items), l.tuple);
      }
      case Expr::Kind::Dict: {
        ValueDict entries;
        for (const auto& [k, v] : static_cast<const DictExpr&>(e).entries) {
          Value key = eval(*k, scope);
          if (!key.is_string()) render_error("dict literal keys must be strings, got {}", type_name(key));
          Value value = eval(*v, scope);
          auto it = std::find_if(entries.begin(), entries.end(), [&](auto& p) { return p.first == key.as_string(); });
          if (it != entries.end()) it->second = std::move(value);
          else entries.emplace_back(key.as_string(), std::move(value));
        }
        return Value::dict(std::move(entries));
      }
      case Expr::Kind::Getattr: {
        const auto& g = static_cast<const GetattrExpr&>(e);
        return get_attr(eval(*g.object, scope), g.name);
      }
      case Expr::Kind::Getitem: {
        const auto& g = static_cast<const GetitemExpr&>(e);
        Value object = eval(*g.object, scope);
        return get_item(object, eval(*g.index, scope));
      }
      case Expr::Kind::Slice: {
        const auto& s = static_cast<const SliceExpr&>(e);
        Value object = eval(*s.object, scope);
        auto bound = [&](const ExprPtr& p) { return p ? slice_bound(eval(*p, scope)) : std::nullopt; };
        auto start = bound(s.start), stop = bound(s.stop), step = bound(s.step);
        return slice(object, start, stop, step);
      }
      case Expr::Kind::Unary: {
        const auto& u = static_cast<const UnaryExpr&>(e);
        Value v = eval(*u.operand, scope);
        if (u.op == UnaryOp::Not) return Value(!truthy(v));
        if (u.op == UnaryOp::Neg) return negate(v);
        if (!v.is_number()) {
          v.require_defined();
          render_error("bad operand type for unary +: '{}'", type_name(v));
        }
        return v.is_bool() ? Value(v.as_int()) : v;
      }
      case Expr::Kind::Binary: {
        const auto& b = static_cast<const BinaryExpr&>(e);
        Value left = eval(*b.left, scope);
        if (b.op == BinaryOp::And) return truthy(left) ? eval(*b.right, scope) : left;
        if (b.op == BinaryOp::Or) return truthy(left) ? left : eval(*b.right, scope);
        Value right = eval(*b.right, scope);
        line_ = e.line;
        return binary_op(b.op, left, right);
      }
      case Expr::Kind::Compare: return Value(eval_compare(static_cast<const CompareExpr&>(e), scope));
      case Expr::Kind::Conditional: {
        const auto& c = static_cast<const ConditionalExpr&>(e);
        if (truthy(eval(*c.condition, scope))) return eval(*c.then, scope);
        if (c.otherwise) return eval(*c.otherwise, scope);
        return Value::undefined(fmt::format(
            "the inline if-expression on line {} evaluated to false and no else section was defined.", e.line));
      }
      case Expr::Kind::Call: {
        const auto& c = static_cast<const CallExpr&>(e);
        Value callee = eval(*c.callee, scope);
        CallArgs args = eval_args(c.args, scope);
        line_ = e.line;
        return callee.call(args);
      }
      case Expr::Kind::Filter: {
        const auto& f = static_cast<const FilterExpr&>(e);
        Value operand = eval(*f.operand, scope);
        CallArgs args = eval_args(f.args, scope);
        line_ = e.line;
        return apply_filter(f.name, operand, args);
      }
      case Expr::Kind::Test: {
        const auto& t = static_cast<const TestExpr&>(e);
        Value operand = eval(*t.operand, scope);
        CallArgs args = eval_args(t.args, scope);
        line_ = e.line;
        return Value(apply_test(t.name, operand, args) != t.negated);
      }
    }
    render_error("internal error: unknown expression kind");
  }

  bool eval_compare(const CompareExpr& c, const ScopePtr& scope) {
    Value left = eval(*c.first, scope);
    for (const auto& [op, expr] : c.rest) {
      Value right = eval(*expr, scope);
      bool ok = false;
      switch (op) {
        case CompareOp::Eq: ok = equals(left, right); break;
        case CompareOp::Ne: ok = !equals(left, right); break;
        case CompareOp::Lt: ok = compare(left, right) < 0; break;
        case CompareOp::Le: ok = compare(left, right) <= 0; break;
        case CompareOp::Gt: ok = compare(left, right) > 0; break;
        case CompareOp::Ge: ok = compare(left, right) >= 0; break;
        case CompareOp::In: ok = contains(right, left); break;
        case CompareOp::NotIn: ok = !contains(right, left); break;
      }
      if (!ok) return false;
      left = std::move(right);
    }
    return true;
  }
};

}  // namespace

std::string render(const Body& body, const ValueDict& variables) { return Renderer().run(body, variables); }

}  // namespace roofline::jinja
