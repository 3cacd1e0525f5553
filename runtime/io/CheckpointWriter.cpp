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
  llvm::Expected<std::unique_ptr<OutputDir>> dir =
      OutputDir::create(options.outDir, OutputDir::Options{options.force, options.copyFilesFrom, "", options.share});
  if (!dir)
    return dir.takeError();
  w->dir_ = std::move(*dir);
  w->options_ = std::move(options);
  w->layout_ = std::move(*layout);
  w->progress_.resize(w->layout_.tensors.size());
  if (llvm::Error e = w->createFiles())
    return e;
  return w;
}

llvm::Error CheckpointWriter::createFiles() {
  pacers_ = std::make_unique<WritebackPacer[]>(layout_.shards.size());
  for (const ShardPlan &shard : layout_.shards) {
    std::string path = joinPath(tempDir(), shard.fileName);
    // The shares of one output open the same files, and write the same header.
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | (options_.share.active() ? 0 : O_EXCL) | O_CLOEXEC, 0666);
    if (fd < 0)
      return systemError(path, "create", errno);
    fds_.push_back(fd);
    if (llvm::Error e = allocateFile(fd, path, shard.fileSize))
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
  dir_.reset(); // removes the temporary directory
}

llvm::Error CheckpointWriter::write(size_t tensorIndex, llvm::ArrayRef<uint8_t> bytes) {
  if (tensorIndex < layout_.tensors.size() &&
      bytes.size() != layout_.placements[tensorIndex].size)
    return ioError(outDir() + ": tensor '" + layout_.tensors[tensorIndex].name + "': got " +
                   llvm::Twine(bytes.size()) + " bytes but its layout needs " +
                   llvm::Twine(layout_.placements[tensorIndex].size));
  return writePart(tensorIndex, 0, bytes);
}

llvm::Error CheckpointWriter::writePart(size_t tensorIndex, uint64_t offset,
                                        llvm::ArrayRef<uint8_t> bytes,
                                        std::optional<TensorBytes::FileSpan> from) {
  if (tensorIndex >= layout_.tensors.size())
    return ioError(outDir() + ": tensor index " + llvm::Twine(tensorIndex) +
                   " is out of range (the layout has " + llvm::Twine(layout_.tensors.size()) +
                   " tensors)");
  const TensorMeta &meta = layout_.tensors[tensorIndex];
  const TensorPlacement &place = layout_.placements[tensorIndex];
  uint64_t end = offset + bytes.size();
  auto range = [&] {
    return "bytes [" + std::to_string(offset) + ", " + std::to_string(end) + ")";
  };
  if (end < offset || end > place.size)
    return ioError(outDir() + ": tensor '" + meta.name + "': " + range() +
                   " fall outside its " + llvm::Twine(place.size) + " bytes");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (finished_)
      return ioError(outDir() + ": tensor '" + meta.name + "' written after finish()");
    Progress &p = progress_[tensorIndex];
    bool whole = offset == 0 && bytes.size() == place.size;
    if (p.touched && (whole || (offset == end && place.size == 0)))
      return ioError(outDir() + ": tensor '" + meta.name + "' is written twice");
    for (const auto &[b, e] : p.ranges)
      if (b < end && offset < e)
        return ioError(outDir() + ": tensor '" + meta.name + "': " + range() +
                       " overlap bytes already written");
    p.touched = true;
    if (offset != end)
      p.ranges.insert(std::upper_bound(p.ranges.begin(), p.ranges.end(),
                                       std::make_pair(offset, end)),
                      {offset, end});
  }
  const ShardPlan &shard = layout_.shards[place.shard];
  std::string path = joinPath(tempDir(), shard.fileName);
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
  pacers_[place.shard].written(fds_[place.shard], bytes.size());
  return llvm::Error::success();
}

void CheckpointWriter::addFile(std::string name, std::string contents) {
  dir_->addFile(std::move(name), std::move(contents));
}

llvm::Error CheckpointWriter::checkComplete() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<llvm::StringRef> missing;
  for (size_t i = 0; i < progress_.size(); ++i) {
    bool mine = options_.shareTensors.empty() || options_.shareTensors[i];
    if (mine && (!progress_[i].touched || progress_[i].covered() != layout_.placements[i].size))
      missing.push_back(layout_.tensors[i].name);
  }
  if (missing.empty())
    return llvm::Error::success();
  constexpr size_t kShown = 10;
  std::string list;
  for (size_t i = 0; i < missing.size() && i < kShown; ++i)
    list += (i ? ", '" : "'") + missing[i].str() + "'";
  if (missing.size() > kShown)
    list += ", and " + std::to_string(missing.size() - kShown) + " more";
  return ioError(outDir() + ": " + llvm::Twine(missing.size()) + " of " +
                 llvm::Twine(progress_.size()) + " tensors were not written: " + list);
}

llvm::Error CheckpointWriter::finish() {
  if (finished_)
    return ioError(outDir() + ": finish() called twice");
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
    std::string path = joinPath(tempDir(), layout_.shards[s].fileName);
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
  if (!dir_->share().finishes()) {
    if (llvm::Error e = dir_->shareDone())
      return failed(std::move(e));
    return llvm::Error::success();
  }
  if (layout_.shards.size() > 1)
    if (llvm::Error e = writeNewFile(joinPath(tempDir(), kIndexFileName), layout_.indexJson()))
      return failed(std::move(e));
  auto ownName = [&](llvm::StringRef name) {
    return name == kIndexFileName ||
           llvm::any_of(layout_.shards, [&](const ShardPlan &s) { return s.fileName == name; });
  };
  if (llvm::Error e = dir_->commit(ownName))
    return failed(std::move(e));
  return llvm::Error::success();
}

} // namespace ckptmap
