#include "runtime/io/MappedFile.h"

#include "runtime/io/IoError.h"

#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ckptmap {

llvm::Expected<std::shared_ptr<const MappedFile>> MappedFile::open(llvm::StringRef path) {
  std::string p = path.str();
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return systemError(path, "open", errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return systemError(path, "stat", err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return ioError(path + ": not a regular file");
  }
  size_t size = size_t(st.st_size);
  const uint8_t *data = nullptr;
  if (size > 0) {
    void *m = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return systemError(path, "map", err);
    }
    data = static_cast<const uint8_t *>(m);
  }
  // The mapping keeps the file referenced; the descriptor is no longer needed.
  ::close(fd);
  return std::shared_ptr<const MappedFile>(new MappedFile(std::move(p), data, size));
}

MappedFile::~MappedFile() {
  if (data_)
    ::munmap(const_cast<uint8_t *>(data_), size_);
}

} // namespace ckptmap
