#include "compiler/ast/AST.h"

#include "llvm/ADT/STLExtras.h"

#include <charconv>
#include <string>

namespace ckptmap::ast {

llvm::StringRef spelling(BinaryOp op) {
  switch (op) {
  case BinaryOp::Add: return "+";
  case BinaryOp::Sub: return "-";
  case BinaryOp::Mul: return "*";
  case BinaryOp::Div: return "/";
  case BinaryOp::Mod: return "%";
  case BinaryOp::Lt: return "<";
  case BinaryOp::Le: return "<=";
  case BinaryOp::Gt: return ">";
  case BinaryOp::Ge: return ">=";
  case BinaryOp::Eq: return "==";
  case BinaryOp::Ne: return "!=";
  case BinaryOp::And: return "and";
  case BinaryOp::Or: return "or";
  case BinaryOp::Default: return "??";
  }
  return "?";
}

const BlockDecl *Rulebook::findBlock(llvm::StringRef name) const {
  for (const auto &block : blocks)
    if (block->name == name)
      return block.get();
  return nullptr;
}

const LayoutDecl *Rulebook::findLayout(llvm::StringRef name) const {
  for (const LayoutDecl &layout : layouts)
    if (layout.name == name)
      return &layout;
  return nullptr;
}

static const Stmt *statementIn(const StmtList &body, SourceLoc loc) {
  for (const StmtPtr &stmt : body) {
    if (stmt->range().begin == loc)
      return stmt.get();
    std::vector<const StmtList *> inner;
    switch (stmt->kind()) {
    case Stmt::Kind::For: inner = {&llvm::cast<ForStmt>(*stmt).body}; break;
    case Stmt::Kind::If: inner = {&llvm::cast<IfStmt>(*stmt).thenBody, &llvm::cast<IfStmt>(*stmt).elseBody}; break;
    case Stmt::Kind::Switch:
      for (const SwitchCase &c : llvm::cast<SwitchStmt>(*stmt).cases)
        inner.push_back(&c.body);
      inner.push_back(&llvm::cast<SwitchStmt>(*stmt).defaultBody);
      break;
    case Stmt::Kind::Scope: inner = {&llvm::cast<ScopeStmt>(*stmt).body}; break;
    case Stmt::Kind::Choose:
      for (const Variant &v : llvm::cast<ChooseStmt>(*stmt).variants)
        inner.push_back(&v.body);
      break;
    default: break;
    }
    for (const StmtList *list : inner)
      if (const Stmt *found = statementIn(*list, loc))
        return found;
  }
  return nullptr;
}

const Stmt *Rulebook::statementAt(SourceLoc loc) const {
  for (const auto &m : mappings)
    if (const Stmt *s = statementIn(m->body, loc))
      return s;
  for (const auto &b : blocks)
    if (const Stmt *s = statementIn(b->body, loc))
      return s;
  return nullptr;
}

// The dump prints the AST back as (normalized) rulebook text, which is also what the tests
// compare against.

/// Text as the inside of a string literal: the escapes the lexer decodes, encoded back.
static std::string escaped(llvm::StringRef text) {
  std::string out;
  for (char c : text) {
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\t': out += "\\t"; break;
    default: out += c;
    }
  }
  return out;
}

static std::string quoted(llvm::StringRef text) { return "\"" + escaped(text) + "\""; }

static void dumpString(const StringExpr &s, llvm::raw_ostream &os) {
  os << '"';
  for (const StringPiece &piece : s.pieces) {
    switch (piece.kind) {
    case StringPiece::Kind::Literal: os << escaped(piece.text); break;
    case StringPiece::Kind::RestCapture: os << "{*" << piece.text << "}"; break;
    case StringPiece::Kind::Interpolation: {
      // The interpolation is read from the decoded string, so its own strings are escaped
      // once more here.
      std::string inner;
      llvm::raw_string_ostream is(inner);
      dump(*piece.expr, is);
      os << "{" << escaped(is.str()) << "}";
      break;
    }
    }
  }
  os << '"';
}

void dump(const Expr &expr, llvm::raw_ostream &os) {
  using llvm::cast;
  switch (expr.kind()) {
  case Expr::Kind::Int: os << cast<IntExpr>(expr).value; break;
  case Expr::Kind::Float: {
    // The shortest text that reads back as the same double, and still reads as a float.
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, cast<FloatExpr>(expr).value);
    std::string text(buf, ec == std::errc() ? end : buf);
    if (text.find_first_of(".en") == std::string::npos)
      text += ".0";
    os << text;
    break;
  }
  case Expr::Kind::Bool: os << (cast<BoolExpr>(expr).value ? "true" : "false"); break;
  case Expr::Kind::Null: os << "null"; break;
  case Expr::Kind::String: dumpString(cast<StringExpr>(expr), os); break;
  case Expr::Kind::Name: os << cast<NameExpr>(expr).name; break;
  case Expr::Kind::List: {
    os << "[";
    const auto &list = cast<ListExpr>(expr);
    for (size_t i = 0; i < list.elements.size(); ++i) {
      if (i) os << ", ";
      dump(*list.elements[i], os);
    }
    os << "]";
    break;
  }
  case Expr::Kind::Member: {
    const auto &m = cast<MemberExpr>(expr);
    dump(*m.base, os);
    os << "." << m.member;
    break;
  }
  case Expr::Kind::Index: {
    const auto &ix = cast<IndexExpr>(expr);
    dump(*ix.base, os);
    os << "[";
    dump(*ix.index, os);
    os << "]";
    break;
  }
  case Expr::Kind::Unary: {
    const auto &u = cast<UnaryExpr>(expr);
    os << (u.op == UnaryOp::Neg ? "-" : "not ");
    dump(*u.operand, os);
    break;
  }
  case Expr::Kind::Binary: {
    const auto &b = cast<BinaryExpr>(expr);
    os << "(";
    dump(*b.lhs, os);
    os << " " << spelling(b.op) << " ";
    dump(*b.rhs, os);
    os << ")";
    break;
  }
  case Expr::Kind::Call: {
    const auto &c = cast<CallExpr>(expr);
    os << c.callee << "(";
    for (size_t i = 0; i < c.args.size(); ++i) {
      if (i) os << ", ";
      const Argument &a = c.args[i];
      switch (a.kind) {
      case Argument::Kind::Positional: dump(*a.value, os); break;
      case Argument::Kind::Named: os << a.name << ": "; dump(*a.value, os); break;
      case Argument::Kind::Sized: dump(*a.value, os); os << " : "; dump(*a.size, os); break;
      case Argument::Kind::Binding:
        os << a.name << " in ";
        dump(*a.lo, os);
        os << " .. ";
        dump(*a.hi, os);
        break;
      }
    }
    os << ")";
    break;
  }
  }
}

static void dumpBody(const StmtList &body, llvm::raw_ostream &os, unsigned indent);

static void dumpStmt(const Stmt &stmt, llvm::raw_ostream &os, unsigned indent) {
  using llvm::cast;
  os.indent(indent);
  switch (stmt.kind()) {
  case Stmt::Kind::Rule: {
    const auto &r = cast<RuleStmt>(stmt);
    if (r.optional) os << "optional ";
    if (r.fallback) os << "otherwise ";
    dump(*r.left, os);
    os << " = ";
    dump(*r.right, os);
    os << "\n";
    break;
  }
  case Stmt::Kind::Param: {
    const auto &p = cast<ParamStmt>(stmt);
    os << "param " << p.name << " = ";
    dump(*p.value, os);
    os << "\n";
    break;
  }
  case Stmt::Kind::Assert: {
    const auto &a = cast<AssertStmt>(stmt);
    os << "assert ";
    dump(*a.condition, os);
    if (!a.message.empty()) os << " : " << quoted(a.message);
    os << "\n";
    break;
  }
  case Stmt::Kind::For: {
    const auto &f = cast<ForStmt>(stmt);
    os << "for " << f.var << " in ";
    dump(*f.lo, os);
    os << " .. ";
    dump(*f.hi, os);
    dumpBody(f.body, os, indent);
    break;
  }
  case Stmt::Kind::If: {
    const auto &i = cast<IfStmt>(stmt);
    os << "if ";
    dump(*i.condition, os);
    dumpBody(i.thenBody, os, indent);
    if (!i.elseBody.empty()) {
      os.indent(indent) << "else";
      dumpBody(i.elseBody, os, indent);
    }
    break;
  }
  case Stmt::Kind::Switch: {
    const auto &s = cast<SwitchStmt>(stmt);
    os << "switch ";
    dump(*s.subject, os);
    os << " {\n";
    for (const SwitchCase &c : s.cases) {
      os.indent(indent + 2) << "case ";
      for (size_t i = 0; i < c.values.size(); ++i) {
        if (i) os << ", ";
        dump(*c.values[i], os);
      }
      dumpBody(c.body, os, indent + 2);
    }
    if (s.hasDefault) {
      os.indent(indent + 2) << "default";
      dumpBody(s.defaultBody, os, indent + 2);
    }
    os.indent(indent) << "}\n";
    break;
  }
  case Stmt::Kind::Scope: {
    const auto &s = cast<ScopeStmt>(stmt);
    os << "scope ";
    dumpString(*s.left, os);
    os << " = ";
    dumpString(*s.right, os);
    dumpBody(s.body, os, indent);
    break;
  }
  case Stmt::Kind::Use: os << "use " << cast<UseStmt>(stmt).name << "\n"; break;
  case Stmt::Kind::Choose: {
    const auto &c = cast<ChooseStmt>(stmt);
    os << "choose " << c.name << " {\n";
    for (const Variant &v : c.variants) {
      os.indent(indent + 2) << "variant " << v.name;
      dumpBody(v.body, os, indent + 2);
    }
    os.indent(indent) << "}\n";
    break;
  }
  case Stmt::Kind::Keep:
    os << "keep ";
    dumpString(*cast<KeepStmt>(stmt).pattern, os);
    os << "\n";
    break;
  case Stmt::Kind::Drop: {
    const auto &d = cast<DropStmt>(stmt);
    os << (d.fallback ? "otherwise drop " : "drop ") << d.side << " ";
    dumpString(*d.pattern, os);
    os << " because " << quoted(d.reason);
    switch (d.restore) {
    case DropStmt::Restore::None: break;
    case DropStmt::Restore::Copy: os << " restore copy "; dumpString(*d.copySource, os); break;
    case DropStmt::Restore::FromBase:
      os << " restore from base";
      for (size_t i = 0; i < d.baseSources.size(); ++i) {
        os << (i ? ", " : " ");
        dumpString(*d.baseSources[i], os);
      }
      break;
    case DropStmt::Restore::Fill:
      os << " restore fill(";
      dump(*d.fillValue, os);
      os << ", ";
      dump(*d.fillShape, os);
      os << ", " << d.fillDType << ")";
      break;
    }
    os << "\n";
    break;
  }
  }
}

static void dumpBody(const StmtList &body, llvm::raw_ostream &os, unsigned indent) {
  os << " {\n";
  for (const StmtPtr &s : body)
    dumpStmt(*s, os, indent + 2);
  os.indent(indent) << "}\n";
}

void Rulebook::dump(llvm::raw_ostream &os) const {
  os << "rulebook " << name << " {\n";
  if (!modelTypes.empty()) {
    os << "  model_types";
    for (size_t i = 0; i < modelTypes.size(); ++i)
      os << (i ? ", " : " ") << quoted(modelTypes[i]);
    os << "\n";
  }
  for (const LayoutDecl &l : layouts) {
    os << (l.mcore ? "  mcore_layout " : "  layout ") << l.name << " {";
    for (const LayoutDecl::Pick &p : l.picks)
      os << " " << p.choice << " = " << p.variant;
    os << " }\n";
  }
  os << "}\n";
  for (const auto &p : params)
    dumpStmt(*p, os, 0);
  for (const auto &a : asserts)
    dumpStmt(*a, os, 0);
  for (const auto &b : blocks) {
    os << "block " << b->name;
    dumpBody(b->body, os, 0);
  }
  for (const auto &m : mappings) {
    os << "mapping " << m->left << " <-> " << m->right;
    dumpBody(m->body, os, 0);
  }
}

/// Calls `visit` on every expression directly below `expr`.
static void forEachChild(const Expr &expr, llvm::function_ref<void(const Expr &)> visit) {
  using llvm::cast;
  switch (expr.kind()) {
  case Expr::Kind::String:
    for (const StringPiece &piece : cast<StringExpr>(expr).pieces)
      if (piece.expr)
        visit(*piece.expr);
    break;
  case Expr::Kind::List:
    for (const ExprPtr &e : cast<ListExpr>(expr).elements)
      visit(*e);
    break;
  case Expr::Kind::Member: visit(*cast<MemberExpr>(expr).base); break;
  case Expr::Kind::Index:
    visit(*cast<IndexExpr>(expr).base);
    visit(*cast<IndexExpr>(expr).index);
    break;
  case Expr::Kind::Unary: visit(*cast<UnaryExpr>(expr).operand); break;
  case Expr::Kind::Binary:
    visit(*cast<BinaryExpr>(expr).lhs);
    visit(*cast<BinaryExpr>(expr).rhs);
    break;
  case Expr::Kind::Call:
    for (const Argument &a : cast<CallExpr>(expr).args)
      for (const ExprPtr *e : {&a.value, &a.size, &a.lo, &a.hi})
        if (*e)
          visit(**e);
    break;
  default: break;
  }
}

static void collectUnbound(const Expr &expr, llvm::function_ref<bool(llvm::StringRef)> isBound,
                           std::vector<const NameExpr *> &out) {
  if (auto *name = llvm::dyn_cast<NameExpr>(&expr)) {
    if (!isBound(name->name) && llvm::none_of(out, [&](const NameExpr *n) { return n->name == name->name; }))
      out.push_back(name);
    return;
  }
  forEachChild(expr, [&](const Expr &child) { collectUnbound(child, isBound, out); });
}

std::vector<const NameExpr *> unboundNames(const Expr &expr, llvm::function_ref<bool(llvm::StringRef)> isBound) {
  std::vector<const NameExpr *> out;
  collectUnbound(expr, isBound, out);
  return out;
}

static unsigned uses(const Expr &expr, llvm::StringRef name) {
  if (auto *n = llvm::dyn_cast<NameExpr>(&expr))
    return n->name == name;
  unsigned count = 0;
  forEachChild(expr, [&](const Expr &child) { count += uses(child, name); });
  return count;
}

/// Whether the one use of `name` in `expr` is reached through +, -, * and unary - only.
static bool linearPath(const Expr &expr, llvm::StringRef name) {
  if (auto *n = llvm::dyn_cast<NameExpr>(&expr))
    return n->name == name;
  if (auto *u = llvm::dyn_cast<UnaryExpr>(&expr))
    return u->op == UnaryOp::Neg && linearPath(*u->operand, name);
  if (auto *b = llvm::dyn_cast<BinaryExpr>(&expr)) {
    if (b->op != BinaryOp::Add && b->op != BinaryOp::Sub && b->op != BinaryOp::Mul)
      return false;
    return linearPath(uses(*b->lhs, name) ? *b->lhs : *b->rhs, name);
  }
  return false;
}

bool isAffineIn(const Expr &expr, llvm::StringRef name) { return uses(expr, name) == 1 && linearPath(expr, name); }

} // namespace ckptmap::ast
