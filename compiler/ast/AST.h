// The rulebook AST: the parse tree turned into the project's own types, each node carrying
// its source range. The checker annotates it (fields marked "set by the checker"); nothing
// after the checker sees a parse tree.
#pragma once

#include "compiler/diag/SourceManager.h"

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Casting.h"
#include "llvm/Support/raw_ostream.h"

#include <memory>
#include <string>
#include <vector>

namespace ckptmap {
struct CheckedRule; // compiler/check/Terms.h
} // namespace ckptmap

namespace ckptmap::ast {

//===----------------------------------------------------------------------===//
// Expressions
//===----------------------------------------------------------------------===//

class Expr {
public:
  enum class Kind { Int, Float, String, Bool, Null, List, Name, Member, Index, Unary, Binary, Call };

  Expr(Kind kind, SourceRange range) : kind_(kind), range_(range) {}
  virtual ~Expr() = default;

  Kind kind() const { return kind_; }
  SourceRange range() const { return range_; }

private:
  Kind kind_;
  SourceRange range_;
};
using ExprPtr = std::unique_ptr<Expr>;

template <Expr::Kind K> class ExprBase : public Expr {
public:
  explicit ExprBase(SourceRange range) : Expr(K, range) {}
  static bool classof(const Expr *e) { return e->kind() == K; }
};

class IntExpr : public ExprBase<Expr::Kind::Int> {
public:
  IntExpr(SourceRange r, int64_t v) : ExprBase(r), value(v) {}
  int64_t value;
};

class FloatExpr : public ExprBase<Expr::Kind::Float> {
public:
  FloatExpr(SourceRange r, double v) : ExprBase(r), value(v) {}
  double value;
};

class BoolExpr : public ExprBase<Expr::Kind::Bool> {
public:
  BoolExpr(SourceRange r, bool v) : ExprBase(r), value(v) {}
  bool value;
};

class NullExpr : public ExprBase<Expr::Kind::Null> {
public:
  using ExprBase::ExprBase;
};

/// A string literal. Its {...} interpolations make it a template: in a tensor position it
/// is a name pattern whose unbound names are captures; elsewhere it formats a string.
struct StringPiece {
  enum class Kind { Literal, Interpolation, RestCapture } kind = Kind::Literal;
  std::string text;   ///< Literal: the characters; RestCapture: the capture's name
  ExprPtr expr;       ///< Interpolation
  SourceRange range;  ///< the piece, braces included for interpolations
};

class StringExpr : public ExprBase<Expr::Kind::String> {
public:
  using ExprBase::ExprBase;
  std::vector<StringPiece> pieces;

  bool isPlain() const {
    return pieces.empty() || (pieces.size() == 1 && pieces[0].kind == StringPiece::Kind::Literal);
  }
  /// The literal text of a plain string (no interpolations).
  std::string plainText() const { return pieces.empty() ? std::string() : pieces[0].text; }
};

class ListExpr : public ExprBase<Expr::Kind::List> {
public:
  using ExprBase::ExprBase;
  std::vector<ExprPtr> elements;
};

class NameExpr : public ExprBase<Expr::Kind::Name> {
public:
  NameExpr(SourceRange r, std::string n) : ExprBase(r), name(std::move(n)) {}
  std::string name;
};

class MemberExpr : public ExprBase<Expr::Kind::Member> {
public:
  MemberExpr(SourceRange r, ExprPtr b, std::string m, SourceRange mr)
      : ExprBase(r), base(std::move(b)), member(std::move(m)), memberRange(mr) {}
  ExprPtr base;
  std::string member;
  SourceRange memberRange;
};

class IndexExpr : public ExprBase<Expr::Kind::Index> {
public:
  IndexExpr(SourceRange r, ExprPtr b, ExprPtr i) : ExprBase(r), base(std::move(b)), index(std::move(i)) {}
  ExprPtr base;
  ExprPtr index;
};

enum class UnaryOp { Neg, Not };
class UnaryExpr : public ExprBase<Expr::Kind::Unary> {
public:
  UnaryExpr(SourceRange r, UnaryOp o, ExprPtr e) : ExprBase(r), op(o), operand(std::move(e)) {}
  UnaryOp op;
  ExprPtr operand;
};

enum class BinaryOp { Add, Sub, Mul, Div, Mod, Lt, Le, Gt, Ge, Eq, Ne, And, Or, Default };
llvm::StringRef spelling(BinaryOp op);

class BinaryExpr : public ExprBase<Expr::Kind::Binary> {
public:
  BinaryExpr(SourceRange r, BinaryOp o, ExprPtr l, ExprPtr rhs)
      : ExprBase(r), op(o), lhs(std::move(l)), rhs(std::move(rhs)) {}
  BinaryOp op;
  ExprPtr lhs, rhs;
};

/// One argument of a call: `x`, `name: x`, `x : size` (a part with its size along the
/// op's dim) or `E in lo .. hi` (a loop over the rest of the arguments, for stack).
struct Argument {
  enum class Kind { Positional, Named, Sized, Binding } kind = Kind::Positional;
  std::string name;      ///< Named: the parameter; Binding: the loop variable
  SourceRange nameRange;
  ExprPtr value;         ///< Positional, Named, Sized
  ExprPtr size;          ///< Sized
  ExprPtr lo, hi;        ///< Binding
  SourceRange range;
};

/// f(args): an op when it appears in a tensor position (concat, qkv, stack, ...), a builtin
/// function otherwise (len, chars, ...). The checker decides which.
class CallExpr : public ExprBase<Expr::Kind::Call> {
public:
  CallExpr(SourceRange r, std::string c, SourceRange cr) : ExprBase(r), callee(std::move(c)), calleeRange(cr) {}
  std::string callee;
  SourceRange calleeRange;
  std::vector<Argument> args;
};

//===----------------------------------------------------------------------===//
// Statements
//===----------------------------------------------------------------------===//

class BlockDecl;

class Stmt {
public:
  enum class Kind { Rule, Param, Assert, For, If, Switch, Scope, Use, Choose, Drop, Keep };
  Stmt(Kind kind, SourceRange range) : kind_(kind), range_(range) {}
  virtual ~Stmt() = default;
  Kind kind() const { return kind_; }
  SourceRange range() const { return range_; }
  /// The line of the statement's last token, for quoting a statement that spans lines.
  uint32_t lastLine() const { return lastLine_ ? lastLine_ : range_.begin.line; }
  void setLastLine(uint32_t line) { lastLine_ = line; }

private:
  Kind kind_;
  SourceRange range_;
  uint32_t lastLine_ = 0;
};
using StmtPtr = std::unique_ptr<Stmt>;
using StmtList = std::vector<StmtPtr>;

template <Stmt::Kind K> class StmtBase : public Stmt {
public:
  explicit StmtBase(SourceRange range) : Stmt(K, range) {}
  static bool classof(const Stmt *s) { return s->kind() == K; }
};

/// `left = right`: left names tensors of the mapping's first convention, right of its second.
class RuleStmt : public StmtBase<Stmt::Kind::Rule> {
public:
  using StmtBase::StmtBase;
  ExprPtr left, right;
  bool optional = false; ///< applies only when its source tensors exist
  /// `otherwise`: a rename applied last, to source tensors no other rule consumed.
  bool fallback = false;
  std::shared_ptr<const CheckedRule> checked; ///< set by the checker
};

class ParamStmt : public StmtBase<Stmt::Kind::Param> {
public:
  using StmtBase::StmtBase;
  std::string name;
  SourceRange nameRange;
  ExprPtr value;
  std::string doc;
};

class AssertStmt : public StmtBase<Stmt::Kind::Assert> {
public:
  using StmtBase::StmtBase;
  ExprPtr condition;
  std::string message;
};

class ForStmt : public StmtBase<Stmt::Kind::For> {
public:
  using StmtBase::StmtBase;
  std::string var;
  SourceRange varRange;
  ExprPtr lo, hi;
  StmtList body;
};

class IfStmt : public StmtBase<Stmt::Kind::If> {
public:
  using StmtBase::StmtBase;
  ExprPtr condition;
  StmtList thenBody;
  StmtList elseBody; ///< an `else if` is an IfStmt alone in here
};

struct SwitchCase {
  std::vector<ExprPtr> values;
  StmtList body;
  SourceRange range;
};

class SwitchStmt : public StmtBase<Stmt::Kind::Switch> {
public:
  using StmtBase::StmtBase;
  ExprPtr subject;
  std::vector<SwitchCase> cases;
  bool hasDefault = false;
  StmtList defaultBody;
};

/// `scope "decoder.layers.{L}." = "model.layers.{L}." { ... }`: patterns inside are relative
/// to these prefixes, one per side.
class ScopeStmt : public StmtBase<Stmt::Kind::Scope> {
public:
  using StmtBase::StmtBase;
  std::unique_ptr<StringExpr> left, right;
  StmtList body;
};

class UseStmt : public StmtBase<Stmt::Kind::Use> {
public:
  using StmtBase::StmtBase;
  std::string name;
  const BlockDecl *target = nullptr; ///< set by the checker
};

struct Variant {
  std::string name;
  SourceRange nameRange;
  std::string doc;
  StmtList body;
};

/// Alternatives chosen by what the checkpoint contains; `name` is the choice's key for
/// --variant and for the record kept in outputs.
class ChooseStmt : public StmtBase<Stmt::Kind::Choose> {
public:
  using StmtBase::StmtBase;
  std::string name;
  SourceRange nameRange;
  std::vector<Variant> variants;
};

class DropStmt : public StmtBase<Stmt::Kind::Drop> {
public:
  enum class Restore { None, Copy, Fill, FromBase };
  using StmtBase::StmtBase;
  std::string side; ///< the convention whose tensors are dropped
  SourceRange sideRange;
  std::unique_ptr<StringExpr> pattern;
  std::string reason;
  Restore restore = Restore::None;
  std::unique_ptr<StringExpr> copySource; ///< Copy: a tensor of the same side
  ExprPtr fillValue, fillShape;           ///< Fill
  std::string fillDType;
  SourceRange fillDTypeRange;
  /// FromBase: the --hf-base names to take, whose captures fill `pattern` (the base may spell
  /// a block another way than the output); empty: `pattern` itself.
  std::vector<std::unique_ptr<StringExpr>> baseSources;
  /// `otherwise drop`: consumes only source tensors no other statement consumed, and restores
  /// only --hf-base tensors no other `restore from base` took.
  bool fallback = false;
};

/// `keep "pattern"`: source tensors matching the pattern that no other rule consumes keep
/// their name on the other side (the identity rules of layouts that rename little).
class KeepStmt : public StmtBase<Stmt::Kind::Keep> {
public:
  using StmtBase::StmtBase;
  std::unique_ptr<StringExpr> pattern;
};

//===----------------------------------------------------------------------===//
// Declarations
//===----------------------------------------------------------------------===//

class BlockDecl {
public:
  std::string name;
  SourceRange nameRange;
  StmtList body;
  mutable bool used = false; ///< set by the checker
};

class MappingDecl {
public:
  std::string left, right; ///< conventions
  SourceRange leftRange, rightRange;
  SourceRange range;
  StmtList body;
};

struct Include {
  std::string path;
  SourceRange range;
};

/// `layout NAME "doc" { choice = variant ... }`: a named set of variants, the values of
/// `--layout` (the first declared is the default where nothing else decides).
struct LayoutDecl {
  struct Pick {
    std::string choice, variant;
    SourceRange choiceRange, variantRange;
  };
  std::string name, doc;
  SourceRange nameRange;
  std::vector<Pick> picks;
  /// `mcore_layout`: the MCore spelling a storage format needs (torch_dist keys), chosen by
  /// the output's format rather than by --layout or by default.
  bool mcore = false;
};

/// A rulebook and everything it includes, merged.
class Rulebook {
public:
  std::string name;
  SourceRange nameRange;
  std::vector<std::string> modelTypes;
  std::string description;
  std::vector<LayoutDecl> layouts;
  std::vector<Include> includes;
  std::vector<std::unique_ptr<ParamStmt>> params;
  std::vector<std::unique_ptr<AssertStmt>> asserts;
  std::vector<std::unique_ptr<BlockDecl>> blocks;
  std::vector<std::unique_ptr<MappingDecl>> mappings;

  const BlockDecl *findBlock(llvm::StringRef name) const;
  const LayoutDecl *findLayout(llvm::StringRef name) const;
  /// The statement of a mapping or block that starts at `loc`, if any (explain quotes it).
  const Stmt *statementAt(SourceLoc loc) const;
  void dump(llvm::raw_ostream &os) const;
};

void dump(const Expr &expr, llvm::raw_ostream &os);

/// The names `expr` reads that `isBound` does not know, each once, in order of appearance.
/// In a name pattern the one unbound name of an index (`{layers + M}`) is a capture.
std::vector<const NameExpr *> unboundNames(const Expr &expr, llvm::function_ref<bool(llvm::StringRef)> isBound);

/// Whether `expr` is `a * name + b` with a and b free of `name`: `name` appears once, reached
/// only through +, -, * and unary -. Such an index can be solved for `name` when matching.
bool isAffineIn(const Expr &expr, llvm::StringRef name);

} // namespace ckptmap::ast
