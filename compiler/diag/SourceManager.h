// Owns the text of every rulebook file read, so diagnostics can quote source lines.
#pragma once

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ckptmap {

/// A position in a rulebook file. Line and column are 1-based; file 0 is "no location".
struct SourceLoc {
  uint32_t file = 0;
  uint32_t line = 0;
  uint32_t col = 0;

  bool valid() const { return file != 0; }
  friend bool operator<(const SourceLoc &a, const SourceLoc &b) {
    if (a.file != b.file) return a.file < b.file;
    if (a.line != b.line) return a.line < b.line;
    return a.col < b.col;
  }
  friend bool operator==(const SourceLoc &a, const SourceLoc &b) {
    return a.file == b.file && a.line == b.line && a.col == b.col;
  }
};

/// A range within one line (or starting on one line): where the caret and tildes go.
struct SourceRange {
  SourceLoc begin;
  uint32_t length = 1; ///< in characters, on begin's line

  bool valid() const { return begin.valid(); }
};

class SourceManager {
public:
  /// Reads a file; the error names the path.
  llvm::Expected<uint32_t> load(llvm::StringRef path);
  /// Adds in-memory text under a display name (tests, stdin).
  uint32_t add(std::string name, std::string text);

  llvm::StringRef name(uint32_t file) const { return files_[file - 1]->name; }
  llvm::StringRef text(uint32_t file) const { return files_[file - 1]->text; }
  /// The text of one line without its newline; empty when out of range.
  llvm::StringRef line(uint32_t file, uint32_t line) const;
  /// "path:line:col"
  std::string format(SourceLoc loc) const;
  /// Reads back what format() wrote; invalid when the file was never loaded.
  SourceLoc parse(llvm::StringRef text) const;

private:
  struct File {
    std::string name;
    std::string text;
    std::vector<uint32_t> lineStarts;
  };
  std::vector<std::unique_ptr<File>> files_;
};

} // namespace ckptmap
