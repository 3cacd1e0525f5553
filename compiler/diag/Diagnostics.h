// Compiler diagnostics in the style of Clang: "file:line:col: error: message", the source
// line, a caret under the range, then notes. Every phase reports through one engine so that
// all errors of a run come out together, sorted by position.
#pragma once

#include "compiler/diag/SourceManager.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/raw_ostream.h"

#include <nlohmann/json.hpp>

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
  /// The diagnostics in print's order, as JSON: [{"severity", "location", "message",
  /// "notes": [...]}] ("location" only where there is one).
  nlohmann::json toJson() const;
  /// Drops everything reported so far (a binder that tries alternatives starts clean).
  void clear() { diags_.clear(); }

private:
  void printOne(llvm::raw_ostream &os, const Diagnostic &diag) const;
  /// Indexes of diags_ sorted by position, unlocated ones last in report order.
  std::vector<size_t> order() const;

  const SourceManager &sources_;
  std::vector<Diagnostic> diags_;
};

/// The candidate closest to `name` by edit distance, or empty when none is close enough to
/// be a plausible misspelling.
std::string closestMatch(llvm::StringRef name, llvm::ArrayRef<std::string> candidates);

/// "model.layers.{N}.mlp.experts.{N}.up_proj.weight": a tensor name with its numbers
/// abstracted, which gathers the tensors of every layer and expert under one pattern.
std::string numberPattern(llvm::StringRef name);

/// closestMatch over the tensor names of a checkpoint, quick on a hundred thousand of them:
/// the closest pattern of names first (numberPattern), then the closest name of that pattern.
/// The index is built on the first question, since only errors ask.
class NameSuggester {
public:
  /// `names` must outlive the suggester.
  explicit NameSuggester(llvm::ArrayRef<std::string> names) : names_(names) {}
  std::string closest(llvm::StringRef name) const;
  /// A note on a name there is none of: "did you mean 'x'?", or where only the numbers
  /// differ (a layer the config counts but the checkpoint lacks) "the checkpoint has
  /// 'pattern' only with other numbers, e.g. 'x'"; empty when nothing is close.
  std::string suggestion(llvm::StringRef name) const;

private:
  llvm::ArrayRef<std::string> names_;
  mutable std::vector<std::string> patterns_;
  mutable llvm::StringMap<std::vector<std::string>> byPattern_;
};

} // namespace ckptmap
