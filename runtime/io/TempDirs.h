// Temporary output directories and their cleanup, including on SIGINT/SIGTERM/SIGHUP.
//
// A signal may arrive at any instruction, so the handler may only use async-signal-safe
// calls. Rather than set a flag for some thread to poll (a thread blocked in a long write or
// a kernel would delay the exit indefinitely), the handler itself deletes the directories:
// their paths live in a fixed array of C strings guarded by atomic slot states, and the
// deletion uses only open/getdents64/unlinkat (no malloc, no stdio, no nftw, which are not
// signal-safe). Then it exits with 128+signo.
#pragma once

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>

namespace ckptmap {

/// A registered temporary directory; unregisters on destruction. Registering installs the
/// signal handlers once, replacing earlier handlers (the exit status 128+signo is the
/// contract) but not a disposition of SIG_IGN.
class TempDirRegistration {
public:
  static llvm::Expected<TempDirRegistration> add(llvm::StringRef path);
  TempDirRegistration() = default;
  TempDirRegistration(TempDirRegistration &&other) noexcept : slot_(other.slot_) {
    other.slot_ = -1;
  }
  TempDirRegistration &operator=(TempDirRegistration &&other) noexcept;
  ~TempDirRegistration() { release(); }
  void release();

private:
  explicit TempDirRegistration(int slot) : slot_(slot) {}
  int slot_ = -1;
};

/// True if some live registration of this process holds `path`.
bool isTempDirRegistered(llvm::StringRef path);

/// Deletes a directory tree, or a file. A missing path is not an error.
llvm::Error removeTree(llvm::StringRef path);

/// Name of the temporary directory beside `target` for process `pid`:
/// "<parent>/.<name>.ckptmap-tmp.<pid>".
std::string tempDirFor(llvm::StringRef target, long pid);

/// Deletes temporary directories of `target` left by processes that no longer run.
void removeStaleTempDirs(llvm::StringRef target);

} // namespace ckptmap
