// Whole-buffer POSIX file operations that retry short writes and EINTR and report errors as
// "PATH: cannot VERB: reason".
#pragma once

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"

#include <atomic>
#include <cstdint>
#include <string>

namespace ckptmap {

/// `dir/name`, with the platform's separator.
std::string joinPath(llvm::StringRef dir, const llvm::Twine &name);

/// Writes all of `bytes` at `offset` of `fd` (the file `path`).
llvm::Error pwriteAll(int fd, llvm::StringRef path, llvm::ArrayRef<uint8_t> bytes,
                      uint64_t offset);
/// pwriteAll of bytes that also lie at `inOffset` of the file `inFd`: copied inside the kernel
/// (copy_file_range) where the file systems allow, else, or for what is left, from `bytes`.
llvm::Error copyRangeAll(int inFd, uint64_t inOffset, int fd, llvm::StringRef path,
                         llvm::ArrayRef<uint8_t> bytes, uint64_t offset);
/// Sizes a new file. fallocate reserves the blocks, so a full disk shows now rather than
/// after hours of conversion; where the file system cannot, a sparse ftruncate does.
llvm::Error allocateFile(int fd, llvm::StringRef path, uint64_t size);
/// Starts a file's writeback each time 64 MiB more of it is written, so the disk writes while
/// a conversion runs rather than all at its final fsync (with much memory, the kernel's own
/// threshold can exceed a whole output). Linux's sync_file_range, which does not wait; advisory:
/// the final fsync still decides, and reports any error. Writers may call it concurrently.
class WritebackPacer {
public:
  static constexpr uint64_t kBytes = uint64_t(64) << 20;
  void written(int fd, uint64_t bytes);

private:
  std::atomic<uint64_t> unflushed_{0};
};
/// Creates `path` (which must not exist) holding `contents`, synced to disk.
llvm::Error writeNewFile(llvm::StringRef path, llvm::StringRef contents);
/// Copies the file `from` (following symbolic links) to the new file `to`, synced to disk.
llvm::Error copyFile(llvm::StringRef from, llvm::StringRef to);
/// fsync of a directory, so renames and creations in it are durable. File systems that
/// cannot sync directories are not an error.
llvm::Error syncDirectory(llvm::StringRef path);

} // namespace ckptmap
