#include "runtime/io/TensorSource.h"

#include "runtime/io/MappedFile.h"

#include <algorithm>

namespace ckptmap {

TensorSource::~TensorSource() = default;

TensorBytes TensorBytes::owned(std::vector<uint8_t> bytes) {
  auto holder = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  return TensorBytes(holder->data(), holder->size(), holder);
}

std::optional<TensorBytes::FileSpan> TensorBytes::fileSpanOf(const uint8_t *p) const {
  if (!file_ || p < data_ || p >= data_ + size_)
    return std::nullopt;
  return FileSpan{file_->fd(), uint64_t(p - file_->bytes().data())};
}

void TensorBytes::release(const uint8_t *p, size_t n) const {
  if (file_ && p >= data_ && p + n <= data_ + size_)
    file_->release(p, n);
}

const SourceTensor *TensorSource::find(llvm::StringRef name) const {
  llvm::ArrayRef<SourceTensor> all = tensors();
  auto it = std::lower_bound(all.begin(), all.end(), name,
                             [](const SourceTensor &t, llvm::StringRef n) { return t.meta.name < n; });
  return it != all.end() && it->meta.name == name ? &*it : nullptr;
}

} // namespace ckptmap
