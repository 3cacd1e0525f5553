// Compiler diagnostics in the style of Clang: "file:line:col: error: message", the source
// line, a caret under the range, then notes. Every phase reports through one engine so that
// all errors of a run come out together, sorted by position.
#pragma once

#include "compiler/diag/SourceManager.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/raw_ostream.h"

#include <string>
#include <vector>

namespace ckptmap {

enum class Severity { Error, Warning, Note };

struct Diagnostic {
  Severity severity = Severity::Error;
  SourceRange range; ///< may be invalid: binding errors about tensors have no rule position
  std::string message;
  std::vector<Diagnostic> notes;

  /// Appends a note and returns *this, so notes chain: diag.error(...).note(...).
  Diagnostic &note(std::string message, SourceRange range = {});
};

class DiagnosticEngine {
public:
  explicit DiagnosticEngine(const SourceManager &sources) : sources_(sources) {}

  Diagnostic &error(SourceRange range, std::string message);
  Diagnostic &warning(SourceRange range, std::string message);

  unsigned errorCount() const;
  unsigned warningCount() const;
  bool hasErrors() const { return errorCount() != 0; }
  llvm::ArrayRef<Diagnostic> diagnostics() const { return diags_; }
  const SourceManager &sources() const { return sources_; }

  /// Prints every diagnostic sorted by position (unlocated ones last, in report order) and a
  /// summary line ("3 errors, 1 warning generated.") when there is anything to say.
  void print(llvm::raw_ostream &os) const;
  std::string render() const;
  /// Drops everything reported so far (a binder that tries alternatives starts clean).
  void clear() { diags_.clear(); }

private:
  void printOne(llvm::raw_ostream &os, const Diagnostic &diag) const;

  const SourceManager &sources_;
  std::vector<Diagnostic> diags_;
};

/// The candidate closest to `name` by edit distance, or empty when none is close enough to
/// be a plausible misspelling.
std::string closestMatch(llvm::StringRef name, llvm::ArrayRef<std::string> candidates);

} // namespace ckptmap
