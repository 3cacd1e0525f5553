#include "runtime/io/TensorSource.h"

#include <algorithm>

namespace ckptmap {

TensorSource::~TensorSource() = default;

TensorBytes TensorBytes::owned(std::vector<uint8_t> bytes) {
  auto holder = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  return TensorBytes(holder->data(), holder->size(), holder);
}

const SourceTensor *TensorSource::find(llvm::StringRef name) const {
  llvm::ArrayRef<SourceTensor> all = tensors();
  auto it = std::lower_bound(all.begin(), all.end(), name,
                             [](const SourceTensor &t, llvm::StringRef n) { return t.meta.name < n; });
  return it != all.end() && it->meta.name == name ? &*it : nullptr;
}

} // namespace ckptmap
