// A checkpoint opened for reading: a set of named tensors whose bytes can be fetched one at a
// time. Safetensors files, torch_dist directories and legacy per-rank files all present
// themselves through this interface, so the interpreter never knows which it reads.
#pragma once

#include "compiler/TensorMeta.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ckptmap {

class MappedFile;

/// Bytes of one tensor. Either a view into a mapping kept alive by `owner`, or an owned
/// buffer; readers of it never care which.
class TensorBytes {
public:
  TensorBytes() = default;
  TensorBytes(const uint8_t *data, size_t size, std::shared_ptr<const void> owner)
      : data_(data), size_(size), owner_(std::move(owner)) {}
  /// Takes ownership of a heap buffer.
  static TensorBytes owned(std::vector<uint8_t> bytes);

  const uint8_t *data() const { return data_; }
  size_t size() const { return size_; }
  llvm::ArrayRef<uint8_t> bytes() const { return {data_, size_}; }

  /// Where a view's bytes also lie in an open file, so a writer can copy them file to file.
  struct FileSpan {
    int fd = -1;
    uint64_t offset = 0;
  };
  /// Marks this as a view into `file`'s mapping (which `owner` keeps alive).
  TensorBytes &inFile(const MappedFile &file) {
    file_ = &file;
    return *this;
  }
  /// The file position of `p` (a byte of this view), when the view is of a mapped file.
  std::optional<FileSpan> fileSpanOf(const uint8_t *p) const;
  /// Drops the whole pages within [p, p + n) from this process's memory when the view is of
  /// a mapped file; they stay in the page cache and fault back in if read again. A no-op
  /// for owned bytes.
  void release(const uint8_t *p, size_t n) const;

private:
  const uint8_t *data_ = nullptr;
  size_t size_ = 0;
  std::shared_ptr<const void> owner_;
  const MappedFile *file_ = nullptr;
};

/// A tensor as a source lists it: its metadata and where it lives, for error messages.
struct SourceTensor {
  TensorMeta meta;
  std::string file; ///< file (relative to the checkpoint root) holding its bytes
};

class TensorSource {
public:
  virtual ~TensorSource();

  /// Directory holding config.json and the other non-tensor files of the checkpoint.
  virtual const std::string &root() const = 0;
  /// Every tensor, sorted by name.
  virtual llvm::ArrayRef<SourceTensor> tensors() const = 0;
  /// nullptr when absent.
  const SourceTensor *find(llvm::StringRef name) const;
  /// Fetches the bytes of one tensor listed by tensors(). Safe to call from several threads.
  virtual llvm::Expected<TensorBytes> read(const SourceTensor &tensor) const = 0;
};

} // namespace ckptmap
