#include "runtime/io/ShardIndex.h"

#include "runtime/io/IoError.h"
#include "runtime/io/Json.h"

#include "llvm/Support/Path.h"

namespace ckptmap {
namespace {

/// A shard name must stay inside the checkpoint directory: no absolute path, no "..".
bool staysInside(llvm::StringRef shard) {
  if (shard.empty() || llvm::sys::path::is_absolute(shard))
    return false;
  for (auto it = llvm::sys::path::begin(shard), end = llvm::sys::path::end(shard); it != end;
       ++it)
    if (*it == "..")
      return false;
  return true;
}

} // namespace

llvm::Expected<ShardIndex> readShardIndex(llvm::StringRef path) {
  llvm::Expected<nlohmann::json> root = readJsonFile(path);
  if (!root)
    return root.takeError(); // a tensor listed twice shows as "duplicate key ... in /weight_map"
  if (!root->is_object())
    return ioError(path + ": not a JSON object");
  auto wm = root->find("weight_map");
  if (wm == root->end() || !wm->is_object())
    return ioError(path + ": no 'weight_map' object");

  ShardIndex index;
  index.path = path.str();
  for (const auto &[tensor, shard] : wm->items()) {
    if (!shard.is_string())
      return ioError(path + ": weight_map entry '" + tensor + "' is not a string");
    const std::string &name = shard.get_ref<const std::string &>();
    if (!staysInside(name))
      return ioError(path + ": weight_map entry '" + tensor + "' names shard '" + name +
                     "' outside the checkpoint directory");
    index.weightMap.emplace(tensor, name);
  }
  return index;
}

} // namespace ckptmap
