#include "compiler/check/Checker.h"

#include "base/DType.h"
#include "compiler/check/Terms.h"
#include "compiler/quant/QuantType.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"

#include <map>
#include <set>
#include <tuple>

namespace ckptmap {

using namespace ast;
using llvm::cast;
using llvm::dyn_cast;
using llvm::isa;

llvm::ArrayRef<std::string> knownConventions() {
  static const std::vector<std::string> names = {"mcore", "hf", "hf-mem"};
  return names;
}

llvm::ArrayRef<std::string> builtinFunctions() {
  static const std::vector<std::string> names = {"len", "chars", "min", "max", "contains", "dtype", "count", "ifelse", "shape"};
  return names;
}

llvm::ArrayRef<std::string> builtinNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n = {"config"};
    for (DType t : kAllDTypes)
      n.push_back(std::string(dtypeName(t)));
    return n;
  }();
  return names;
}

const MappingDecl *CheckedRulebook::findMapping(llvm::StringRef from, llvm::StringRef to) const {
  for (const auto &m : ast_->mappings)
    if ((m->left == from && m->right == to) || (m->left == to && m->right == from))
      return m.get();
  return nullptr;
}

namespace {

/// Names visible at a point: params, loop variables, stack bindings. Chained outward.
struct Scope {
  const Scope *parent = nullptr;
  llvm::StringSet<> names;

  bool contains(llvm::StringRef name) const {
    for (const Scope *s = this; s; s = s->parent)
      if (s->names.count(name))
        return true;
    return false;
  }
  void collect(std::vector<std::string> &out) const {
    for (const Scope *s = this; s; s = s->parent)
      for (const auto &entry : s->names)
        out.push_back(entry.getKey().str());
  }
};

/// Names captured by a pattern term, with where each first appears.
using Captures = llvm::StringMap<SourceRange>;

class Checker {
public:
  explicit Checker(DiagnosticEngine &diags) : diags_(diags) {}

  void check(const Rulebook &rb);

private:
  // Reports once per position and text: a block checked at several uses would otherwise
  // repeat its errors.
  Diagnostic *error(SourceRange range, std::string message) {
    if (!reported_.insert({range.begin.file, range.begin.line, range.begin.col, message}).second)
      return nullptr;
    return &diags_.error(range, std::move(message));
  }
  /// Reports an unknown name with a suggestion; null when already reported there.
  Diagnostic *unknownName(SourceRange range, llvm::StringRef name, const Scope &scope);

  void checkStatements(const StmtList &body, Scope &scope);
  void checkStatement(const Stmt &stmt, Scope &scope);
  void checkRule(RuleStmt &rule, const Scope &scope);
  void checkDrop(const DropStmt &drop, const Scope &scope);
  void checkExpr(const Expr &expr, const Scope &scope);
  void checkParam(const OpParam &param, const Expr &value, const Scope &scope);
  void checkPattern(const StringExpr &pattern, const Scope &scope, Captures &captures);
  std::unique_ptr<Term> classifyTerm(const Expr &expr, const Scope &scope, Captures &captures);
  void declare(Scope &scope, llvm::StringRef name, SourceRange range);

  DiagnosticEngine &diags_;
  std::set<std::tuple<uint32_t, uint32_t, uint32_t, std::string>> reported_;
  llvm::StringMap<SourceRange> globalParams_;
  llvm::StringSet<> usedNames_;
  std::vector<const BlockDecl *> blockStack_; ///< blocks being checked, to catch recursion
  const Rulebook *rulebook_ = nullptr;
};

Diagnostic *Checker::unknownName(SourceRange range, llvm::StringRef name, const Scope &scope) {
  std::vector<std::string> candidates;
  scope.collect(candidates);
  for (const std::string &b : builtinNames())
    candidates.push_back(b);
  Diagnostic *d = error(range, "unknown name '" + name.str() + "'");
  if (!d)
    return nullptr;
  std::string guess = closestMatch(name, candidates);
  if (!guess.empty())
    d->note("did you mean '" + guess + "'?");
  return d;
}

/// Integer arithmetic on names and literals: where a capture might have been meant.
static bool isArithmetic(const Expr &expr) {
  switch (expr.kind()) {
  case Expr::Kind::Int:
  case Expr::Kind::Name: return true;
  case Expr::Kind::Unary: return cast<UnaryExpr>(expr).op == UnaryOp::Neg && isArithmetic(*cast<UnaryExpr>(expr).operand);
  case Expr::Kind::Binary: {
    const auto &b = cast<BinaryExpr>(expr);
    bool arithmetic = b.op == BinaryOp::Add || b.op == BinaryOp::Sub || b.op == BinaryOp::Mul || b.op == BinaryOp::Div ||
                      b.op == BinaryOp::Mod;
    return arithmetic && isArithmetic(*b.lhs) && isArithmetic(*b.rhs);
  }
  default: return false;
  }
}

void Checker::declare(Scope &scope, llvm::StringRef name, SourceRange range) {
  if (llvm::is_contained(builtinNames(), name))
    error(range, "'" + name.str() + "' is a built-in name and cannot be redefined");
  scope.names.insert(name);
}

void Checker::check(const Rulebook &rb) {
  rulebook_ = &rb;
  if (rb.name.empty() && !diags_.hasErrors())
    error({}, "the rulebook has no header (rulebook NAME { ... })");

  // Global parameters, in order: each sees the ones before it.
  Scope globals;
  for (const auto &param : rb.params) {
    checkExpr(*param->value, globals);
    auto [it, inserted] = globalParams_.try_emplace(param->name, param->nameRange);
    if (!inserted) {
      if (Diagnostic *d = error(param->nameRange, "parameter '" + param->name + "' is already defined"))
        d->note("previous definition is here", it->second);
    }
    declare(globals, param->name, param->nameRange);
  }
  for (const auto &a : rb.asserts)
    checkExpr(*a->condition, globals);

  llvm::StringMap<SourceRange> blocks;
  for (const auto &block : rb.blocks) {
    auto [it, inserted] = blocks.try_emplace(block->name, block->nameRange);
    if (!inserted)
      if (Diagnostic *d = error(block->nameRange, "block '" + block->name + "' is already defined"))
        d->note("previous definition is here", it->second);
  }

  if (rb.mappings.empty() && !rb.name.empty())
    error(rb.nameRange, "rulebook '" + rb.name + "' has no mapping (mapping mcore <-> hf { ... })");
  std::map<std::pair<std::string, std::string>, SourceRange> pairs;
  for (const auto &mapping : rb.mappings) {
    for (auto [conv, range] : {std::pair(mapping->left, mapping->leftRange), std::pair(mapping->right, mapping->rightRange)}) {
      if (!llvm::is_contained(knownConventions(), conv)) {
        Diagnostic *d = error(range, "unknown convention '" + conv + "'");
        std::string guess = closestMatch(conv, knownConventions());
        if (d)
          d->note(guess.empty() ? "known conventions: mcore, hf, hf-mem" : "did you mean '" + guess + "'?");
      }
    }
    if (mapping->left == mapping->right)
      error(mapping->range, "a mapping must relate two different conventions");
    auto key = std::minmax(mapping->left, mapping->right);
    auto [previous, inserted] = pairs.try_emplace(key, mapping->range);
    if (!inserted)
      if (Diagnostic *d = error(mapping->range, "a mapping between " + mapping->left + " and " + mapping->right +
                                                    " is already defined"))
        d->note("previous definition is here", previous->second);
    Scope scope{&globals, {}};
    checkStatements(mapping->body, scope);
  }

  // A block no mapping uses has no scope to be checked in; say so instead.
  // A second definition of a name, or a parameter named like a built-in, is already an error;
  // saying it is also unused adds nothing.
  for (const auto &block : rb.blocks) {
    // Blocks of an included library are there to be picked from.
    if (block->used || block->nameRange.begin.file != rb.nameRange.begin.file || rb.findBlock(block->name) != block.get())
      continue;
    diags_.warning(block->nameRange, "block '" + block->name + "' is never used");
  }
  for (const auto &param : rb.params)
    if (!usedNames_.count(param->name) && !llvm::is_contained(builtinNames(), param->name))
      diags_.warning(param->nameRange, "parameter '" + param->name + "' is never used");
}

void Checker::checkStatements(const StmtList &body, Scope &scope) {
  for (const StmtPtr &stmt : body)
    checkStatement(*stmt, scope);
}

void Checker::checkStatement(const Stmt &stmt, Scope &scope) {
  switch (stmt.kind()) {
  case Stmt::Kind::Rule:
    checkRule(const_cast<RuleStmt &>(cast<RuleStmt>(stmt)), scope);
    break;
  case Stmt::Kind::Param: {
    const auto &p = cast<ParamStmt>(stmt);
    checkExpr(*p.value, scope);
    declare(scope, p.name, p.nameRange);
    usedNames_.insert(p.name); // local parameters are for the rules right below
    break;
  }
  case Stmt::Kind::Assert:
    checkExpr(*cast<AssertStmt>(stmt).condition, scope);
    break;
  case Stmt::Kind::For: {
    const auto &f = cast<ForStmt>(stmt);
    checkExpr(*f.lo, scope);
    checkExpr(*f.hi, scope);
    Scope inner{&scope, {}};
    declare(inner, f.var, f.varRange);
    checkStatements(f.body, inner);
    break;
  }
  case Stmt::Kind::If: {
    const auto &i = cast<IfStmt>(stmt);
    checkExpr(*i.condition, scope);
    Scope thenScope{&scope, {}}, elseScope{&scope, {}};
    checkStatements(i.thenBody, thenScope);
    checkStatements(i.elseBody, elseScope);
    break;
  }
  case Stmt::Kind::Switch: {
    const auto &s = cast<SwitchStmt>(stmt);
    checkExpr(*s.subject, scope);
    for (const SwitchCase &c : s.cases) {
      for (const ExprPtr &v : c.values)
        checkExpr(*v, scope);
      Scope inner{&scope, {}};
      checkStatements(c.body, inner);
    }
    Scope inner{&scope, {}};
    checkStatements(s.defaultBody, inner);
    break;
  }
  case Stmt::Kind::Scope: {
    const auto &s = cast<ScopeStmt>(stmt);
    checkExpr(*s.left, scope);
    checkExpr(*s.right, scope);
    Scope inner{&scope, {}};
    checkStatements(s.body, inner);
    break;
  }
  case Stmt::Kind::Use: {
    auto &use = const_cast<UseStmt &>(cast<UseStmt>(stmt));
    const BlockDecl *block = rulebook_->findBlock(use.name);
    if (!block) {
      std::vector<std::string> names;
      for (const auto &b : rulebook_->blocks)
        names.push_back(b->name);
      if (Diagnostic *d = error(use.range(), "unknown block '" + use.name + "'")) {
        std::string guess = closestMatch(use.name, names);
        if (!guess.empty())
          d->note("did you mean '" + guess + "'?");
      }
      break;
    }
    use.target = block;
    block->used = true;
    if (auto cycle = llvm::find(blockStack_, block); cycle != blockStack_.end()) {
      // Through other blocks, the path matters: "layer -> mlp -> layer".
      std::string path;
      for (auto it = cycle; it != blockStack_.end(); ++it)
        path += (*it)->name + " -> ";
      std::string message = "block '" + use.name + "' uses itself";
      if (cycle + 1 != blockStack_.end())
        message += " (" + path + use.name + ")";
      if (Diagnostic *d = error(use.range(), message))
        d->note("block '" + block->name + "' is defined here", block->nameRange);
      break;
    }
    // A block is checked where it is used: it sees that point's loop variables and params.
    blockStack_.push_back(block);
    Scope inner{&scope, {}};
    checkStatements(block->body, inner);
    blockStack_.pop_back();
    break;
  }
  case Stmt::Kind::Choose: {
    const auto &c = cast<ChooseStmt>(stmt);
    llvm::StringMap<SourceRange> seen;
    for (const Variant &v : c.variants) {
      auto [it, inserted] = seen.try_emplace(v.name, v.nameRange);
      if (!inserted)
        if (Diagnostic *d = error(v.nameRange, "variant '" + v.name + "' is already defined in choice '" + c.name + "'"))
          d->note("previous definition is here", it->second);
      Scope inner{&scope, {}};
      checkStatements(v.body, inner);
    }
    break;
  }
  case Stmt::Kind::Drop:
    checkDrop(cast<DropStmt>(stmt), scope);
    break;
  case Stmt::Kind::Keep: {
    Captures captures;
    checkPattern(*cast<KeepStmt>(stmt).pattern, scope, captures);
    break;
  }
  }
}

void Checker::checkDrop(const DropStmt &drop, const Scope &scope) {
  if (!llvm::is_contained(knownConventions(), drop.side)) {
    if (Diagnostic *d = error(drop.sideRange, "unknown convention '" + drop.side + "'")) {
      std::string guess = closestMatch(drop.side, knownConventions());
      if (!guess.empty())
        d->note("did you mean '" + guess + "'?");
    }
  }
  if (drop.reason.empty())
    error(drop.range(), "a drop must state its reason");
  Captures captures;
  checkPattern(*drop.pattern, scope, captures);
  switch (drop.restore) {
  case DropStmt::Restore::Copy: {
    // The copy source may use the drop pattern's captures, nothing else unbound.
    Scope withCaptures{&scope, {}};
    for (const auto &c : captures)
      withCaptures.names.insert(c.getKey());
    Captures extra;
    checkPattern(*drop.copySource, withCaptures, extra);
    for (const auto &c : extra)
      unknownName(c.getValue(), c.getKey(), withCaptures);
    break;
  }
  case DropStmt::Restore::Fill:
    if (!captures.empty())
      error(drop.pattern->range(), "a dropped tensor restored by fill must be named without captures");
    checkExpr(*drop.fillValue, scope);
    checkExpr(*drop.fillShape, scope);
    if (!parseDType(drop.fillDType))
      error(drop.fillDTypeRange, "unknown dtype '" + drop.fillDType + "'");
    break;
  case DropStmt::Restore::FromBase:
    // A base name and the dropped name it becomes capture the same values.
    for (const auto &source : drop.baseSources) {
      Captures base;
      checkPattern(*source, scope, base);
      for (const auto &c : captures)
        if (!base.count(c.getKey()))
          error(source->range(), "this --hf-base name does not capture '" + c.getKey().str() +
                                     "', which the dropped name uses");
      for (const auto &c : base)
        if (!captures.count(c.getKey()))
          error(c.getValue(), "capture '" + c.getKey().str() + "' appears only in the --hf-base name");
    }
    break;
  case DropStmt::Restore::None:
    break;
  }
  if (drop.fallback && drop.restore != DropStmt::Restore::None && drop.restore != DropStmt::Restore::FromBase)
    error(drop.range(), "an 'otherwise drop' restores from base or not at all");
}

void Checker::checkPattern(const StringExpr &pattern, const Scope &scope, Captures &captures) {
  if (pattern.pieces.empty())
    error(pattern.range(), "empty tensor name");
  for (const StringPiece &piece : pattern.pieces) {
    switch (piece.kind) {
    case StringPiece::Kind::Literal:
      break;
    case StringPiece::Kind::RestCapture:
      if (scope.contains(piece.text))
        error(piece.range, "'" + piece.text + "' is already bound; a rest capture needs a fresh name");
      captures.try_emplace(piece.text, piece.range);
      break;
    case StringPiece::Kind::Interpolation: {
      // An index whose names are all bound evaluates. One unbound name is a capture: the
      // index is that integer (`{L}`) or computed from it as a * L + b (`{layers + M}`), so
      // that a name matched on one side can be solved for the capture.
      auto unbound = unboundNames(*piece.expr, [&](llvm::StringRef n) {
        return scope.contains(n) || llvm::is_contained(builtinNames(), n);
      });
      if (unbound.empty()) {
        checkExpr(*piece.expr, scope);
        break;
      }
      if (unbound.size() > 1) {
        std::vector<std::string> names;
        for (const NameExpr *n : unbound)
          names.push_back("'" + n->name + "'");
        Diagnostic *d = error(piece.range, "an index can be computed from one capture, but this one uses " +
                                               std::to_string(unbound.size()) + " unknown names: " + llvm::join(names, ", "));
        std::vector<std::string> candidates;
        scope.collect(candidates);
        for (const NameExpr *n : unbound)
          if (std::string guess = closestMatch(n->name, candidates); d && !guess.empty())
            d->note("did you mean '" + guess + "' for '" + n->name + "'?");
        break;
      }
      const NameExpr &capture = *unbound.front();
      if (!isAffineIn(*piece.expr, capture.name)) {
        if (Diagnostic *d = unknownName(capture.range(), capture.name, scope); d && isArithmetic(*piece.expr))
          d->note("a capture can enter an index only as a * " + capture.name + " + b");
        break;
      }
      captures.try_emplace(capture.name, capture.range());
      Scope withCapture{&scope, {}};
      withCapture.names.insert(capture.name);
      checkExpr(*piece.expr, withCapture);
      break;
    }
    }
  }
}

void Checker::checkParam(const OpParam &param, const Expr &value, const Scope &scope) {
  // A quantization format is written as a word (`nvfp4`), or as a value naming one.
  auto *word = dyn_cast<NameExpr>(&value);
  if (param.type == ParamType::QuantFormat && word && !scope.contains(word->name)) {
    if (isQuantFormat(word->name))
      return;
    if (Diagnostic *d = error(word->range(), "unknown quantization format '" + word->name + "'")) {
      std::vector<std::string> formats = {"nvfp4", "fp8", "fp8_block", "mxfp8"};
      std::string guess = closestMatch(word->name, formats);
      d->note(guess.empty() ? "the formats are " + llvm::join(formats, ", ") : "did you mean '" + guess + "'?");
    }
    return;
  }
  checkExpr(value, scope);
}

static bool isTensorExpr(const Expr &expr) {
  if (isa<StringExpr>(expr))
    return true;
  if (auto *call = dyn_cast<CallExpr>(&expr))
    return lookupOp(call->callee) != nullptr;
  return false;
}

std::unique_ptr<Term> Checker::classifyTerm(const Expr &expr, const Scope &scope, Captures &captures) {
  auto term = std::make_unique<Term>();
  term->range = expr.range();
  if (auto *pattern = dyn_cast<StringExpr>(&expr)) {
    term->kind = Term::Kind::Pattern;
    term->pattern = pattern;
    checkPattern(*pattern, scope, captures);
    return term;
  }
  auto *call = dyn_cast<CallExpr>(&expr);
  if (!call) {
    error(expr.range(), "expected a tensor name or an op here");
    return nullptr;
  }
  const OpInfo *op = lookupOp(call->callee);
  if (!op) {
    Diagnostic *d = error(call->calleeRange, "unknown op '" + call->callee + "'");
    if (d) {
      std::string guess = closestMatch(call->callee, opNames());
      if (!guess.empty())
        d->note("did you mean '" + guess + "'?");
      else if (llvm::is_contained(builtinFunctions(), call->callee))
        d->note("'" + call->callee + "' is a function on values; a rule side needs a tensor name or an op");
    }
    return nullptr;
  }
  term->kind = Term::Kind::Op;
  term->op = op;
  term->params.assign(op->params.size(), nullptr);

  Scope inner{&scope, {}};
  size_t nextParam = 0;
  bool ok = true;
  for (size_t i = 0; i < call->args.size(); ++i) {
    const Argument &arg = call->args[i];
    switch (arg.kind) {
    case Argument::Kind::Binding:
      if (!op->takesBinding || i != 0) {
        error(arg.range, op->takesBinding ? "the binding must be the first argument of '" + std::string(op->name) + "'"
                                          : "op '" + std::string(op->name) + "' takes no binding");
        ok = false;
        break;
      }
      checkExpr(*arg.lo, scope);
      checkExpr(*arg.hi, scope);
      declare(inner, arg.name, arg.nameRange);
      term->binding = &arg;
      break;
    case Argument::Kind::Named: {
      int index = paramIndex(*op, arg.name);
      if (index < 0) {
        std::vector<std::string> names;
        for (const OpParam &p : op->params)
          names.push_back(p.name);
        if (Diagnostic *d = error(arg.nameRange, "op '" + std::string(op->name) + "' has no parameter '" + arg.name + "'")) {
          std::string guess = closestMatch(arg.name, names);
          if (!guess.empty())
            d->note("did you mean '" + guess + "'?");
        }
        ok = false;
        break;
      }
      if (term->params[index]) {
        error(arg.nameRange, "parameter '" + arg.name + "' is given twice");
        ok = false;
        break;
      }
      term->params[index] = arg.value.get();
      checkParam(op->params[index], *arg.value, inner);
      break;
    }
    case Argument::Kind::Sized:
    case Argument::Kind::Positional:
      if (isTensorExpr(*arg.value)) {
        if (arg.kind == Argument::Kind::Sized && !op->sizedOperands) {
          error(arg.range, "parts of '" + std::string(op->name) + "' cannot state sizes");
          ok = false;
        }
        auto operand = classifyTerm(*arg.value, inner, captures);
        if (!operand) {
          ok = false;
          break;
        }
        if (arg.size)
          checkExpr(*arg.size, inner);
        term->operands.push_back({std::move(operand), arg.size.get()});
      } else if (arg.kind == Argument::Kind::Sized) {
        error(arg.value->range(), "only a tensor part can state a size");
        ok = false;
      } else {
        while (nextParam < op->params.size() && term->params[nextParam])
          ++nextParam;
        if (nextParam == op->params.size()) {
          error(arg.range, "too many arguments to '" + std::string(op->name) + "'");
          ok = false;
          break;
        }
        checkParam(op->params[nextParam], *arg.value, inner);
        term->params[nextParam++] = arg.value.get();
      }
      break;
    }
  }
  if (!ok)
    return nullptr;
  if (op->takesBinding && !term->binding) {
    error(call->calleeRange, "'" + std::string(op->name) + "' needs a binding first: " + op->name + "(E in 0 .. n, ...)");
    return nullptr;
  }
  size_t n = term->operands.size();
  if (n < op->minOperands || n > op->maxOperands) {
    std::string expected = op->minOperands == op->maxOperands ? std::to_string(op->minOperands)
                           : op->maxOperands == UINT32_MAX   ? "at least " + std::to_string(op->minOperands)
                                                             : std::to_string(op->minOperands) + " to " + std::to_string(op->maxOperands);
    error(call->calleeRange, "op '" + std::string(op->name) + "' takes " + expected + " tensor part" +
                                 (expected == "1" ? "" : "s") + ", got " + std::to_string(n));
    return nullptr;
  }
  for (size_t i = 0; i < op->params.size(); ++i)
    if (op->params[i].required && !term->params[i]) {
      error(call->calleeRange, "op '" + std::string(op->name) + "' needs parameter '" + op->params[i].name + "'");
      return nullptr;
    }
  return term;
}

void Checker::checkRule(RuleStmt &rule, const Scope &scope) {
  Captures leftCaptures, rightCaptures;
  unsigned errorsBefore = diags_.errorCount();
  auto left = classifyTerm(*rule.left, scope, leftCaptures);
  auto right = classifyTerm(*rule.right, scope, rightCaptures);
  // A side with errors says less about its captures than it seems to: no more from this rule.
  if (!left || !right || diags_.errorCount() != errorsBefore)
    return;
  if (!left->isPattern() && !right->isPattern()) {
    error(rule.range(), "only one side of a rule can apply an op; the other must name one tensor");
    return;
  }
  if (rule.fallback && (!left->isPattern() || !right->isPattern())) {
    error(rule.range(), "an 'otherwise' rule renames: both sides must be tensor names");
    return;
  }
  // A capture binds the same value on both sides, so it must appear on both; a name on one
  // side only is almost always a misspelt parameter.
  auto onlyOn = [&](const Captures &a, const Captures &b, const char *side) {
    bool ok = true;
    for (const auto &c : a) {
      if (b.count(c.getKey()))
        continue;
      ok = false;
      std::vector<std::string> candidates;
      scope.collect(candidates);
      for (const auto &other : b)
        candidates.push_back(other.getKey().str());
      Diagnostic *d = error(c.getValue(), "capture '" + c.getKey().str() + "' appears only on the " + side +
                                              " side of the rule");
      if (d) {
        std::string guess = closestMatch(c.getKey(), candidates);
        if (!guess.empty())
          d->note("did you mean '" + guess + "'?");
      }
    }
    return ok;
  };
  bool ok = onlyOn(leftCaptures, rightCaptures, "left");
  ok = onlyOn(rightCaptures, leftCaptures, "right") && ok;
  if (!ok)
    return;
  auto checked = std::make_shared<CheckedRule>();
  checked->left = std::move(*left);
  checked->right = std::move(*right);
  rule.checked = std::move(checked);
}

void Checker::checkExpr(const Expr &expr, const Scope &scope) {
  switch (expr.kind()) {
  case Expr::Kind::Int:
  case Expr::Kind::Float:
  case Expr::Kind::Bool:
  case Expr::Kind::Null:
    break;
  case Expr::Kind::String:
    for (const StringPiece &piece : cast<StringExpr>(expr).pieces) {
      if (piece.kind == StringPiece::Kind::Interpolation)
        checkExpr(*piece.expr, scope);
      else if (piece.kind == StringPiece::Kind::RestCapture)
        error(piece.range, "a capture can only appear in a tensor name pattern");
    }
    break;
  case Expr::Kind::List:
    for (const ExprPtr &e : cast<ListExpr>(expr).elements)
      checkExpr(*e, scope);
    break;
  case Expr::Kind::Name: {
    const auto &name = cast<NameExpr>(expr);
    usedNames_.insert(name.name);
    if (!scope.contains(name.name) && !llvm::is_contained(builtinNames(), name.name))
      unknownName(name.range(), name.name, scope);
    break;
  }
  case Expr::Kind::Member:
    checkExpr(*cast<MemberExpr>(expr).base, scope);
    break;
  case Expr::Kind::Index:
    checkExpr(*cast<IndexExpr>(expr).base, scope);
    checkExpr(*cast<IndexExpr>(expr).index, scope);
    break;
  case Expr::Kind::Unary:
    checkExpr(*cast<UnaryExpr>(expr).operand, scope);
    break;
  case Expr::Kind::Binary:
    checkExpr(*cast<BinaryExpr>(expr).lhs, scope);
    checkExpr(*cast<BinaryExpr>(expr).rhs, scope);
    break;
  case Expr::Kind::Call: {
    const auto &call = cast<CallExpr>(expr);
    if (!llvm::is_contained(builtinFunctions(), call.callee)) {
      if (lookupOp(call.callee)) {
        error(call.calleeRange, "op '" + call.callee + "' produces a tensor and cannot be used as a value");
      } else if (Diagnostic *d = error(call.calleeRange, "unknown function '" + call.callee + "'")) {
        std::string guess = closestMatch(call.callee, builtinFunctions());
        if (!guess.empty())
          d->note("did you mean '" + guess + "'?");
      }
    }
    for (const Argument &arg : call.args) {
      if (arg.kind != Argument::Kind::Positional) {
        error(arg.range, "functions take plain arguments");
        continue;
      }
      checkExpr(*arg.value, scope);
    }
    break;
  }
  }
}

} // namespace

std::unique_ptr<CheckedRulebook> checkRulebook(std::unique_ptr<ast::Rulebook> rulebook, DiagnosticEngine &diags) {
  unsigned before = diags.errorCount();
  Checker(diags).check(*rulebook);
  if (diags.errorCount() != before)
    return nullptr;
  return std::unique_ptr<CheckedRulebook>(new CheckedRulebook(std::move(rulebook)));
}

} // namespace ckptmap
