// A rule's two sides as the checker classified them: tensor terms (name patterns and ops over
// terms) with every op argument matched to its parameter.
#pragma once

#include "compiler/ast/AST.h"
#include "compiler/check/Ops.h"

#include <memory>
#include <vector>

namespace ckptmap {

struct Term {
  enum class Kind { Pattern, Op };
  Kind kind = Kind::Pattern;
  SourceRange range;

  // Pattern
  const ast::StringExpr *pattern = nullptr;

  // Op
  const OpInfo *op = nullptr;
  struct Operand {
    std::unique_ptr<Term> term;
    const ast::Expr *size = nullptr; ///< `part : size`
  };
  std::vector<Operand> operands;
  std::vector<const ast::Expr *> params; ///< parallel to op->params; null when not given
  const ast::Argument *binding = nullptr; ///< stack's `VAR in lo .. hi`

  bool isPattern() const { return kind == Kind::Pattern; }
};

struct CheckedRule {
  Term left, right;
};

} // namespace ckptmap
