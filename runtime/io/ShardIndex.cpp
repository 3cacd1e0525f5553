#include "runtime/io/ShardIndex.h"

#include "runtime/io/IoError.h"
#include "runtime/io/Json.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <optional>

namespace ckptmap {
namespace {

/// A shard name must stay inside the checkpoint directory: no absolute path, no "..", and no
/// NUL, which would end the name the file system sees early.
bool staysInside(llvm::StringRef shard) {
  if (shard.empty() || llvm::sys::path::is_absolute(shard) || shard.contains('\0'))
    return false;
  for (auto it = llvm::sys::path::begin(shard), end = llvm::sys::path::end(shard); it != end;
       ++it)
    if (*it == "..")
      return false;
  return true;
}

} // namespace

std::optional<ShardIndex> scanPlainShardIndex(llvm::StringRef path, llvm::StringRef text) {
  PlainJsonScanner in(text);
  std::map<std::string, std::string> weightMap;
  bool sawWeightMap = false;
  llvm::StringSet<> keys;
  llvm::StringRef inside; // the last shard name found to stay inside: most repeat it
  bool plain = in.object([&](llvm::StringRef key) {
    if (!keys.insert(key).second)
      return false;
    if (key != "weight_map")
      return in.skipValue();
    sawWeightMap = true;
    return in.object([&](llvm::StringRef tensor) {
      llvm::StringRef shard;
      if (!in.string(shard) || ((inside.empty() || shard != inside) && !staysInside(shard)))
        return false;
      inside = shard;
      size_t before = weightMap.size();
      weightMap.emplace_hint(weightMap.end(), tensor.str(), shard.str()); // writers sort the keys
      return weightMap.size() > before;
    });
  }) && in.atEnd();
  if (!plain || !sawWeightMap)
    return std::nullopt;
  return ShardIndex{path.str(), std::move(weightMap)};
}

llvm::Expected<ShardIndex> parseShardIndexJson(llvm::StringRef path, llvm::StringRef text) {
  llvm::Expected<nlohmann::json> parsed = parseJsonFileText(path, text);
  if (!parsed)
    return parsed.takeError(); // a tensor listed twice shows as "duplicate key ... in /weight_map"
  const nlohmann::json &root = *parsed;
  if (!root.is_object())
    return ioError(path + ": not a JSON object");
  auto wm = root.find("weight_map");
  if (wm == root.end() || !wm->is_object())
    return ioError(path + ": no 'weight_map' object");

  ShardIndex index;
  index.path = path.str();
  for (const auto &[tensor, shard] : wm->items()) {
    if (!shard.is_string())
      return ioError(path + ": weight_map entry '" + tensor + "' is not a string");
    const std::string &name = shard.get_ref<const std::string &>();
    if (name.empty())
      return ioError(path + ": weight_map entry '" + tensor + "' names no shard (an empty file name)");
    if (!staysInside(name)) {
      std::string shown;
      llvm::raw_string_ostream os(shown);
      llvm::printEscapedString(name, os); // a NUL, say, as \00
      return ioError(path + ": weight_map entry '" + tensor + "' names shard '" + os.str() +
                     "' outside the checkpoint directory");
    }
    index.weightMap.emplace(tensor, name);
  }
  return index;
}

llvm::Expected<ShardIndex> parseShardIndex(llvm::StringRef text, llvm::StringRef path) {
  if (std::optional<ShardIndex> index = scanPlainShardIndex(path, text))
    return std::move(*index);
  return parseShardIndexJson(path, text);
}

llvm::Expected<ShardIndex> readShardIndex(llvm::StringRef path) {
  llvm::Expected<std::string> text = readTextFile(path);
  if (!text)
    return text.takeError();
  return parseShardIndex(*text, path);
}

} // namespace ckptmap
