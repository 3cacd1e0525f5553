#include "compiler/bind/TensorTable.h"

#include <algorithm>

namespace ckptmap {

static std::vector<std::string> sortedNames(llvm::ArrayRef<TensorMeta> tensors) {
  std::vector<std::string> names;
  names.reserve(tensors.size());
  for (const TensorMeta &t : tensors)
    names.push_back(t.name);
  std::sort(names.begin(), names.end());
  return names;
}

TensorTable::TensorTable(llvm::ArrayRef<TensorMeta> tensors) : names_(sortedNames(tensors)), suggester_(names_) {
  for (const TensorMeta &t : tensors)
    byName_[t.name] = &t;
}

} // namespace ckptmap
