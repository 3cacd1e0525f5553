// A whole file mapped read-only into memory. Tensor views handed out by readers share
// ownership of it, so a mapping outlives the reader if a view is still in use.
#pragma once

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <string>

namespace ckptmap {

class MappedFile {
public:
  /// Maps `path`. An empty file yields an empty view (mmap refuses length 0).
  static llvm::Expected<std::shared_ptr<const MappedFile>> open(llvm::StringRef path);
  ~MappedFile();
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;

  const std::string &path() const { return path_; }
  /// The open file, for copies that go file to file (copy_file_range).
  int fd() const { return fd_; }
  llvm::ArrayRef<uint8_t> bytes() const { return {data_, size_}; }
  /// Unmaps the whole pages within [p, p + n) from this process (MADV_DONTNEED): resident
  /// memory stops growing with what a long conversion has read. The page cache keeps them.
  void release(const uint8_t *p, size_t n) const;
  uint64_t size() const { return size_; }

private:
  MappedFile(std::string path, int fd, const uint8_t *data, size_t size)
      : path_(std::move(path)), fd_(fd), data_(data), size_(size) {}

  std::string path_;
  int fd_;
  const uint8_t *data_;
  size_t size_;
};

} // namespace ckptmap
