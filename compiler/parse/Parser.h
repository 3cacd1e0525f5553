// The only door to the generated ANTLR parser: text in, AST and diagnostics out. Nothing
// outside compiler/parse includes ANTLR headers.
#pragma once

#include "compiler/ast/AST.h"
#include "compiler/diag/Diagnostics.h"

#include <memory>

namespace ckptmap {

/// Parses a rulebook file and, recursively, the files it includes (paths relative to the
/// including file). Syntax errors go to `diags`; a file with syntax errors contributes
/// nothing further to the AST. Returns null only when the top file cannot be read.
std::unique_ptr<ast::Rulebook> parseRulebookFile(llvm::StringRef path, SourceManager &sources,
                                                 DiagnosticEngine &diags);

/// The same for text held in memory; `name` is what diagnostics call the file. Includes are
/// resolved relative to the current directory.
std::unique_ptr<ast::Rulebook> parseRulebookText(llvm::StringRef name, std::string text,
                                                 SourceManager &sources, DiagnosticEngine &diags);

} // namespace ckptmap
