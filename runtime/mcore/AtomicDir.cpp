#include "runtime/mcore/AtomicDir.h"

#include "runtime/mcore/Errors.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"

#include <atomic>

namespace ckptmap::mcore {

llvm::Expected<AtomicDir> AtomicDir::create(const std::string &destination) {
  if (llvm::sys::fs::exists(destination))
    return makeError(destination + ": already exists; not overwriting it");
  llvm::SmallString<256> parent(llvm::sys::path::parent_path(destination));
  if (parent.empty())
    parent = ".";
  if (auto ec = llvm::sys::fs::create_directories(parent))
    return makeError(std::string(parent) + ": cannot create: " + ec.message());
  static std::atomic<unsigned> counter{0};
  std::string temp = std::string(parent) + "/." + llvm::sys::path::filename(destination).str() + ".partial-" +
                     std::to_string(llvm::sys::Process::getProcessId()) + "-" + std::to_string(counter++);
  llvm::sys::fs::remove_directories(temp);
  if (auto ec = llvm::sys::fs::create_directory(temp))
    return makeError(temp + ": cannot create: " + ec.message());
  return AtomicDir(destination, temp);
}

AtomicDir::AtomicDir(AtomicDir &&other) noexcept
    : destination_(std::move(other.destination_)), temp_(std::move(other.temp_)), done_(other.done_) {
  other.done_ = true;
}

AtomicDir::~AtomicDir() {
  if (!done_)
    llvm::sys::fs::remove_directories(temp_);
}

llvm::Error AtomicDir::commit() {
  if (done_)
    return makeError(destination_ + ": already committed");
  if (llvm::sys::fs::exists(destination_))
    return makeError(destination_ + ": appeared while writing; not overwriting it");
  if (auto ec = llvm::sys::fs::rename(temp_, destination_))
    return makeError(destination_ + ": cannot rename " + temp_ + " into place: " + ec.message());
  done_ = true;
  return llvm::Error::success();
}

} // namespace ckptmap::mcore
