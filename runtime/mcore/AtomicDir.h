// A directory built under a temporary name beside its destination and renamed into place
// only when complete, so a failed write leaves nothing half-written behind. Minimal local
// version; to be unified with runtime/io's atomic output.
#pragma once

#include "llvm/Support/Error.h"

#include <string>

namespace ckptmap::mcore {

class AtomicDir {
public:
  /// Creates the temporary directory for `destination`, which must not exist yet.
  static llvm::Expected<AtomicDir> create(const std::string &destination);
  AtomicDir(AtomicDir &&other) noexcept;
  AtomicDir &operator=(AtomicDir &&) = delete;
  /// Removes the temporary directory unless committed.
  ~AtomicDir();

  /// Where to write now.
  const std::string &path() const { return temp_; }
  const std::string &destination() const { return destination_; }
  /// Renames the temporary directory to the destination.
  llvm::Error commit();

private:
  AtomicDir(std::string destination, std::string temp) : destination_(std::move(destination)), temp_(std::move(temp)) {}
  std::string destination_, temp_;
  bool done_ = false;
};

} // namespace ckptmap::mcore
