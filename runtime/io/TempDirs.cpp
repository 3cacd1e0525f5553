#include "runtime/io/TempDirs.h"

#include "runtime/io/IoError.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Path.h"

#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <mutex>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace ckptmap {
namespace {

constexpr int kMaxSlots = 64;
constexpr int kMaxDepth = 16;
enum SlotState : int { kFree = 0, kBusy = 1, kReady = 2 };

/// Plain storage the handler can read without allocating: a path is only read while its
/// slot is kReady, and written only while its slot is kBusy.
struct Slot {
  std::atomic<int> state{kFree};
  char path[PATH_MAX];
};
Slot gSlots[kMaxSlots];
static_assert(std::atomic<int>::is_always_lock_free, "slot states must be signal-safe");

/// The signals that end a run from outside (Ctrl-C, kill, a closed terminal); each removes
/// the partial outputs before the process dies.
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};

/// The kernel's record layout for getdents64 (glibc only wraps it from 2.30 on).
struct LinuxDirent64 {
  uint64_t ino;
  int64_t off;
  unsigned short reclen;
  unsigned char type;
  char name[1]; // really as long as reclen allows, NUL-terminated
};

/// Deletes `name` under `dirFd`, a file or a whole tree. Only async-signal-safe calls.
void unlinkTreeAt(int dirFd, const char *name, int depth) {
  if (::unlinkat(dirFd, name, 0) == 0 || (errno != EISDIR && errno != EPERM))
    return;
  if (depth >= kMaxDepth)
    return;
  int fd = ::openat(dirFd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return;
  alignas(8) char buf[4096];
  // Deleting while listing may skip entries: list again until a pass finds nothing.
  for (int pass = 0; pass < 8; ++pass) {
    bool any = false;
    ::lseek(fd, 0, SEEK_SET);
    for (;;) {
      long n = ::syscall(SYS_getdents64, fd, buf, sizeof buf);
      if (n <= 0)
        break;
      for (long off = 0; off < n;) {
        auto *d = reinterpret_cast<LinuxDirent64 *>(buf + off);
        off += d->reclen;
        if (std::strcmp(d->name, ".") == 0 || std::strcmp(d->name, "..") == 0)
          continue;
        unlinkTreeAt(fd, d->name, depth + 1);
        any = true;
      }
    }
    if (!any)
      break;
  }
  ::close(fd);
  ::unlinkat(dirFd, name, AT_REMOVEDIR);
}

void onTerminate(int signo) {
  for (Slot &slot : gSlots)
    if (slot.state.load(std::memory_order_acquire) == kReady)
      unlinkTreeAt(AT_FDCWD, slot.path, 0);
  ::_exit(128 + signo);
}

void installHandlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (int signo : kSignals) {
      struct sigaction previous {};
      if (::sigaction(signo, nullptr, &previous) != 0)
        continue;
      // A process started to ignore the signal (nohup, background jobs) keeps ignoring it.
      if (!(previous.sa_flags & SA_SIGINFO) && previous.sa_handler == SIG_IGN)
        continue;
      struct sigaction action {};
      action.sa_handler = onTerminate;
      sigemptyset(&action.sa_mask);
      for (int s : kSignals)
        sigaddset(&action.sa_mask, s); // one cleanup at a time
      ::sigaction(signo, &action, nullptr);
    }
  });
}

thread_local int tRemoveErrno = 0;
thread_local char tRemoveFailed[PATH_MAX];

int removeEntry(const char *path, const struct stat *, int type, struct FTW *) {
  int rc = (type == FTW_DP) ? ::rmdir(path) : ::unlink(path);
  if (rc != 0 && errno != ENOENT) {
    tRemoveErrno = errno;
    std::strncpy(tRemoveFailed, path, sizeof tRemoveFailed - 1);
    tRemoveFailed[sizeof tRemoveFailed - 1] = 0;
    return 1;
  }
  return 0;
}

} // namespace

llvm::Expected<TempDirRegistration> TempDirRegistration::add(llvm::StringRef path) {
  if (path.size() >= PATH_MAX)
    return ioError(path + ": path too long");
  installHandlers();
  for (int i = 0; i < kMaxSlots; ++i) {
    int expected = kFree;
    if (!gSlots[i].state.compare_exchange_strong(expected, kBusy))
      continue;
    std::memcpy(gSlots[i].path, path.data(), path.size());
    gSlots[i].path[path.size()] = 0;
    gSlots[i].state.store(kReady, std::memory_order_release);
    return TempDirRegistration(i);
  }
  return ioError(path + ": too many outputs are being written at once (at most " +
                 llvm::Twine(kMaxSlots) + ")");
}

TempDirRegistration &TempDirRegistration::operator=(TempDirRegistration &&other) noexcept {
  if (this != &other) {
    release();
    slot_ = other.slot_;
    other.slot_ = -1;
  }
  return *this;
}

void TempDirRegistration::release() {
  if (slot_ >= 0)
    gSlots[slot_].state.store(kFree, std::memory_order_release);
  slot_ = -1;
}

bool isTempDirRegistered(llvm::StringRef path) {
  for (Slot &slot : gSlots)
    if (slot.state.load(std::memory_order_acquire) == kReady && path == slot.path)
      return true;
  return false;
}

llvm::Error removeTree(llvm::StringRef path) {
  std::string p = path.str();
  struct stat st;
  if (::lstat(p.c_str(), &st) != 0)
    return errno == ENOENT ? llvm::Error::success() : systemError(path, "remove", errno);
  if (!S_ISDIR(st.st_mode))
    return ::unlink(p.c_str()) == 0 || errno == ENOENT ? llvm::Error::success()
                                                       : systemError(path, "remove", errno);
  tRemoveErrno = 0;
  if (::nftw(p.c_str(), removeEntry, 32, FTW_DEPTH | FTW_PHYS) != 0)
    return tRemoveErrno ? systemError(tRemoveFailed, "remove", tRemoveErrno)
                        : systemError(path, "remove", errno);
  return llvm::Error::success();
}

std::string tempDirFor(llvm::StringRef target, long pid) {
  llvm::SmallString<256> p(llvm::sys::path::parent_path(target));
  llvm::sys::path::append(p, "." + llvm::sys::path::filename(target) + ".ckptmap-tmp." +
                                 std::to_string(pid));
  return std::string(p.str());
}

void removeStaleTempDirs(llvm::StringRef target) {
  llvm::StringRef parentRef = llvm::sys::path::parent_path(target);
  std::string parent = parentRef.empty() ? "." : parentRef.str();
  std::string prefix = "." + llvm::sys::path::filename(target).str() + ".ckptmap-tmp.";
  DIR *dir = ::opendir(parent.c_str());
  if (!dir)
    return;
  std::vector<std::string> stale;
  while (struct dirent *e = ::readdir(dir)) {
    llvm::StringRef name(e->d_name);
    if (!name.consume_front(prefix))
      continue;
    long pid = 0;
    if (name.getAsInteger(10, pid) || pid <= 0)
      continue;
    std::string path = tempDirFor(target, pid);
    bool dead = ::kill(pid_t(pid), 0) != 0 && errno == ESRCH;
    // Our own pid: stale unless a writer of this process holds it.
    bool ours = pid == ::getpid() && !isTempDirRegistered(path);
    if (dead || ours)
      stale.push_back(path);
  }
  ::closedir(dir);
  for (const std::string &path : stale)
    llvm::consumeError(removeTree(path)); // best effort: a leftover must not stop a new run
}

} // namespace ckptmap
