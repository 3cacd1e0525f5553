// A whole file mapped (or read) into memory, read-only, shared by everything that views it.
// Kept local to the Megatron-Core readers until runtime/io offers the same.
#pragma once

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <string>

namespace llvm {
class MemoryBuffer;
}

namespace ckptmap::mcore {

class MappedFile {
public:
  /// Maps `path`; the error names the path and the system's reason.
  static llvm::Expected<std::shared_ptr<const MappedFile>> open(const std::string &path);
  ~MappedFile();

  const std::string &path() const { return path_; }
  llvm::ArrayRef<uint8_t> bytes() const;
  uint64_t size() const { return bytes().size(); }

private:
  MappedFile(std::string path, std::unique_ptr<llvm::MemoryBuffer> buffer);
  std::string path_;
  std::unique_ptr<llvm::MemoryBuffer> buffer_;
};

} // namespace ckptmap::mcore
