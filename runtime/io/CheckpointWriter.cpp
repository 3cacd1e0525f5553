#include "runtime/io/CheckpointWriter.h"

#include "runtime/io/CarriedFiles.h"
#include "runtime/io/FileOps.h"
#include "runtime/io/IoError.h"
#include "runtime/io/Safetensors.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ckptmap {
namespace {

std::string joinPath(llvm::StringRef dir, llvm::StringRef name) {
  llvm::SmallString<256> p(dir);
  llvm::sys::path::append(p, name);
  return std::string(p.str());
}

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

/// Sizes a new shard file. fallocate reserves the blocks, so a full disk shows now rather
/// than after hours of conversion; where the file system cannot, a sparse ftruncate does.
llvm::Error allocate(int fd, llvm::StringRef path, uint64_t size) {
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

/// Deletes the output that a new one replaced; the new one is complete either way.
llvm::Error removeReplaced(llvm::StringRef out, llvm::StringRef old) {
  if (llvm::Error e = removeTree(old))
    return ioError(out + ": the new output is in place, but the replaced one was not removed: " +
                   llvm::toString(std::move(e)));
  return llvm::Error::success();
}

} // namespace

uint64_t CheckpointWriter::Progress::covered() const {
  uint64_t n = 0;
  for (const auto &[b, e] : ranges)
    n += e - b;
  return n;
}

llvm::Expected<std::unique_ptr<CheckpointWriter>> CheckpointWriter::create(
    std::vector<TensorMeta> tensors, WriteOptions options) {
  if (options.outDir.empty())
    return ioError("no output directory given");
  llvm::Expected<ShardLayout> layout =
      ShardLayout::plan(std::move(tensors), options.maxShardSize, options.metadata);
  if (!layout)
    return layout.takeError();

  std::unique_ptr<CheckpointWriter> w(new CheckpointWriter());
  llvm::SmallString<256> out(options.outDir);
  llvm::sys::fs::make_absolute(out);
  llvm::sys::path::remove_dots(out, /*remove_dot_dot=*/true);
  while (out.size() > 1 && out.back() == '/')
    out.pop_back();
  w->outDir_ = std::string(out.str());
  w->options_ = std::move(options);
  w->layout_ = std::move(*layout);
  w->progress_.resize(w->layout_.tensors.size());

  if (pathExists(w->outDir_) && !w->options_.force)
    return existsError(w->outDir_);
  if (!w->options_.copyFilesFrom.empty()) {
    struct stat st;
    if (::stat(w->options_.copyFilesFrom.c_str(), &st) != 0)
      return systemError(w->options_.copyFilesFrom, "open", errno);
    if (!S_ISDIR(st.st_mode))
      return ioError(w->options_.copyFilesFrom + ": not a directory");
  }
  std::string parent = parentOf(w->outDir_);
  std::string name = llvm::sys::path::filename(w->outDir_).str();
  struct stat parentStat;
  if (::stat(parent.c_str(), &parentStat) == 0 && !S_ISDIR(parentStat.st_mode))
    return systemError(parent, "create '" + name + "' in it", ENOTDIR); // access() would say EACCES
  if (::access(parent.c_str(), W_OK | X_OK) != 0)
    return systemError(parent, "create '" + name + "' in it", errno);

  removeStaleTempDirs(w->outDir_);
  std::string temp = tempDirFor(w->outDir_, ::getpid());
  if (isTempDirRegistered(temp))
    return ioError(w->outDir_ + ": already being written by this process");
  llvm::Expected<TempDirRegistration> reg = TempDirRegistration::add(temp);
  if (!reg)
    return reg.takeError();
  // Registered before it exists, so no signal can fall between creation and registration.
  w->registration_ = std::move(*reg);
  if (::mkdir(temp.c_str(), 0777) != 0)
    return systemError(temp, "create directory", errno);
  w->tempDir_ = temp; // from here on, destruction removes it
  if (llvm::Error e = w->createFiles())
    return e;
  return w;
}

llvm::Error CheckpointWriter::createFiles() {
  for (const ShardPlan &shard : layout_.shards) {
    std::string path = joinPath(tempDir_, shard.fileName);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0)
      return systemError(path, "create", errno);
    fds_.push_back(fd);
    if (llvm::Error e = allocate(fd, path, shard.fileSize))
      return e;
    llvm::ArrayRef<uint8_t> header(reinterpret_cast<const uint8_t *>(shard.header.data()),
                                   shard.header.size());
    if (llvm::Error e = pwriteAll(fd, path, header, 0))
      return e;
  }
  return llvm::Error::success();
}

CheckpointWriter::~CheckpointWriter() {
  if (!finished_)
    discard();
}

void CheckpointWriter::discard() {
  for (int fd : fds_)
    if (fd >= 0)
      ::close(fd);
  fds_.clear();
  if (!tempDir_.empty())
    llvm::consumeError(removeTree(tempDir_)); // nothing better to do in a destructor
  registration_.release();
}

llvm::Error CheckpointWriter::write(size_t tensorIndex, llvm::ArrayRef<uint8_t> bytes) {
  if (tensorIndex < layout_.tensors.size() &&
      bytes.size() != layout_.placements[tensorIndex].size)
    return ioError(outDir_ + ": tensor '" + layout_.tensors[tensorIndex].name + "': got " +
                   llvm::Twine(bytes.size()) + " bytes but its layout needs " +
                   llvm::Twine(layout_.placements[tensorIndex].size));
  return writePart(tensorIndex, 0, bytes);
}

llvm::Error CheckpointWriter::writePart(size_t tensorIndex, uint64_t offset,
                                        llvm::ArrayRef<uint8_t> bytes,
                                        std::optional<TensorBytes::FileSpan> from) {
  if (tensorIndex >= layout_.tensors.size())
    return ioError(outDir_ + ": tensor index " + llvm::Twine(tensorIndex) +
                   " is out of range (the layout has " + llvm::Twine(layout_.tensors.size()) +
                   " tensors)");
  const TensorMeta &meta = layout_.tensors[tensorIndex];
  const TensorPlacement &place = layout_.placements[tensorIndex];
  uint64_t end = offset + bytes.size();
  auto range = [&] {
    return "bytes [" + std::to_string(offset) + ", " + std::to_string(end) + ")";
  };
  if (end < offset || end > place.size)
    return ioError(outDir_ + ": tensor '" + meta.name + "': " + range() +
                   " fall outside its " + llvm::Twine(place.size) + " bytes");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (finished_)
      return ioError(outDir_ + ": tensor '" + meta.name + "' written after finish()");
    Progress &p = progress_[tensorIndex];
    bool whole = offset == 0 && bytes.size() == place.size;
    if (p.touched && (whole || (offset == end && place.size == 0)))
      return ioError(outDir_ + ": tensor '" + meta.name + "' is written twice");
    for (const auto &[b, e] : p.ranges)
      if (b < end && offset < e)
        return ioError(outDir_ + ": tensor '" + meta.name + "': " + range() +
                       " overlap bytes already written");
    p.touched = true;
    if (offset != end)
      p.ranges.insert(std::upper_bound(p.ranges.begin(), p.ranges.end(),
                                       std::make_pair(offset, end)),
                      {offset, end});
  }
  const ShardPlan &shard = layout_.shards[place.shard];
  std::string path = joinPath(tempDir_, shard.fileName);
  uint64_t at = place.offset + offset;
  if (llvm::Error e = from ? copyRangeAll(from->fd, from->offset, fds_[place.shard], path, bytes, at)
                           : pwriteAll(fds_[place.shard], path, bytes, at)) {
    // Give the range back so finish() reports the tensor as missing, not as written.
    std::lock_guard<std::mutex> lock(mutex_);
    auto &ranges = progress_[tensorIndex].ranges;
    ranges.erase(std::remove(ranges.begin(), ranges.end(), std::make_pair(offset, end)),
                 ranges.end());
    return e;
  }
  return llvm::Error::success();
}

void CheckpointWriter::addFile(std::string name, std::string contents) {
  extraFiles_[std::move(name)] = std::move(contents);
}

llvm::Error CheckpointWriter::checkComplete() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<llvm::StringRef> missing;
  for (size_t i = 0; i < progress_.size(); ++i)
    if (!progress_[i].touched || progress_[i].covered() != layout_.placements[i].size)
      missing.push_back(layout_.tensors[i].name);
  if (missing.empty())
    return llvm::Error::success();
  constexpr size_t kShown = 10;
  std::string list;
  for (size_t i = 0; i < missing.size() && i < kShown; ++i)
    list += (i ? ", '" : "'") + missing[i].str() + "'";
  if (missing.size() > kShown)
    list += ", and " + std::to_string(missing.size() - kShown) + " more";
  return ioError(outDir_ + ": " + llvm::Twine(missing.size()) + " of " +
                 llvm::Twine(progress_.size()) + " tensors were not written: " + list);
}

llvm::Error CheckpointWriter::writeExtraFiles() {
  auto ownName = [&](llvm::StringRef name) {
    if (name == kIndexFileName)
      return true;
    for (const ShardPlan &s : layout_.shards)
      if (s.fileName == name)
        return true;
    return false;
  };
  for (const auto &[name, contents] : extraFiles_) {
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
      return ioError(outDir_ + ": cannot add file '" + name + "': not a plain file name");
    if (ownName(name))
      return ioError(outDir_ + ": cannot add file '" + name +
                     "': the checkpoint writer writes it");
  }
  if (!options_.copyFilesFrom.empty()) {
    llvm::Expected<std::vector<std::string>> carried = listCarriedFiles(options_.copyFilesFrom);
    if (!carried)
      return carried.takeError();
    for (const std::string &name : *carried)
      if (!extraFiles_.count(name) && !ownName(name))
        if (llvm::Error e = copyFile(joinPath(options_.copyFilesFrom, name),
                                     joinPath(tempDir_, name)))
          return e;
  }
  for (const auto &[name, contents] : extraFiles_)
    if (llvm::Error e = writeNewFile(joinPath(tempDir_, name), contents))
      return e;
  return llvm::Error::success();
}

llvm::Error CheckpointWriter::moveIntoPlace() {
  bool exists = pathExists(outDir_);
  if (exists && !options_.force)
    return existsError(outDir_);
  if (!exists) {
    if (::rename(tempDir_.c_str(), outDir_.c_str()) == 0)
      return llvm::Error::success();
    if ((errno == EEXIST || errno == ENOTEMPTY) && !options_.force)
      return existsError(outDir_); // created by someone else meanwhile
    if (errno != EEXIST && errno != ENOTEMPTY)
      return systemError(outDir_, "move the output into place", errno);
  }
  // Replace: swap atomically where the kernel can, so the target never goes missing; the
  // temporary name then holds the old output, which is deleted.
  if (::renameat2(AT_FDCWD, tempDir_.c_str(), AT_FDCWD, outDir_.c_str(), RENAME_EXCHANGE) == 0)
    return removeReplaced(outDir_, tempDir_);
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
    return systemError(outDir_, "replace the existing output", errno);
  std::string aside = joinPath(parentOf(outDir_), "." + llvm::sys::path::filename(outDir_).str() +
                                                      ".ckptmap-old." + std::to_string(::getpid()));
  if (::rename(outDir_.c_str(), aside.c_str()) != 0)
    return systemError(outDir_, "move the existing output aside", errno);
  if (::rename(tempDir_.c_str(), outDir_.c_str()) != 0) {
    int err = errno;
    ::rename(aside.c_str(), outDir_.c_str()); // put the old output back
    return systemError(outDir_, "move the output into place", err);
  }
  return removeReplaced(outDir_, aside);
}

llvm::Error CheckpointWriter::finish() {
  if (finished_)
    return ioError(outDir_ + ": finish() called twice");
  if (llvm::Error e = checkComplete())
    return e;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    finished_ = true; // later writes are refused; the files are about to be closed
  }
  auto failed = [this](llvm::Error e) {
    finished_ = false; // the destructor then removes the temporary directory
    return e;
  };
  for (size_t s = 0; s < fds_.size(); ++s) {
    std::string path = joinPath(tempDir_, layout_.shards[s].fileName);
    int fd = fds_[s];
    fds_[s] = -1;
    if (::fsync(fd) != 0) {
      int err = errno;
      ::close(fd);
      return failed(systemError(path, "sync", err));
    }
    if (::close(fd) != 0)
      return failed(systemError(path, "close", errno));
  }
  fds_.clear();
  if (layout_.shards.size() > 1)
    if (llvm::Error e = writeNewFile(joinPath(tempDir_, kIndexFileName), layout_.indexJson()))
      return failed(std::move(e));
  if (llvm::Error e = writeExtraFiles())
    return failed(std::move(e));
  if (llvm::Error e = syncDirectory(tempDir_))
    return failed(std::move(e));
  if (llvm::Error e = moveIntoPlace())
    return failed(std::move(e));
  registration_.release();
  return syncDirectory(parentOf(outDir_));
}

} // namespace ckptmap
