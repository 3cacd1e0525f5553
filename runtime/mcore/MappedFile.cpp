#include "runtime/mcore/MappedFile.h"

#include "runtime/mcore/Errors.h"

#include "llvm/Support/MemoryBuffer.h"

namespace ckptmap::mcore {

MappedFile::MappedFile(std::string path, std::unique_ptr<llvm::MemoryBuffer> buffer)
    : path_(std::move(path)), buffer_(std::move(buffer)) {}

MappedFile::~MappedFile() = default;

llvm::Expected<std::shared_ptr<const MappedFile>> MappedFile::open(const std::string &path) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!buffer)
    return makeError(path + ": cannot open: " + buffer.getError().message());
  return std::shared_ptr<const MappedFile>(new MappedFile(path, std::move(*buffer)));
}

llvm::ArrayRef<uint8_t> MappedFile::bytes() const {
  return {reinterpret_cast<const uint8_t *>(buffer_->getBufferStart()), buffer_->getBufferSize()};
}

} // namespace ckptmap::mcore
