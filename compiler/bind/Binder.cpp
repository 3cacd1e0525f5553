#include "compiler/bind/Binder.h"

#include "compiler/check/Terms.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringSet.h"

#include <algorithm>
#include <cassert>
#include <map>

namespace ckptmap {

using namespace ast;
using llvm::cast;
using llvm::dyn_cast;

Value parseOverride(llvm::StringRef text) {
  Value v = Value::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded())
    return Value(text.str());
  return v;
}

namespace {

/// Where bound instances go while walking. A `choose` binds each variant into its own sink
/// and keeps the one that fits.
struct Sink {
  /// Only what the statements consume and lack is recorded (no rules, no target sides): a
  /// variant that is not expected to be chosen is probed so, and bound in full if it is.
  bool probe = false;
  std::vector<BoundRule> rules;
  std::vector<BoundDrop> drops;
  std::vector<ChoiceRecord> choices;
  std::vector<BaseRestore> fromBase;
  std::vector<std::pair<NameTemplate, const DropStmt *>> notRestored;
  /// `otherwise` renames and drops and `keep`s, applied once everything else is bound: a
  /// source template, the target template (none for a drop), the statement.
  struct Fallback {
    NameTemplate source, target;
    const Stmt *stmt;
  };
  std::vector<Fallback> fallbacks;
  /// Source tensors a statement needs but the checkpoint lacks, with the statement.
  std::vector<std::pair<std::string, const Stmt *>> missing;
  /// Source tensors consumed (present ones), to compare variants.
  std::vector<std::string> consumed;
  /// A choice whose bound variant leaves tensors of another variant behind (a block mixing
  /// two layouts), found while an outer variant was being tried: reported if that one binds.
  struct Mixture {
    SourceRange range;
    std::string message;
    std::vector<std::pair<std::string, SourceRange>> notes;
  };
  std::vector<Mixture> mixed;

  void append(Sink &&o) {
    // A chosen variant's instances move up through every enclosing choose: take the whole
    // vector where this one is empty, else grow once per append.
    auto move = [](auto &to, auto &from) {
      if (to.empty())
        to = std::move(from);
      else
        to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
    };
    move(rules, o.rules);
    move(drops, o.drops);
    move(choices, o.choices);
    move(fromBase, o.fromBase);
    move(notRestored, o.notRestored);
    move(fallbacks, o.fallbacks);
    move(missing, o.missing);
    move(consumed, o.consumed);
    move(mixed, o.mixed);
  }
};

struct Context {
  std::string leftPrefix, rightPrefix;
  std::string trail; ///< variants chosen on the way here
};

class Binder {
public:
  Binder(const CheckedRulebook &rb, const Value &config, llvm::ArrayRef<TensorMeta> source,
         const BindOptions &options, DiagnosticEngine &diags)
      : rb_(rb), config_(config), source_(source), eval_(config, &source_), options_(options), diags_(diags) {}

  std::optional<Binding> run();

private:
  /// --from, --to and --variant name what the rulebook has; reports the rest.
  bool checkCommandLine();
  bool bindStatements(const StmtList &body, Env &env, const Context &ctx, Sink &sink);
  bool bindStatement(const Stmt &stmt, Env &env, const Context &ctx, Sink &sink);
  bool bindRule(const RuleStmt &rule, Env &env, const Context &ctx, Sink &sink);
  bool bindDrop(const DropStmt &drop, Env &env, const Context &ctx, Sink &sink);
  bool bindChoose(const ChooseStmt &choose, Env &env, const Context &ctx, Sink &sink);
  /// The variant the options, layouts or recorded choices name for `choose` at `where`, else
  /// the first: the one picked when several match alike.
  const Variant &preferredVariant(const ChooseStmt &choose, llvm::StringRef where) const;
  std::optional<NameTemplate> bindPattern(const StringExpr &pattern, const Env &env, llvm::StringRef prefix);
  std::optional<BoundTerm> bindTerm(const Term &term, const Env &env, llvm::StringRef prefix);
  std::optional<Value> bindParam(const OpParam &param, const Expr &expr, const Env &env);
  void addInstance(BoundRule rule, const Stmt &stmt, Sink &sink);
  /// `name` with `captures` (matched from `matched`) filled in; an index they make negative
  /// is an error at `range`.
  std::optional<NameTemplate> instantiate(const NameTemplate &name, const llvm::StringMap<std::string> &captures,
                                          SourceRange range, llvm::StringRef matched);
  /// "nv = 4, dk = 8": the names `expr` uses (but `skip`) and their values.
  std::string valuesOf(const Expr &expr, const Env &env, const Expr *skip = nullptr) const;

  /// Reports an evaluation error; false so callers can `return report(...)`.
  bool report(llvm::Error err);
  bool evalFailed(llvm::Error err) { return report(std::move(err)); }

  const CheckedRulebook &rb_;
  const Value &config_;
  TensorTable source_;
  Evaluator eval_;
  const BindOptions &options_;
  DiagnosticEngine &diags_;
  const MappingDecl *mapping_ = nullptr;
  bool leftIsSource_ = true;
  unsigned probeDepth_ = 0; ///< inside a variant being tried
  std::set<const ChooseStmt *> refusedVariant_; ///< where --variant was reported not to fit
  const LayoutDecl *layout_ = nullptr;        ///< --layout
  const LayoutDecl *storageLayout_ = nullptr; ///< the output format's
  const LayoutDecl *defaultLayout_ = nullptr; ///< the first HF layout declared: the official release's
  /// Rules with captures that matched nothing, with the pattern at each place: one warning
  /// per rule, however many loop iterations or uses it has.
  std::vector<std::pair<const RuleStmt *, std::vector<std::string>>> unmatched_;
};

bool Binder::report(llvm::Error err) {
  llvm::handleAllErrors(
      std::move(err),
      [&](const EvalError &e) {
        Diagnostic &d = diags_.error(e.range, e.message);
        for (const std::string &note : e.notes)
          d.note(note);
      },
      [&](const llvm::ErrorInfoBase &e) { diags_.error({}, e.message()); });
  return false;
}

static void collectNames(const Expr &expr, std::vector<const Expr *> &out);

// The planner shows these for a size it finds wrong, so that it can say where it came from.
std::string Binder::valuesOf(const Expr &expr, const Env &env, const Expr *skip) const {
  std::vector<const Expr *> names;
  collectNames(expr, names);
  std::string values;
  for (const Expr *e : names) {
    if (e == skip)
      continue;
    std::string name;
    llvm::raw_string_ostream ns(name);
    dump(*e, ns);
    auto value = eval_.eval(*e, env);
    if (!value) {
      llvm::consumeError(value.takeError());
      continue;
    }
    if (values.find(ns.str() + " = ") == std::string::npos)
      values += (values.empty() ? "" : ", ") + ns.str() + " = " + formatValue(*value);
  }
  return values;
}

std::optional<NameTemplate> Binder::bindPattern(const StringExpr &pattern, const Env &env, llvm::StringRef prefix) {
  NameTemplate name;
  // Literal text is gathered here and appended once per run: a name is bound for every
  // tensor of every variant tried, so growing it piece by piece shows in the profile.
  llvm::SmallString<128> literal(prefix);
  auto flush = [&] {
    name.appendLiteral(literal);
    literal.clear();
  };
  for (const StringPiece &piece : pattern.pieces) {
    switch (piece.kind) {
    case StringPiece::Kind::Literal:
      literal += piece.text;
      break;
    case StringPiece::Kind::RestCapture:
      flush();
      name.appendCapture(piece.text, /*rest=*/true);
      break;
    case StringPiece::Kind::Interpolation: {
      // Most interpolations name a parameter or loop variable: read it in place.
      const auto *word = dyn_cast<NameExpr>(piece.expr.get());
      const Value *v = word ? env.lookup(word->name) : nullptr;
      std::optional<Value> computed;
      if (!v) {
        // The checker allows one unbound name, a capture, which the index is or is computed
        // from as a * X + b; a and b are the index's values at X = 0 and X = 1.
        auto unbound = unboundNames(*piece.expr, [&](llvm::StringRef n) {
          return env.lookup(n) || llvm::is_contained(builtinNames(), n);
        });
        if (!unbound.empty()) {
          const std::string &capture = unbound.front()->name;
          flush();
          if (word) {
            name.appendCapture(capture, /*rest=*/false);
            break;
          }
          Env at0(&env), at1(&env);
          at0.set(capture, Value(0));
          at1.set(capture, Value(1));
          auto offset = eval_.evalInt(*piece.expr, at0);
          if (!offset)
            return report(offset.takeError()), std::nullopt;
          auto next = eval_.evalInt(*piece.expr, at1);
          if (!next)
            return report(next.takeError()), std::nullopt;
          if (*next == *offset) {
            diags_.error(piece.range, "this index does not change with capture '" + capture + "' (it is " +
                                          std::to_string(*offset) + " for every value)");
            return std::nullopt;
          }
          name.appendIndex(capture, *next - *offset, *offset);
          break;
        }
        auto value = eval_.eval(*piece.expr, env);
        if (!value)
          return report(value.takeError()), std::nullopt;
        computed = std::move(*value);
        v = &*computed;
      }
      if (v->is_number_integer())
        literal += std::to_string(v->get<int64_t>());
      else if (v->is_string())
        literal += v->get_ref<const std::string &>();
      else {
        diags_.error(piece.range, "a name can only interpolate integers and strings, not " + formatValue(*v));
        return std::nullopt;
      }
      break;
    }
    }
  }
  flush();
  return name;
}

std::optional<Value> Binder::bindParam(const OpParam &param, const Expr &expr, const Env &env) {
  // A format written as a word names itself; as a value it must be a string naming one.
  if (param.type == ParamType::QuantFormat)
    if (auto *word = dyn_cast<NameExpr>(&expr); word && !env.lookup(word->name) && isQuantFormat(word->name))
      return Value(word->name);
  auto v = eval_.eval(expr, env);
  if (!v)
    return report(v.takeError()), std::nullopt;
  auto bad = [&](const char *what) -> std::optional<Value> {
    diags_.error(expr.range(), std::string("parameter '") + param.name + "' must be " + what + ", not " + formatValue(*v));
    return std::nullopt;
  };
  switch (param.type) {
  case ParamType::Int:
    if (!v->is_number_integer()) return bad("an integer");
    return *v;
  case ParamType::Float:
    if (!v->is_number()) return bad("a number");
    return Value(v->get<double>());
  case ParamType::Bool:
    if (!v->is_boolean()) return bad("a boolean");
    return *v;
  case ParamType::DType: {
    if (!v->is_string()) return bad("a dtype");
    std::string name = normalizeDTypeName(v->get<std::string>());
    if (name.empty()) return bad("a dtype");
    return Value(name);
  }
  case ParamType::IntList:
    if (!v->is_array() || !llvm::all_of(*v, [](const Value &e) { return e.is_number_integer(); }))
      return bad("a list of integers");
    return *v;
  case ParamType::QuantFormat:
    if (!v->is_string() || !isQuantFormat(v->get<std::string>()))
      return bad("a quantization format (nvfp4, fp8, fp8_block or mxfp8)");
    return *v;
  }
  return *v;
}

std::optional<BoundTerm> Binder::bindTerm(const Term &term, const Env &env, llvm::StringRef prefix) {
  BoundTerm out;
  out.range = term.range;
  if (term.isPattern()) {
    auto name = bindPattern(*term.pattern, env, prefix);
    if (!name)
      return std::nullopt;
    out.kind = BoundTerm::Kind::Tensor;
    out.name = std::move(*name);
    return out;
  }
  out.kind = BoundTerm::Kind::Op;
  out.op = term.op;
  out.params.assign(term.op->params.size(), Value());
  for (size_t i = 0; i < term.params.size(); ++i) {
    if (!term.params[i])
      continue;
    auto v = bindParam(term.op->params[i], *term.params[i], env);
    if (!v)
      return std::nullopt;
    out.params[i] = std::move(*v);
  }
  auto bindOperands = [&](const Env &scope) -> bool {
    for (const Term::Operand &operand : term.operands) {
      auto bound = bindTerm(*operand.term, scope, prefix);
      if (!bound)
        return false;
      std::optional<int64_t> size;
      SourceRange sizeRange;
      std::string sizeValues;
      if (operand.size) {
        auto s = eval_.evalInt(*operand.size, scope);
        if (!s)
          return report(s.takeError());
        size = *s;
        sizeRange = operand.size->range();
        sizeValues = valuesOf(*operand.size, scope);
      }
      out.operands.push_back(std::move(*bound));
      out.sizes.push_back(size);
      out.sizeRanges.push_back(sizeRange);
      out.sizeValues.push_back(std::move(sizeValues));
    }
    return true;
  };
  // Terms are bound for every tensor of every variant tried: one allocation per list.
  auto reserveOperands = [&](size_t n) {
    out.operands.reserve(n);
    out.sizes.reserve(n);
    out.sizeRanges.reserve(n);
    out.sizeValues.reserve(n);
  };
  if (term.binding) {
    auto lo = eval_.evalInt(*term.binding->lo, env);
    if (!lo)
      return report(lo.takeError()), std::nullopt;
    auto hi = eval_.evalInt(*term.binding->hi, env);
    if (!hi)
      return report(hi.takeError()), std::nullopt;
    if (*hi <= *lo) {
      diags_.error(term.binding->range, "'" + term.binding->name + " in " + std::to_string(*lo) + " .. " +
                                            std::to_string(*hi) + "' is empty: nothing to stack");
      return std::nullopt;
    }
    reserveOperands(size_t(*hi - *lo) * term.operands.size());
    for (int64_t i = *lo; i < *hi; ++i) {
      Env inner(&env);
      inner.set(term.binding->name, Value(i));
      if (!bindOperands(inner))
        return std::nullopt;
    }
  } else {
    reserveOperands(term.operands.size());
    if (!bindOperands(env))
      return std::nullopt;
  }
  return out;
}

std::optional<NameTemplate> Binder::instantiate(const NameTemplate &name, const llvm::StringMap<std::string> &captures,
                                                SourceRange range, llvm::StringRef matched) {
  std::string negative = name.negativeIndex(captures);
  if (negative.empty())
    return name.instantiate(captures);
  diags_.error(range, "index " + negative + " is negative (matching '" + matched.str() + "')");
  return std::nullopt;
}

void Binder::addInstance(BoundRule rule, const Stmt &stmt, Sink &sink) {
  llvm::SmallVector<const BoundTerm *, 4> leaves;
  rule.source.leaves(leaves);
  for (const BoundTerm *leaf : leaves) {
    std::string name = leaf->name.str();
    if (source_.contains(name))
      sink.consumed.push_back(std::move(name));
    else
      sink.missing.push_back({std::move(name), &stmt});
  }
  if (!sink.probe)
    sink.rules.push_back(std::move(rule));
}

bool Binder::bindRule(const RuleStmt &stmt, Env &env, const Context &ctx, Sink &sink) {
  const CheckedRule &rule = *stmt.checked;
  if (sink.probe && stmt.fallback)
    return true; // consumes nothing until everything else is bound
  // A probe binds the source side only: the target side matters once the variant is chosen.
  const bool bindLeft = !sink.probe || leftIsSource_, bindRight = !sink.probe || !leftIsSource_;
  std::optional<BoundTerm> left = bindLeft ? bindTerm(rule.left, env, ctx.leftPrefix) : BoundTerm();
  std::optional<BoundTerm> right = bindRight ? bindTerm(rule.right, env, ctx.rightPrefix) : BoundTerm();
  if (!left || !right)
    return false;
  if (stmt.fallback) {
    sink.fallbacks.push_back({std::move(leftIsSource_ ? left->name : right->name),
                              std::move(leftIsSource_ ? right->name : left->name), &stmt});
    return true;
  }
  BoundRule bound;
  bound.source = std::move(leftIsSource_ ? *left : *right);
  bound.target = std::move(leftIsSource_ ? *right : *left);
  bound.stmt = &stmt;
  if (!sink.probe) // a probe keeps no rules
    bound.variantTrail = ctx.trail;

  llvm::SmallVector<BoundTerm *, 4> sourceLeaves;
  bound.source.leaves(sourceLeaves);
  bool hasCaptures = llvm::any_of(sourceLeaves, [](const BoundTerm *t) { return !t->name.concrete(); });

  auto present = [&](const BoundRule &r) {
    llvm::SmallVector<const BoundTerm *, 4> leaves;
    r.source.leaves(leaves);
    size_t n = 0;
    for (const BoundTerm *leaf : leaves)
      n += source_.contains(leaf->name.str());
    return std::pair(n, leaves.size());
  };

  if (!hasCaptures) {
    if (stmt.optional) {
      auto [n, total] = present(bound);
      if (n == 0)
        return true; // an optional rule whose tensors are absent does not apply
    }
    addInstance(std::move(bound), stmt, sink);
    return true;
  }

  // A rule with captures applies once per match of its first source tensor with captures;
  // the captured values then name every other tensor of the rule.
  const NameTemplate first =
      (*llvm::find_if(sourceLeaves, [](const BoundTerm *t) { return !t->name.concrete(); }))->name;
  size_t matches = 0;
  for (const std::string &name : source_.names()) {
    llvm::StringMap<std::string> captures;
    if (!first.match(name, captures))
      continue;
    ++matches;
    BoundRule instance = bound;
    llvm::SmallVector<BoundTerm *, 4> leaves;
    instance.source.leaves(leaves);
    if (!sink.probe)
      instance.target.leaves(leaves);
    for (BoundTerm *leaf : leaves) {
      auto filled = instantiate(leaf->name, captures, leaf->range, name);
      if (!filled)
        return false;
      leaf->name = std::move(*filled);
    }
    if (stmt.optional && present(instance).first == 0)
      continue;
    addInstance(std::move(instance), stmt, sink);
  }
  if (matches == 0 && probeDepth_ == 0) {
    auto it = llvm::find_if(unmatched_, [&](const auto &u) { return u.first == &stmt; });
    if (it == unmatched_.end())
      it = unmatched_.insert(unmatched_.end(), {&stmt, {}});
    it->second.push_back(first.display());
  }
  return true;
}

bool Binder::bindDrop(const DropStmt &drop, Env &env, const Context &ctx, Sink &sink) {
  if (drop.side != mapping_->left && drop.side != mapping_->right) {
    diags_.error(drop.sideRange, "this mapping relates " + mapping_->left + " and " + mapping_->right +
                                     "; it cannot drop " + drop.side + " tensors");
    return false;
  }
  bool leftSide = drop.side == mapping_->left;
  bool consumes = leftSide == leftIsSource_;
  auto pattern = bindPattern(*drop.pattern, env, leftSide ? ctx.leftPrefix : ctx.rightPrefix);
  if (!pattern)
    return false;
  llvm::StringRef prefix = leftSide ? ctx.leftPrefix : ctx.rightPrefix;

  BoundDrop base;
  base.stmt = &drop;
  base.consumes = consumes;
  base.variantTrail = ctx.trail;

  if (consumes && drop.fallback) {
    // Like an `otherwise` rename: it takes what is left once everything else is bound.
    if (!sink.probe)
      sink.fallbacks.push_back({std::move(*pattern), NameTemplate(), &drop});
    return true;
  }
  if (consumes) {
    auto addConsumed = [&](const std::string &name, const llvm::StringMap<std::string> &captures) -> bool {
      BoundDrop d = base;
      d.name = name;
      if (drop.restore == DropStmt::Restore::Copy) {
        auto copy = bindPattern(*drop.copySource, env, prefix);
        if (!copy)
          return false;
        auto copyName = instantiate(*copy, captures, drop.copySource->range(), name);
        if (!copyName)
          return false;
        d.copyOf = copyName->str();
        if (!source_.contains(d.copyOf)) {
          sink.missing.push_back({d.copyOf, &drop});
          return true;
        }
      }
      sink.consumed.push_back(name);
      sink.drops.push_back(std::move(d));
      return true;
    };
    if (pattern->concrete()) {
      std::string name = pattern->str();
      if (!source_.contains(name)) {
        sink.missing.push_back({name, &drop});
        return true;
      }
      return addConsumed(name, {});
    }
    size_t matches = 0;
    for (const std::string &name : source_.names()) {
      llvm::StringMap<std::string> captures;
      if (!pattern->match(name, captures))
        continue;
      ++matches;
      if (!addConsumed(name, captures))
        return false;
    }
    (void)matches;
    return true;
  }

  // The drop's side is the target: restore what the rule says, or record what is lost.
  switch (drop.restore) {
  case DropStmt::Restore::None:
    sink.notRestored.push_back({*pattern, &drop});
    return true;
  case DropStmt::Restore::FromBase: {
    BaseRestore restore{*pattern, {}, &drop};
    for (const auto &source : drop.baseSources) {
      auto bound = bindPattern(*source, env, prefix);
      if (!bound)
        return false;
      restore.sources.push_back(std::move(*bound));
    }
    if (restore.sources.empty())
      restore.sources.push_back(*pattern);
    sink.fromBase.push_back(std::move(restore));
    return true;
  }
  case DropStmt::Restore::Copy: {
    if (!pattern->concrete()) {
      diags_.error(drop.pattern->range(), "'" + pattern->display() +
                                              "' cannot be restored by copy: its captures have no values on this side");
      return false;
    }
    auto copy = bindPattern(*drop.copySource, env, prefix);
    if (!copy)
      return false;
    BoundDrop d = base;
    d.name = pattern->str();
    d.copyOf = copy->str();
    d.fromStash = options_.stashed.count(d.name) != 0;
    sink.drops.push_back(std::move(d));
    return true;
  }
  case DropStmt::Restore::Fill: {
    auto value = eval_.eval(*drop.fillValue, env);
    if (!value)
      return report(value.takeError());
    auto shape = eval_.eval(*drop.fillShape, env);
    if (!shape)
      return report(shape.takeError());
    if (!value->is_number()) {
      diags_.error(drop.fillValue->range(), "a fill value must be a number, not " + formatValue(*value));
      return false;
    }
    if (!shape->is_array() || !llvm::all_of(*shape, [](const Value &e) { return e.is_number_integer() && e.get<int64_t>() >= 0; })) {
      diags_.error(drop.fillShape->range(), "a fill shape must be a list of sizes, not " + formatValue(*shape));
      return false;
    }
    BoundDrop d = base;
    d.name = pattern->str();
    d.fill = true;
    d.fillValue = value->get<double>();
    for (const Value &e : *shape)
      d.fillShape.push_back(e.get<int64_t>());
    d.fillDType = drop.fillDType;
    sink.drops.push_back(std::move(d));
    return true;
  }
  }
  return true;
}

/// A layout's pick for `choice`, if it makes one.
static const LayoutDecl::Pick *layoutPick(const LayoutDecl *layout, llvm::StringRef choice) {
  if (!layout)
    return nullptr;
  for (const LayoutDecl::Pick &p : layout->picks)
    if (p.choice == choice)
      return &p;
  return nullptr;
}

const Variant &Binder::preferredVariant(const ChooseStmt &choose, llvm::StringRef where) const {
  std::string name;
  if (auto it = options_.variants.find(choose.name); it != options_.variants.end())
    name = it->second;
  else if (const LayoutDecl::Pick *p = layoutPick(layout_, choose.name))
    name = p->variant;
  else if (const LayoutDecl::Pick *p = layoutPick(storageLayout_, choose.name))
    name = p->variant;
  else if (auto r = llvm::find_if(options_.recorded, [&](const ChoiceRecord &r) { return r.choice == choose.name && r.where == where; });
           r != options_.recorded.end())
    name = r->variant;
  else if (auto r = llvm::find_if(options_.recorded, [&](const ChoiceRecord &r) { return r.choice == choose.name; });
           r != options_.recorded.end())
    name = r->variant;
  else if (const LayoutDecl::Pick *p = layoutPick(defaultLayout_, choose.name))
    name = p->variant;
  auto it = llvm::find_if(choose.variants, [&](const Variant &v) { return v.name == name; });
  return it != choose.variants.end() ? *it : choose.variants.front();
}

bool Binder::bindChoose(const ChooseStmt &choose, Env &env, const Context &ctx, Sink &sink) {
  std::string where = ctx.leftPrefix + " = " + ctx.rightPrefix;
  // Messages name the place by its scope prefixes; outside any scope the position says it all.
  std::string place = ctx.leftPrefix.empty() && ctx.rightPrefix.empty() ? "" : " at '" + where + "'";
  struct Attempt {
    const Variant *variant;
    Sink sink;
    std::vector<llvm::StringRef> sources; ///< sink.consumed, sorted, unique
  };
  std::vector<Attempt> attempts;
  auto bindVariant = [&](Attempt &a, bool probe) {
    Context inner = ctx;
    inner.trail = ctx.trail.empty() ? choose.name + "=" + a.variant->name : ctx.trail + ", " + choose.name + "=" + a.variant->name;
    Env scope(&env);
    a.sink = Sink();
    a.sink.probe = probe;
    ++probeDepth_;
    bool ok = bindStatements(a.variant->body, scope, inner, a.sink);
    --probeDepth_;
    a.sources.assign(a.sink.consumed.begin(), a.sink.consumed.end());
    std::sort(a.sources.begin(), a.sources.end());
    a.sources.erase(std::unique(a.sources.begin(), a.sources.end()), a.sources.end());
    return ok;
  };
  // Rules built for variants that are not chosen would be thrown away: only the variant
  // expected to be chosen is bound in full, the others are probed for what they consume.
  const Variant *expected = sink.probe ? nullptr : &preferredVariant(choose, where);
  attempts.reserve(choose.variants.size());
  for (const Variant &variant : choose.variants) {
    Attempt &attempt = attempts.emplace_back(Attempt{&variant, {}, {}});
    if (!bindVariant(attempt, &variant != expected))
      return false;
  }

  std::vector<Attempt *> full;
  for (Attempt &a : attempts)
    if (a.sink.missing.empty())
      full.push_back(&a);

  auto attemptNotes = [&] {
    std::vector<std::pair<std::string, SourceRange>> notes;
    for (const Attempt &a : attempts) {
      if (a.sink.missing.empty()) {
        notes.emplace_back("variant '" + a.variant->name + "' matches (" + std::to_string(a.sources.size()) +
                               (a.sources.size() == 1 ? " tensor)" : " tensors)"),
                           a.variant->nameRange);
        continue;
      }
      std::string text = "variant '" + a.variant->name + "' needs '" + a.sink.missing.front().first + "', which the checkpoint does not have";
      if (a.sink.missing.size() > 1)
        text += " (and " + std::to_string(a.sink.missing.size() - 1) + " more missing)";
      if (!a.sources.empty())
        text += "; it found " + std::to_string(a.sources.size()) + " of its tensors, e.g. '" + a.sources.front().str() + "'";
      notes.emplace_back(text, a.variant->nameRange);
    }
    return notes;
  };
  auto describeAttempts = [&](Diagnostic &d) {
    for (auto &[text, range] : attemptNotes())
      d.note(text, range);
  };
  auto report = [&](const Sink::Mixture &m) {
    Diagnostic &d = diags_.error(m.range, m.message);
    for (const auto &[text, range] : m.notes)
      d.note(text, range);
  };

  Attempt *chosen = nullptr;
  std::string reason;
  if (full.empty()) {
    if (probeDepth_ > 0) {
      // Inside an outer variant being tried: this choice's failure makes that variant not match.
      for (Attempt &a : attempts)
        if (!a.sink.missing.empty()) {
          sink.missing.push_back(a.sink.missing.front());
          break;
        }
      // What the variants found still counts: it tells a partial layout from an absent one.
      for (Attempt &a : attempts)
        for (llvm::StringRef s : a.sources)
          sink.consumed.push_back(s.str());
      return true;
    }
    Diagnostic &d = diags_.error(choose.nameRange, "no variant of '" + choose.name + "' matches the checkpoint" + place);
    describeAttempts(d);
    return false;
  }
  if (full.size() == 1) {
    chosen = full.front();
    reason = "the only variant the checkpoint matches";
  } else {
    // A variant that consumes strictly more of the source is the more specific description.
    std::vector<Attempt *> maximal;
    for (Attempt *a : full) {
      bool dominated = false;
      for (Attempt *b : full)
        if (a != b && b->sources.size() > a->sources.size() &&
            std::includes(b->sources.begin(), b->sources.end(), a->sources.begin(), a->sources.end()))
          dominated = true;
      if (!dominated)
        maximal.push_back(a);
    }
    bool sameSources = llvm::all_of(maximal, [&](Attempt *a) { return a->sources == maximal.front()->sources; });
    if (maximal.size() == 1) {
      chosen = maximal.front();
      reason = "matches the most tensors";
    } else if (!sameSources) {
      Diagnostic &d = diags_.error(choose.nameRange, "the checkpoint matches several variants of '" + choose.name + "'" + place);
      describeAttempts(d);
      return false;
    } else {
      // The variants differ only on the target side: the source cannot decide.
      auto pick = [&](llvm::StringRef name) -> Attempt * {
        for (Attempt *a : maximal)
          if (a->variant->name == name)
            return a;
        return nullptr;
      };
      // A variant asked for that does not fit: one error per choose, not one per layer it is used in.
      auto refuse = [&](SourceRange range, const std::string &message) {
        if (!refusedVariant_.insert(&choose).second)
          return false;
        std::vector<std::string> names;
        for (const Attempt *a : maximal)
          names.push_back(a->variant->name);
        diags_.error(range, message).note("the variants that fit are " + llvm::join(names, ", "));
        return false;
      };
      if (auto it = options_.variants.find(choose.name); it != options_.variants.end()) {
        chosen = pick(it->second);
        if (!chosen)
          return refuse(choose.nameRange, "--variant " + choose.name + "=" + it->second +
                                              ": that variant does not fit the checkpoint" + place);
        reason = "--variant " + choose.name + "=" + it->second;
      }
      if (const LayoutDecl::Pick *p = chosen ? nullptr : layoutPick(layout_, choose.name)) {
        chosen = pick(p->variant);
        if (!chosen)
          return refuse(p->variantRange, "--layout " + layout_->name + ": variant '" + p->variant + "' of '" +
                                             choose.name + "' does not fit the checkpoint" + place);
        reason = "--layout " + layout_->name;
      }
      if (const LayoutDecl::Pick *p = chosen ? nullptr : layoutPick(storageLayout_, choose.name)) {
        chosen = pick(p->variant);
        if (!chosen)
          return refuse(p->variantRange, "layout " + storageLayout_->name + " (the output's format): variant '" +
                                             p->variant + "' of '" + choose.name + "' does not fit the checkpoint" +
                                             place);
        reason = "layout " + storageLayout_->name + " (the output's format)";
      }
      if (!chosen) {
        for (const ChoiceRecord &r : options_.recorded)
          if (r.choice == choose.name && r.where == where && (chosen = pick(r.variant))) {
            reason = "recorded by the run that wrote the input";
            break;
          }
      }
      if (!chosen) {
        for (const ChoiceRecord &r : options_.recorded)
          if (r.choice == choose.name && (chosen = pick(r.variant))) {
            reason = "recorded by the run that wrote the input";
            break;
          }
      }
      if (const LayoutDecl::Pick *p = chosen ? nullptr : layoutPick(defaultLayout_, choose.name); p && (chosen = pick(p->variant)))
        reason = "default layout " + defaultLayout_->name;
      if (!chosen) {
        chosen = maximal.front();
        reason = "default (listed first)";
      }
    }
  }
  // A variant chosen against expectation was only probed: bind it in full now. Probing
  // recorded what it consumes and lacks as a full binding does, so the choice stands.
  if (chosen->sink.probe && !sink.probe && !bindVariant(*chosen, /*probe=*/false))
    return false;
  // Tensors another variant would map that the bound one leaves: the block mixes two layouts
  // (e.g. fused experts and some per-expert ones), which no variant describes.
  std::vector<Sink::Mixture> mixed = std::move(chosen->sink.mixed);
  chosen->sink.mixed.clear();
  for (const Attempt &a : attempts) {
    if (&a == chosen)
      continue;
    auto extra = llvm::find_if(a.sources, [&](llvm::StringRef s) {
      return !std::binary_search(chosen->sources.begin(), chosen->sources.end(), s);
    });
    if (extra == a.sources.end())
      continue;
    mixed.push_back({choose.nameRange,
                     "the checkpoint mixes variants of '" + choose.name + "'" + place + ": it has the tensors of '" +
                         chosen->variant->name + "' and '" + extra->str() + "' of '" + a.variant->name + "'",
                     attemptNotes()});
    break;
  }
  if (probeDepth_ == 0 && !mixed.empty()) {
    for (const Sink::Mixture &m : mixed)
      report(m);
    return false;
  }
  sink.choices.push_back(ChoiceRecord{choose.name, where, chosen->variant->name, reason, choose.nameRange});
  sink.append(std::move(chosen->sink));
  std::move(mixed.begin(), mixed.end(), std::back_inserter(sink.mixed));
  return true;
}

bool Binder::bindStatements(const StmtList &body, Env &env, const Context &ctx, Sink &sink) {
  bool ok = true;
  for (const StmtPtr &stmt : body)
    ok = bindStatement(*stmt, env, ctx, sink) && ok;
  return ok;
}

/// "h = 64, nh = 5": the values of the names an expression uses, for failed assertions.
static void collectNames(const Expr &expr, std::vector<const Expr *> &out) {
  switch (expr.kind()) {
  case Expr::Kind::Name:
  case Expr::Kind::Member:
    out.push_back(&expr);
    return;
  case Expr::Kind::Index:
    // `kinds[L]`, and then `L`: which entry was read matters as much as what it holds.
    out.push_back(&expr);
    collectNames(*cast<IndexExpr>(expr).index, out);
    return;
  case Expr::Kind::Unary: collectNames(*cast<UnaryExpr>(expr).operand, out); return;
  case Expr::Kind::Binary:
    collectNames(*cast<BinaryExpr>(expr).lhs, out);
    collectNames(*cast<BinaryExpr>(expr).rhs, out);
    return;
  case Expr::Kind::Call:
    for (const Argument &a : cast<CallExpr>(expr).args)
      if (a.value)
        collectNames(*a.value, out);
    return;
  default:
    return;
  }
}

bool Binder::bindStatement(const Stmt &stmt, Env &env, const Context &ctx, Sink &sink) {
  switch (stmt.kind()) {
  case Stmt::Kind::Rule:
    return bindRule(cast<RuleStmt>(stmt), env, ctx, sink);
  case Stmt::Kind::Param: {
    const auto &p = cast<ParamStmt>(stmt);
    auto v = eval_.eval(*p.value, env);
    if (!v)
      return report(v.takeError());
    env.set(p.name, std::move(*v));
    return true;
  }
  case Stmt::Kind::Assert: {
    const auto &a = cast<AssertStmt>(stmt);
    auto v = eval_.evalBool(*a.condition, env);
    if (!v)
      return report(v.takeError());
    if (!*v) {
      std::string text;
      llvm::raw_string_ostream os(text);
      dump(*a.condition, os);
      Diagnostic &d = diags_.error(a.range(), "assertion failed: " + os.str() + (a.message.empty() ? "" : " (" + a.message + ")"));
      std::vector<const Expr *> names;
      collectNames(*a.condition, names);
      std::string values;
      for (const Expr *e : names) {
        std::string name;
        llvm::raw_string_ostream ns(name);
        dump(*e, ns);
        auto value = eval_.eval(*e, env);
        std::string shown = value ? formatValue(*value) : "<" + llvm::toString(value.takeError()) + ">";
        if (values.find(ns.str() + " = ") == std::string::npos)
          values += (values.empty() ? "" : ", ") + ns.str() + " = " + shown;
      }
      if (!values.empty())
        d.note("with " + values);
      return false;
    }
    return true;
  }
  case Stmt::Kind::For: {
    const auto &f = cast<ForStmt>(stmt);
    auto lo = eval_.evalInt(*f.lo, env);
    if (!lo)
      return report(lo.takeError());
    auto hi = eval_.evalInt(*f.hi, env);
    if (!hi)
      return report(hi.takeError());
    bool ok = true;
    for (int64_t i = *lo; i < *hi; ++i) {
      Env inner(&env);
      inner.set(f.var, Value(i));
      ok = bindStatements(f.body, inner, ctx, sink) && ok;
    }
    return ok;
  }
  case Stmt::Kind::If: {
    const auto &i = cast<IfStmt>(stmt);
    auto cond = eval_.evalBool(*i.condition, env);
    if (!cond)
      return report(cond.takeError());
    Env inner(&env);
    return bindStatements(*cond ? i.thenBody : i.elseBody, inner, ctx, sink);
  }
  case Stmt::Kind::Switch: {
    const auto &s = cast<SwitchStmt>(stmt);
    auto subject = eval_.eval(*s.subject, env);
    if (!subject)
      return report(subject.takeError());
    for (const SwitchCase &c : s.cases) {
      for (const ExprPtr &v : c.values) {
        auto value = eval_.eval(*v, env);
        if (!value)
          return report(value.takeError());
        if (*value == *subject) {
          Env inner(&env);
          return bindStatements(c.body, inner, ctx, sink);
        }
      }
    }
    if (s.hasDefault) {
      Env inner(&env);
      return bindStatements(s.defaultBody, inner, ctx, sink);
    }
    std::string text;
    llvm::raw_string_ostream os(text);
    dump(*s.subject, os);
    std::vector<std::string> known;
    for (const SwitchCase &c : s.cases)
      for (const ExprPtr &v : c.values)
        if (auto value = eval_.eval(*v, env))
          known.push_back(formatValue(*value));
        else
          llvm::consumeError(value.takeError());
    Diagnostic &d = diags_.error(s.range(), "no case for " + os.str() + " = " + formatValue(*subject));
    d.note("the cases are " + llvm::join(known, ", "));
    // In a loop, which iteration: "with L = 3".
    std::string where = valuesOf(*s.subject, env, s.subject.get());
    if (!where.empty())
      d.note("with " + where);
    return false;
  }
  case Stmt::Kind::Scope: {
    const auto &s = cast<ScopeStmt>(stmt);
    auto left = eval_.evalString(*s.left, env);
    if (!left)
      return report(left.takeError());
    auto right = eval_.evalString(*s.right, env);
    if (!right)
      return report(right.takeError());
    Context inner = ctx;
    inner.leftPrefix += *left;
    inner.rightPrefix += *right;
    Env scope(&env);
    return bindStatements(s.body, scope, inner, sink);
  }
  case Stmt::Kind::Use: {
    Env scope(&env);
    return bindStatements(cast<UseStmt>(stmt).target->body, scope, ctx, sink);
  }
  case Stmt::Kind::Choose:
    return bindChoose(cast<ChooseStmt>(stmt), env, ctx, sink);
  case Stmt::Kind::Drop:
    return bindDrop(cast<DropStmt>(stmt), env, ctx, sink);
  case Stmt::Kind::Keep: {
    const auto &keep = cast<KeepStmt>(stmt);
    auto source = bindPattern(*keep.pattern, env, leftIsSource_ ? ctx.leftPrefix : ctx.rightPrefix);
    auto target = bindPattern(*keep.pattern, env, leftIsSource_ ? ctx.rightPrefix : ctx.leftPrefix);
    if (!source || !target)
      return false;
    sink.fallbacks.push_back({std::move(*source), std::move(*target), &keep});
    return true;
  }
  }
  return true;
}

/// A choice as every `choose` of that name makes it: where it is first made, its variants.
struct ChoiceInfo {
  SourceRange first;
  std::vector<std::string> variants;
};

/// Every `choose` of `body` and below, by choice name.
static void collectChoices(const StmtList &body, std::map<std::string, ChoiceInfo> &out) {
  for (const StmtPtr &stmt : body) {
    switch (stmt->kind()) {
    case Stmt::Kind::For: collectChoices(cast<ForStmt>(*stmt).body, out); break;
    case Stmt::Kind::If:
      collectChoices(cast<IfStmt>(*stmt).thenBody, out);
      collectChoices(cast<IfStmt>(*stmt).elseBody, out);
      break;
    case Stmt::Kind::Switch:
      for (const SwitchCase &c : cast<SwitchStmt>(*stmt).cases)
        collectChoices(c.body, out);
      collectChoices(cast<SwitchStmt>(*stmt).defaultBody, out);
      break;
    case Stmt::Kind::Scope: collectChoices(cast<ScopeStmt>(*stmt).body, out); break;
    case Stmt::Kind::Choose: {
      const auto &choose = cast<ChooseStmt>(*stmt);
      ChoiceInfo &info = out[choose.name];
      if (!info.first.valid())
        info.first = choose.nameRange;
      for (const Variant &v : choose.variants) {
        if (!llvm::is_contained(info.variants, v.name))
          info.variants.push_back(v.name);
        collectChoices(v.body, out);
      }
      break;
    }
    default: break;
    }
  }
}

bool Binder::checkCommandLine() {
  bool ok = true;
  for (const std::string *conv : {&options_.from, &options_.to}) {
    if (llvm::is_contained(knownConventions(), *conv))
      continue;
    std::string guess = closestMatch(*conv, knownConventions());
    diags_.error({}, std::string(conv == &options_.from ? "--from " : "--to ") + *conv + ": unknown convention")
        .note(guess.empty() ? "the conventions are " + llvm::join(knownConventions(), ", ") : "did you mean '" + guess + "'?");
    ok = false;
  }
  // --variant names a choice of this rulebook and one of its variants; anything else is a
  // misspelling that would otherwise be ignored.
  const ast::Rulebook &rb = rb_.ast();
  std::map<std::string, ChoiceInfo> choices;
  for (const auto &m : rb.mappings)
    collectChoices(m->body, choices);
  for (const auto &b : rb.blocks)
    collectChoices(b->body, choices);
  std::vector<std::string> choiceNames;
  for (const auto &[name, variants] : choices)
    choiceNames.push_back(name);
  for (const auto &[choice, variant] : options_.variants) {
    std::string flag = "--variant " + choice + "=" + variant;
    auto it = choices.find(choice);
    if (it == choices.end()) {
      Diagnostic &d = diags_.error({}, flag + ": rulebook '" + rb.name + "' has no choice '" + choice + "'");
      std::string guess = closestMatch(choice, choiceNames);
      d.note(!guess.empty()        ? "did you mean '" + guess + "'?"
             : choiceNames.empty() ? std::string("it makes no choices")
                                   : "its choices are " + llvm::join(choiceNames, ", "));
      ok = false;
    } else if (!llvm::is_contained(it->second.variants, variant)) {
      Diagnostic &d = diags_.error(it->second.first, flag + ": choice '" + choice + "' has no variant '" + variant + "'");
      if (std::string guess = closestMatch(variant, it->second.variants); !guess.empty())
        d.note("did you mean '" + guess + "'?");
      d.note("its variants are " + llvm::join(it->second.variants, ", "));
      ok = false;
    }
  }
  // Every layout names choices and variants the rulebook has; --layout names a layout.
  for (const LayoutDecl &layout : rb.layouts) {
    for (const LayoutDecl::Pick &p : layout.picks) {
      auto it = choices.find(p.choice);
      if (it == choices.end()) {
        Diagnostic &d = diags_.error(p.choiceRange, "layout '" + layout.name + "': the rulebook has no choice '" + p.choice + "'");
        if (std::string guess = closestMatch(p.choice, choiceNames); !guess.empty())
          d.note("did you mean '" + guess + "'?");
        ok = false;
      } else if (!llvm::is_contained(it->second.variants, p.variant)) {
        Diagnostic &d = diags_.error(p.variantRange, "layout '" + layout.name + "': choice '" + p.choice +
                                                         "' has no variant '" + p.variant + "'");
        d.note("its variants are " + llvm::join(it->second.variants, ", "));
        ok = false;
      }
    }
  }
  for (const LayoutDecl &l : rb.layouts)
    if (!l.mcore && !defaultLayout_)
      defaultLayout_ = &l;
  if (!options_.layout.empty()) {
    layout_ = rb.findLayout(options_.layout);
    if (!layout_) {
      std::vector<std::string> names;
      for (const LayoutDecl &l : rb.layouts)
        names.push_back(l.name);
      Diagnostic &d = diags_.error({}, "--layout " + options_.layout + ": rulebook '" + rb.name + "' has no layout '" +
                                           options_.layout + "'");
      std::string guess = closestMatch(options_.layout, names);
      d.note(!guess.empty()   ? "did you mean '" + guess + "'?"
             : names.empty() ? std::string("it declares no layouts")
                             : "its layouts are " + llvm::join(names, ", "));
      ok = false;
    }
  }
  // A rulebook without one writes the format with its names as they are.
  if (const LayoutDecl *l = rb.findLayout(options_.storageLayout); l && l->mcore)
    storageLayout_ = l;
  return ok;
}

std::optional<Binding> Binder::run() {
  const ast::Rulebook &rb = rb_.ast();
  if (!checkCommandLine())
    return std::nullopt;
  mapping_ = rb_.findMapping(options_.from, options_.to);
  if (!mapping_) {
    std::vector<std::string> pairs;
    for (const auto &m : rb.mappings)
      pairs.push_back(m->left + " <-> " + m->right);
    diags_.error({}, "rulebook '" + rb.name + "' has no mapping between " + options_.from + " and " + options_.to)
        .note(pairs.empty() ? "it defines no mapping" : "it maps " + llvm::join(pairs, "; "));
    return std::nullopt;
  }
  leftIsSource_ = mapping_->left == options_.from;

  // The config's model_type must be one the rulebook was written for.
  if (!options_.anyModelType && !rb.modelTypes.empty()) {
    std::string type = config_.is_object() && config_.contains("model_type") && config_["model_type"].is_string()
                           ? config_["model_type"].get<std::string>()
                           : "";
    if (!llvm::is_contained(rb.modelTypes, type)) {
      diags_.error(rb.nameRange, type.empty() ? "config.json has no model_type"
                                              : "config.json's model_type '" + type + "' is not one rulebook '" +
                                                    rb.name + "' accepts")
          .note("it accepts " + llvm::join(rb.modelTypes, ", "));
      return std::nullopt;
    }
  }

  Binding binding;
  binding.from = options_.from;
  binding.to = options_.to;
  Env globals;
  llvm::StringSet<> declared;
  bool ok = true;
  for (const auto &param : rb.params) {
    declared.insert(param->name);
    if (auto it = options_.overrides.find(param->name); it != options_.overrides.end()) {
      globals.set(param->name, it->second);
      binding.params[param->name] = it->second;
      continue;
    }
    auto v = eval_.eval(*param->value, globals);
    if (!v) {
      ok = report(v.takeError());
      continue;
    }
    binding.params[param->name] = *v;
    globals.set(param->name, std::move(*v));
  }
  for (const auto &[name, value] : options_.overrides) {
    if (declared.count(name))
      continue;
    std::vector<std::string> names;
    for (const auto &p : rb.params)
      names.push_back(p->name);
    Diagnostic &d = diags_.error({}, "-D " + name + ": rulebook '" + rb.name + "' has no parameter '" + name + "'");
    std::string guess = closestMatch(name, names);
    if (!guess.empty())
      d.note("did you mean '" + guess + "'?");
    ok = false;
  }
  if (!ok)
    return std::nullopt;
  for (const auto &a : rb.asserts)
    ok = bindStatement(*a, globals, {}, *std::make_unique<Sink>()) && ok;
  if (!ok)
    return std::nullopt;

  Sink sink;
  Env scope(&globals);
  ok = bindStatements(mapping_->body, scope, {}, sink);
  for (const auto &[stmt, patterns] : unmatched_)
    diags_.warning(stmt->range(), "rule matches no tensor of the checkpoint (" + patterns.front() +
                                      (patterns.size() > 1 ? " and " + std::to_string(patterns.size() - 1) + " more" : "") + ")");

  // `otherwise` and `keep`: a source tensor no rule consumed takes the first fallback
  // rename that matches it.
  if (!sink.fallbacks.empty()) {
    llvm::StringSet<> consumed;
    for (const std::string &name : sink.consumed)
      consumed.insert(name);
    for (const std::string &name : source_.names()) {
      if (consumed.count(name))
        continue;
      for (const Sink::Fallback &f : sink.fallbacks) {
        llvm::StringMap<std::string> captures;
        if (!f.source.match(name, captures))
          continue;
        if (const auto *drop = llvm::dyn_cast<DropStmt>(f.stmt)) {
          BoundDrop d;
          d.stmt = drop;
          d.name = name;
          sink.consumed.push_back(name);
          sink.drops.push_back(std::move(d));
          break;
        }
        auto filled = instantiate(f.target, captures, f.stmt->range(), name);
        if (!filled) {
          ok = false;
          break;
        }
        NameTemplate target = std::move(*filled);
        assert(target.concrete() && "the checker puts every capture on both sides of a rule");
        BoundRule rule;
        rule.source.range = rule.target.range = f.stmt->range();
        rule.source.name.appendLiteral(name);
        rule.target.name = std::move(target);
        rule.fallback = f.stmt;
        sink.consumed.push_back(name);
        sink.rules.push_back(std::move(rule));
        break;
      }
    }
  }

  // Source tensors a rule needs but the checkpoint lacks, one error per statement.
  std::vector<const Stmt *> order;
  std::map<const Stmt *, std::vector<std::string>> missing;
  for (auto &[name, stmt] : sink.missing) {
    if (!missing.count(stmt))
      order.push_back(stmt);
    missing[stmt].push_back(name);
  }
  for (const Stmt *stmt : order) {
    const auto &names = missing[stmt];
    std::string list;
    for (size_t i = 0; i < names.size() && i < 3; ++i)
      list += (i ? ", '" : "'") + names[i] + "'";
    if (names.size() > 3)
      list += " and " + std::to_string(names.size() - 3) + " more";
    Diagnostic &d = diags_.error(stmt->range(), std::string(llvm::isa<DropStmt>(stmt) ? "drop" : "rule") + " needs " +
                                                    (names.size() == 1 ? "a tensor" : std::to_string(names.size()) + " tensors") +
                                                    " the checkpoint does not have: " + list);
    if (std::string note = source_.suggestion(names.front()); !note.empty())
      d.note(names.size() == 1 ? note : "'" + names.front() + "': " + note);
    ok = false;
  }
  if (!ok)
    return std::nullopt;

  binding.rules = std::move(sink.rules);
  binding.drops = std::move(sink.drops);
  binding.choices = std::move(sink.choices);
  binding.fromBase = std::move(sink.fromBase);
  binding.notRestored = std::move(sink.notRestored);
  return binding;
}

} // namespace

std::optional<Binding> bindRulebook(const CheckedRulebook &rulebook, const Value &config,
                                    llvm::ArrayRef<TensorMeta> source, const BindOptions &options,
                                    DiagnosticEngine &diags) {
  return Binder(rulebook, config, source, options, diags).run();
}

} // namespace ckptmap
