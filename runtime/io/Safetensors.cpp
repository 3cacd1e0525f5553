#include "runtime/io/Safetensors.h"

#include "runtime/io/FileOps.h"
#include "runtime/io/IoError.h"
#include "runtime/io/SafetensorsHeader.h"
#include "runtime/io/ShardIndex.h"

#include "kernels/Parallel.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <numeric>
#include <cerrno>
#include <dirent.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace ckptmap {
namespace {

bool isRegularFile(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

/// Names of the *.safetensors regular files of `dir`, sorted.
llvm::Expected<std::vector<std::string>> listSafetensorsFiles(llvm::StringRef dir) {
  std::string d = dir.str();
  DIR *handle = ::opendir(d.c_str());
  if (!handle)
    return systemError(dir, "list", errno);
  std::vector<std::string> names;
  while (struct dirent *e = ::readdir(handle)) {
    llvm::StringRef name(e->d_name);
    if (name.endswith(".safetensors") && isRegularFile(joinPath(dir, name)))
      names.push_back(name.str());
  }
  ::closedir(handle);
  std::sort(names.begin(), names.end());
  return names;
}

/// Which files make up the checkpoint at a path, before any is opened.
struct Discovery {
  std::string root;
  std::optional<ShardIndex> index;
  std::vector<std::string> shardNames; ///< sorted, relative to root
  bool isDirectory = false;
};

llvm::Expected<Discovery> discover(llvm::StringRef path) {
  struct stat st;
  if (::stat(path.str().c_str(), &st) != 0)
    return systemError(path, "open", errno);
  Discovery d;
  if (!S_ISDIR(st.st_mode)) {
    llvm::StringRef parent = llvm::sys::path::parent_path(path);
    d.root = parent.empty() ? "." : parent.str();
    d.shardNames.push_back(llvm::sys::path::filename(path).str());
    return d;
  }
  d.root = path.str();
  d.isDirectory = true;
  std::string indexPath = joinPath(path, kIndexFileName);
  if (isRegularFile(indexPath)) {
    llvm::Expected<ShardIndex> index = readShardIndex(indexPath);
    if (!index)
      return index.takeError();
    for (const auto &[tensor, shard] : index->weightMap)
      d.shardNames.push_back(shard);
    std::sort(d.shardNames.begin(), d.shardNames.end());
    d.shardNames.erase(std::unique(d.shardNames.begin(), d.shardNames.end()), d.shardNames.end());
    d.index = std::move(*index);
    return d;
  }
  if (isRegularFile(joinPath(path, kSingleFileName))) {
    d.shardNames.push_back(kSingleFileName.str());
    return d;
  }
  llvm::Expected<std::vector<std::string>> found = listSafetensorsFiles(path);
  if (!found)
    return found.takeError();
  if (found->empty())
    return ioError(path + ": no " + kIndexFileName + ", " + kSingleFileName +
                   " or other .safetensors file");
  d.shardNames = std::move(*found);
  return d;
}

} // namespace

llvm::Expected<std::unique_ptr<SafetensorsSource>> SafetensorsSource::open(llvm::StringRef path) {
  llvm::Expected<Discovery> discovered = discover(path);
  if (!discovered)
    return discovered.takeError();
  const std::optional<ShardIndex> &index = discovered->index;
  std::unique_ptr<SafetensorsSource> src(new SafetensorsSource());
  src->root_ = discovered->root;
  if (index)
    src->indexPath_ = index->path;

  // Tensors in file order of discovery; sorted by name at the end.
  struct Found {
    HeaderTensor tensor;
    uint32_t shard;
  };
  std::vector<Found> found;
  std::vector<size_t> runs{0}; // where each shard's tensors start in `found`, and the end
  llvm::StringMap<uint32_t> owner; // tensor name -> shard that holds it
  const std::vector<std::string> &names = discovered->shardNames;
  std::vector<std::string> paths;
  for (const std::string &name : names)
    // A single file keeps the path as given, so messages repeat what the user typed.
    paths.push_back(discovered->isDirectory ? joinPath(path, name) : path.str());
  // Shards are mapped and their headers parsed in parallel, then taken in shard order, so
  // the error reported is the first in that order whatever the timing. (I/O errors are
  // plain messages, so carrying their text across loses nothing.)
  struct Opened {
    bool missing = false; ///< listed by the index but absent
    std::shared_ptr<const MappedFile> file;
    SafetensorsHeader header;
    std::string error;
  };
  std::vector<Opened> opened(names.size());
  parallelFor(names.size(), 1, std::thread::hardware_concurrency(), [&](size_t, size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      Opened &o = opened[i];
      if (index && ::access(paths[i].c_str(), F_OK) != 0 && errno == ENOENT) {
        o.missing = true;
        continue;
      }
      llvm::Expected<std::shared_ptr<const MappedFile>> file = MappedFile::open(paths[i]);
      if (!file) {
        o.error = llvm::toString(file.takeError());
        continue;
      }
      o.file = std::move(*file);
      llvm::Expected<SafetensorsHeader> header = parseSafetensorsHeader(o.file->bytes(), paths[i]);
      if (!header)
        o.error = llvm::toString(header.takeError());
      else
        o.header = std::move(*header);
    }
  });
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string &name = names[i];
    const std::string &shardPath = paths[i];
    Opened &o = opened[i];
    if (o.missing) {
      auto mapped = std::find_if(index->weightMap.begin(), index->weightMap.end(),
                                 [&](const auto &kv) { return kv.second == name; });
      return ioError(src->indexPath_ + ": shard '" + name + "' does not exist (tensor '" +
                     mapped->first + "' is mapped to it)");
    }
    if (!o.error.empty())
      return ioError(o.error);
    uint32_t shardIndex = uint32_t(src->shards_.size());
    // A shard holds a run of consecutive names (headers are sorted, and so is weight_map), so
    // the entry after the last one found is usually the next tensor's: one comparison.
    auto next = index ? index->weightMap.end() : decltype(index->weightMap.end())();
    for (HeaderTensor &t : o.header.tensors) {
      auto [it, inserted] = owner.try_emplace(t.meta.name, shardIndex);
      if (!inserted)
        return ioError(shardPath + ": tensor '" + t.meta.name + "' is also in " +
                       src->shards_[it->second].name);
      if (index) {
        auto listed = next != index->weightMap.end() && next->first == t.meta.name ? next
                                                                                   : index->weightMap.find(t.meta.name);
        if (listed != index->weightMap.end())
          next = std::next(listed);
        if (listed == index->weightMap.end())
          return ioError(src->indexPath_ + ": shard '" + name + "' contains tensor '" +
                         t.meta.name + "', which weight_map does not list");
        if (listed->second != name)
          return ioError(src->indexPath_ + ": shard '" + name + "' contains tensor '" +
                         t.meta.name + "', which weight_map maps to '" + listed->second + "'");
      }
      found.push_back({std::move(t), shardIndex});
    }
    runs.push_back(found.size());
    src->shards_.push_back(
        {name, shardPath, std::move(o.file), o.header.dataStart, std::move(o.header.metadata)});
  }
  // Every tensor found is listed, once: only a count that falls short leaves one to name.
  if (index && owner.size() != index->weightMap.size())
    for (const auto &[tensor, shard] : index->weightMap)
      if (!owner.count(tensor))
        return ioError(src->indexPath_ + ": tensor '" + tensor + "' is mapped to shard '" +
                       shard + "', which does not contain it");

  // Each header lists its tensors sorted by name: merge those runs, bottom-up, and merge
  // positions, so that each tensor is moved once.
  std::vector<uint32_t> order(found.size());
  std::iota(order.begin(), order.end(), 0);
  auto byName = [&](uint32_t a, uint32_t b) { return found[a].tensor.meta.name < found[b].tensor.meta.name; };
  const size_t shards = runs.size() - 1;
  for (size_t width = 1; width < shards; width *= 2)
    for (size_t r = 0; r + width < shards; r += 2 * width)
      std::inplace_merge(order.begin() + runs[r], order.begin() + runs[r + width],
                         order.begin() + runs[std::min(r + 2 * width, shards)], byName);
  src->tensors_.reserve(found.size());
  src->locations_.reserve(found.size());
  for (uint32_t i : order) {
    Found &f = found[i];
    const SafetensorsShard &shard = src->shards_[f.shard];
    src->locations_.push_back(
        {f.shard, shard.dataStart + f.tensor.begin, f.tensor.end - f.tensor.begin});
    src->tensors_.push_back({std::move(f.tensor.meta), shard.name});
  }
  return src;
}

std::optional<size_t> SafetensorsSource::indexOf(const SourceTensor &tensor) const {
  // Entries handed out by tensors() are located by address; others by name.
  std::less<const SourceTensor *> before;
  if (!tensors_.empty() && !before(&tensor, tensors_.data()) &&
      before(&tensor, tensors_.data() + tensors_.size()))
    return size_t(&tensor - tensors_.data());
  if (const SourceTensor *t = find(tensor.meta.name))
    return size_t(t - tensors_.data());
  return std::nullopt;
}

const SafetensorsSource::Location *SafetensorsSource::location(const SourceTensor &tensor) const {
  std::optional<size_t> i = indexOf(tensor);
  return i ? &locations_[*i] : nullptr;
}

llvm::Expected<TensorBytes> SafetensorsSource::read(const SourceTensor &tensor) const {
  std::optional<size_t> i = indexOf(tensor);
  if (!i)
    return ioError(root_ + ": no tensor '" + tensor.meta.name + "'");
  const Location &loc = locations_[*i];
  const std::shared_ptr<const MappedFile> &file = shards_[loc.shard].file;
  return std::move(TensorBytes(file->bytes().data() + loc.offset, loc.size, file).inFile(*file));
}

llvm::Expected<std::unique_ptr<TensorSource>> openSafetensors(llvm::StringRef path) {
  llvm::Expected<std::unique_ptr<SafetensorsSource>> src = SafetensorsSource::open(path);
  if (!src)
    return src.takeError();
  return std::unique_ptr<TensorSource>(std::move(*src));
}

} // namespace ckptmap
