// The tensors of the checkpoint being bound, by name: what rules match against, what
// `shape("name")` reads, and where "did you mean" looks for a misspelt name.
#pragma once

#include "compiler/TensorMeta.h"
#include "compiler/diag/Diagnostics.h"

#include "llvm/ADT/StringMap.h"

#include <string>
#include <vector>

namespace ckptmap {

class TensorTable {
public:
  explicit TensorTable(llvm::ArrayRef<TensorMeta> tensors);
  TensorTable(const TensorTable &) = delete;
  TensorTable &operator=(const TensorTable &) = delete;

  const TensorMeta *find(llvm::StringRef name) const {
    auto it = byName_.find(name);
    return it == byName_.end() ? nullptr : it->second;
  }
  bool contains(llvm::StringRef name) const { return byName_.count(name) != 0; }
  /// Every name, sorted.
  llvm::ArrayRef<std::string> names() const { return names_; }
  /// What to say of a name there is no tensor of (NameSuggester::suggestion).
  std::string suggestion(llvm::StringRef name) const { return suggester_.suggestion(name); }

private:
  llvm::StringMap<const TensorMeta *> byName_;
  std::vector<std::string> names_;
  NameSuggester suggester_; ///< over names_, which never changes after construction
};

} // namespace ckptmap
