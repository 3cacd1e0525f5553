// Semantic check: names, parameters, ops and their arguments, captures, conventions. Turns
// an AST into a CheckedRulebook, the only input the binder accepts.
#pragma once

#include "compiler/ast/AST.h"
#include "compiler/diag/Diagnostics.h"

#include <memory>

namespace ckptmap {

/// The conventions a mapping may relate.
llvm::ArrayRef<std::string> knownConventions();

/// Names every expression can use without declaring them.
llvm::ArrayRef<std::string> builtinFunctions();
llvm::ArrayRef<std::string> builtinNames();

/// A rulebook that passed the semantic check. Only checkRulebook makes one.
class CheckedRulebook {
public:
  const ast::Rulebook &ast() const { return *ast_; }
  const ast::MappingDecl *findMapping(llvm::StringRef from, llvm::StringRef to) const;

private:
  friend std::unique_ptr<CheckedRulebook> checkRulebook(std::unique_ptr<ast::Rulebook>, DiagnosticEngine &);
  explicit CheckedRulebook(std::unique_ptr<ast::Rulebook> ast) : ast_(std::move(ast)) {}
  std::unique_ptr<ast::Rulebook> ast_;
};

/// Reports every problem found to `diags`; returns null when there were errors.
std::unique_ptr<CheckedRulebook> checkRulebook(std::unique_ptr<ast::Rulebook> rulebook,
                                               DiagnosticEngine &diags);

} // namespace ckptmap
