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
  return std::shared_ptr<const MappedFile>(new MappedFile(std::move(p), fd, data, size));
}

void MappedFile::release(const uint8_t *p, size_t n) const {
  static const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  uintptr_t begin = (uintptr_t(p) + page - 1) & ~(page - 1), end = (uintptr_t(p) + n) & ~(page - 1);
  if (p < data_ || p + n > data_ + size_ || begin >= end)
    return;
  // Advice only: a failure leaves the pages mapped, which is what not asking would do.
  ::madvise(reinterpret_cast<void *>(begin), end - begin, MADV_DONTNEED);
}

MappedFile::~MappedFile() {
  if (data_)
    ::munmap(const_cast<uint8_t *>(data_), size_);
  ::close(fd_);
}

} // namespace ckptmap
