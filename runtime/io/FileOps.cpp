#include "runtime/io/FileOps.h"

#include "runtime/io/IoError.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Path.h"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace ckptmap {

std::string joinPath(llvm::StringRef dir, const llvm::Twine &name) {
  llvm::SmallString<256> p(dir);
  llvm::sys::path::append(p, name);
  return std::string(p.str());
}

llvm::Error pwriteAll(int fd, llvm::StringRef path, llvm::ArrayRef<uint8_t> bytes,
                      uint64_t offset) {
  const uint8_t *p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = ::pwrite(fd, p, left, off_t(offset));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return systemError(path, "write", errno);
    if (n == 0)
      return systemError(path, "write", ENOSPC); // a zero-byte write only happens when full
    p += n;
    left -= size_t(n);
    offset += uint64_t(n);
  }
  return llvm::Error::success();
}

void WritebackPacer::written(int fd, uint64_t bytes) {
  // Of the writers crossing the threshold together, the one that takes the count starts it.
  if (unflushed_.fetch_add(bytes, std::memory_order_relaxed) + bytes < kBytes ||
      unflushed_.exchange(0, std::memory_order_relaxed) < kBytes)
    return;
#ifdef __linux__
  (void)::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#else
  (void)fd;
#endif
}

llvm::Error allocateFile(int fd, llvm::StringRef path, uint64_t size) {
  if (size == 0)
    return llvm::Error::success();
  int rc;
  do
    rc = ::fallocate(fd, 0, 0, off_t(size));
  while (rc != 0 && errno == EINTR);
  if (rc == 0)
    return llvm::Error::success();
  if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
    return systemError(path, "allocate " + llvm::Twine(size) + " bytes", errno);
  if (::ftruncate(fd, off_t(size)) != 0)
    return systemError(path, "allocate " + llvm::Twine(size) + " bytes", errno);
  return llvm::Error::success();
}

llvm::Error copyRangeAll(int inFd, uint64_t inOffset, int fd, llvm::StringRef path,
                         llvm::ArrayRef<uint8_t> bytes, uint64_t offset) {
  loff_t in = loff_t(inOffset), out = loff_t(offset);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::copy_file_range(inFd, &in, fd, &out, bytes.size() - done, 0);
    if (n < 0 && errno == EINTR)
      continue;
    // Not between these files (another device, an old kernel, a special file): pwrite does.
    if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP ||
                  errno == EBADF || errno == EPERM || errno == ETXTBSY))
      break;
    if (n < 0)
      return systemError(path, "write", errno);
    if (n == 0)
      break; // the input ends early: the bytes in memory say what it held
    done += size_t(n);
  }
  return pwriteAll(fd, path, bytes.drop_front(done), offset + done);
}

namespace {

/// Closes a descriptor on every path out; closeChecked() reports a failing close.
class Fd {
public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  int get() const { return fd_; }
  llvm::Error closeChecked(llvm::StringRef path) {
    int fd = fd_;
    fd_ = -1;
    return ::close(fd) == 0 ? llvm::Error::success() : systemError(path, "close", errno);
  }

private:
  int fd_;
};

llvm::Error syncAndClose(Fd &fd, llvm::StringRef path) {
  if (::fsync(fd.get()) != 0)
    return systemError(path, "sync", errno);
  return fd.closeChecked(path);
}

} // namespace

llvm::Error writeNewFile(llvm::StringRef path, llvm::StringRef contents) {
  std::string p = path.str();
  Fd fd(::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
  if (fd.get() < 0)
    return systemError(path, "create", errno);
  llvm::ArrayRef<uint8_t> bytes(reinterpret_cast<const uint8_t *>(contents.data()),
                                contents.size());
  if (llvm::Error e = pwriteAll(fd.get(), path, bytes, 0))
    return e;
  return syncAndClose(fd, path);
}

llvm::Error copyFile(llvm::StringRef from, llvm::StringRef to) {
  std::string f = from.str(), t = to.str();
  Fd in(::open(f.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0)
    return systemError(from, "read", errno);
  Fd out(::open(t.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
  if (out.get() < 0)
    return systemError(to, "create", errno);
  uint8_t buf[1 << 16];
  uint64_t offset = 0;
  for (;;) {
    ssize_t n = ::read(in.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return systemError(from, "read", errno);
    if (n == 0)
      break;
    if (llvm::Error e = pwriteAll(out.get(), to, {buf, size_t(n)}, offset))
      return e;
    offset += uint64_t(n);
  }
  return syncAndClose(out, to);
}

llvm::Error syncDirectory(llvm::StringRef path) {
  std::string p = path.str();
  int fd = ::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return systemError(path, "open", errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL && err != ENOTSUP)
    return systemError(path, "sync", err);
  return llvm::Error::success();
}

} // namespace ckptmap
