#include "runtime/io/OutputDir.h"

#include "runtime/io/CarriedFiles.h"
#include "runtime/io/FileOps.h"
#include "runtime/io/IoError.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ckptmap {
namespace {

bool pathExists(const std::string &path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::string parentOf(llvm::StringRef path) {
  llvm::StringRef parent = llvm::sys::path::parent_path(path);
  return parent.empty() ? "." : parent.str();
}

llvm::Error existsError(llvm::StringRef out) {
  return ioError(out + ": already exists; use --force to replace it");
}

/// Deletes the output that a new one replaced; the new one is complete either way.
llvm::Error removeReplaced(llvm::StringRef out, llvm::StringRef old) {
  if (llvm::Error e = removeTree(old))
    return ioError(out + ": the new output is in place, but the replaced one was not removed: " +
                   llvm::toString(std::move(e)));
  return llvm::Error::success();
}

} // namespace

llvm::Expected<std::unique_ptr<OutputDir>> OutputDir::create(llvm::StringRef destination, Options options) {
  if (destination.empty())
    return ioError("no output directory given");
  std::unique_ptr<OutputDir> d(new OutputDir());
  llvm::SmallString<256> out(destination);
  llvm::sys::fs::make_absolute(out);
  llvm::sys::path::remove_dots(out, /*remove_dot_dot=*/true);
  while (out.size() > 1 && out.back() == '/')
    out.pop_back();
  d->destination_ = std::string(out.str());
  d->options_ = std::move(options);

  if (pathExists(d->destination_) && !d->options_.force)
    return existsError(d->destination_);
  if (!d->options_.copyFilesFrom.empty()) {
    struct stat st;
    if (::stat(d->options_.copyFilesFrom.c_str(), &st) != 0)
      return systemError(d->options_.copyFilesFrom, "open", errno);
    if (!S_ISDIR(st.st_mode))
      return ioError(d->options_.copyFilesFrom + ": not a directory");
  }
  std::string parent = parentOf(d->destination_);
  std::string name = llvm::sys::path::filename(d->destination_).str();
  struct stat parentStat;
  if (::stat(parent.c_str(), &parentStat) == 0 && !S_ISDIR(parentStat.st_mode))
    return systemError(parent, "create '" + name + "' in it", ENOTDIR); // access() would say EACCES
  if (::access(parent.c_str(), W_OK | X_OK) != 0)
    return systemError(parent, "create '" + name + "' in it", errno);

  const OutputShare &share = d->options_.share;
  removeStaleTempDirs(d->destination_);
  // The processes of a shared output meet in a directory named by their launch.
  std::string temp = share.active() ? joinPath(parent, "." + name + ".ckptmap-part." + share.launch)
                                    : tempDirFor(d->destination_, ::getpid());
  if (isTempDirRegistered(temp))
    return ioError(d->destination_ + ": already being written by this process");
  llvm::Expected<TempDirRegistration> reg = TempDirRegistration::add(temp);
  if (!reg)
    return reg.takeError();
  // Registered before it exists, so no signal can fall between creation and registration.
  d->registration_ = std::move(*reg);
  if (::mkdir(temp.c_str(), 0777) != 0 && !(share.active() && errno == EEXIST))
    return systemError(temp, "create directory", errno);
  d->temp_ = temp; // from here on, destruction removes it
  if (share.active() && pathExists(d->markerOf(share.index)))
    return ioError(temp + ": holds what an earlier launch of share " + std::to_string(share.index) + " of " +
                   std::to_string(share.count) + " wrote; remove it, or launch again under a new name");
  return d;
}

OutputDir::~OutputDir() {
  if (!committed_ && !temp_.empty())
    llvm::consumeError(removeTree(temp_)); // nothing better to do in a destructor
  registration_.release();
}

void OutputDir::addFile(std::string name, std::string contents) { files_[std::move(name)] = std::move(contents); }

llvm::Error OutputDir::writeSideFiles(llvm::function_ref<bool(llvm::StringRef)> reserved) {
  for (const auto &[name, contents] : files_) {
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
      return ioError(destination_ + ": cannot add file '" + name + "': not a plain file name");
    if (reserved(name))
      return ioError(destination_ + ": cannot add file '" + name + "': the checkpoint writer writes it");
  }
  std::string dir = options_.filesSubdir.empty() ? temp_ : joinPath(temp_, options_.filesSubdir);
  if (!options_.copyFilesFrom.empty()) {
    llvm::Expected<std::vector<std::string>> carried = listCarriedFiles(options_.copyFilesFrom);
    if (!carried)
      return carried.takeError();
    for (const std::string &name : *carried)
      if (!files_.count(name) && !reserved(name))
        if (llvm::Error e = copyFile(joinPath(options_.copyFilesFrom, name), joinPath(dir, name)))
          return e;
  }
  for (const auto &[name, contents] : files_)
    if (llvm::Error e = writeNewFile(joinPath(dir, name), contents))
      return e;
  return syncDirectory(dir);
}

llvm::Error OutputDir::moveIntoPlace() {
  bool exists = pathExists(destination_);
  if (exists && !options_.force)
    return existsError(destination_);
  if (!exists) {
    if (::rename(temp_.c_str(), destination_.c_str()) == 0)
      return llvm::Error::success();
    if ((errno == EEXIST || errno == ENOTEMPTY) && !options_.force)
      return existsError(destination_); // created by someone else meanwhile
    if (errno != EEXIST && errno != ENOTEMPTY)
      return systemError(destination_, "move the output into place", errno);
  }
  // Replace: swap atomically where the kernel can, so the target never goes missing; the
  // temporary name then holds the old output, which is deleted.
  if (::renameat2(AT_FDCWD, temp_.c_str(), AT_FDCWD, destination_.c_str(), RENAME_EXCHANGE) == 0)
    return removeReplaced(destination_, temp_);
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
    return systemError(destination_, "replace the existing output", errno);
  std::string aside = joinPath(parentOf(destination_), "." + llvm::sys::path::filename(destination_).str() +
                                                           ".ckptmap-old." + std::to_string(::getpid()));
  if (::rename(destination_.c_str(), aside.c_str()) != 0)
    return systemError(destination_, "move the existing output aside", errno);
  if (::rename(temp_.c_str(), destination_.c_str()) != 0) {
    int err = errno;
    ::rename(aside.c_str(), destination_.c_str()); // put the old output back
    return systemError(destination_, "move the output into place", err);
  }
  return removeReplaced(destination_, aside);
}

std::string OutputDir::markerOf(unsigned share) const {
  return joinPath(temp_, ".share-" + std::to_string(share) + "-of-" + std::to_string(options_.share.count) + ".done");
}

llvm::Error OutputDir::shareDone() {
  if (llvm::Error e = syncDirectory(temp_))
    return e;
  if (llvm::Error e = writeNewFile(markerOf(options_.share.index), ""))
    return e;
  committed_ = true; // the finishing share owns the directory now
  registration_.release();
  return llvm::Error::success();
}

llvm::Error OutputDir::awaitShares() {
  const unsigned count = options_.share.count;
  auto start = std::chrono::steady_clock::now();
  bool said = false;
  for (unsigned s = 1; s < count; ++s) {
    while (!pathExists(markerOf(s))) {
      // A share that fails removes the directory (as its signal handler would).
      if (!pathExists(temp_))
        return ioError(destination_ + ": another share failed (its temporary output " + temp_ + " is gone)");
      // A launcher ends every rank when one fails; shares started by hand may never come.
      if (!said && std::chrono::steady_clock::now() - start > std::chrono::seconds(30)) {
        llvm::errs() << "ckptmap: " << destination_ << ": waiting for share " << s << " of " << count
                     << " to finish (each share runs `ckptmap run ... --partition I/" << count << "`)\n";
        said = true;
      }
      ::usleep(20'000);
    }
  }
  for (unsigned s = 1; s < count; ++s)
    if (::unlink(markerOf(s).c_str()) != 0)
      return systemError(markerOf(s), "remove", errno);
  return llvm::Error::success();
}

llvm::Error OutputDir::commit(llvm::function_ref<bool(llvm::StringRef)> reserved) {
  if (committed_)
    return ioError(destination_ + ": committed twice");
  if (options_.share.active())
    if (llvm::Error e = awaitShares())
      return e;
  if (llvm::Error e = writeSideFiles(reserved))
    return e;
  if (llvm::Error e = syncDirectory(temp_))
    return e;
  if (llvm::Error e = moveIntoPlace())
    return e;
  committed_ = true;
  registration_.release();
  return syncDirectory(parentOf(destination_));
}

} // namespace ckptmap
