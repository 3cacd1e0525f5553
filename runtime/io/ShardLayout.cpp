#include "runtime/io/ShardLayout.h"

#include "runtime/io/IoError.h"
#include "runtime/io/Safetensors.h"

#include "llvm/ADT/StringSet.h"

#include <nlohmann/json.hpp>

#include <cstdio>

namespace ckptmap {
namespace {

std::string jsonString(const std::string &s) { return nlohmann::json(s).dump(); }

std::string shardName(size_t index, size_t count) {
  if (count == 1)
    return kSingleFileName.str();
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return buf;
}

/// Compact JSON as the reference serializer writes it, keys in our chosen order.
std::string headerJson(const ShardLayout &layout, const ShardPlan &shard,
                       const std::map<std::string, std::string> &metadata) {
  std::string out = "{\"__metadata__\":{\"format\":";
  auto format = metadata.find("format");
  out += jsonString(format != metadata.end() ? format->second : "pt");
  for (const auto &[key, value] : metadata)
    if (key != "format")
      out += "," + jsonString(key) + ":" + jsonString(value);
  out += "}";
  uint64_t offset = 0;
  for (size_t i : shard.tensors) {
    const TensorMeta &t = layout.tensors[i];
    out += "," + jsonString(t.name) + ":{\"dtype\":\"" + std::string(dtypeName(t.dtype)) +
           "\",\"shape\":[";
    for (size_t d = 0; d < t.shape.size(); ++d)
      out += (d ? "," : "") + std::to_string(t.shape[d]);
    uint64_t end = offset + t.byteSize();
    out += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(end) + "]}";
    offset = end;
  }
  return out + "}";
}

} // namespace

llvm::Expected<ShardLayout> ShardLayout::plan(std::vector<TensorMeta> tensors,
                                              uint64_t maxShardSize,
                                              const std::map<std::string, std::string> &metadata) {
  if (maxShardSize == 0)
    return ioError("the maximum shard size must be positive");
  llvm::StringSet<> seen;
  for (const TensorMeta &t : tensors) {
    if (t.name.empty())
      return ioError("an output tensor has an empty name");
    if (t.name == "__metadata__")
      return ioError("output tensor name '__metadata__' is reserved by the safetensors format");
    if (!seen.insert(t.name).second)
      return ioError("output tensor '" + t.name + "' is listed twice");
    uint64_t bytes = dtypeSize(t.dtype);
    for (int64_t d : t.shape) {
      if (d < 0)
        return ioError("output tensor '" + t.name + "' has shape " + formatShape(t.shape) +
                       " with a negative dimension");
      if (__builtin_mul_overflow(bytes, uint64_t(d), &bytes) || bytes > uint64_t(INT64_MAX))
        return ioError("output tensor '" + t.name + "' has shape " + formatShape(t.shape) +
                       " too large to store");
    }
  }

  ShardLayout layout;
  layout.tensors = std::move(tensors);
  layout.placements.resize(layout.tensors.size());
  // Group tensors into shards first; names depend on the final count.
  std::vector<std::vector<size_t>> groups;
  uint64_t current = 0;
  bool open = false;
  for (size_t i = 0; i < layout.tensors.size(); ++i) {
    uint64_t size = layout.tensors[i].byteSize();
    layout.totalSize += size;
    if (size > maxShardSize) {
      groups.push_back({i});
      open = false;
      continue;
    }
    if (!open || current + size > maxShardSize) {
      groups.emplace_back();
      current = 0;
      open = true;
    }
    groups.back().push_back(i);
    current += size;
  }
  if (groups.empty())
    groups.emplace_back(); // an empty checkpoint is still one (empty) file

  for (size_t s = 0; s < groups.size(); ++s) {
    ShardPlan shard;
    shard.fileName = shardName(s, groups.size());
    shard.tensors = std::move(groups[s]);
    std::string json = headerJson(layout, shard, metadata);
    json.append((8 - json.size() % 8) % 8, ' ');
    uint64_t length = json.size();
    shard.header.resize(8);
    for (int b = 0; b < 8; ++b)
      shard.header[b] = char((length >> (8 * b)) & 0xff);
    shard.header += json;
    uint64_t offset = shard.header.size();
    for (size_t i : shard.tensors) {
      uint64_t size = layout.tensors[i].byteSize();
      layout.placements[i] = {s, offset, size};
      offset += size;
    }
    shard.fileSize = offset;
    layout.shards.push_back(std::move(shard));
  }
  return layout;
}

std::string ShardLayout::indexJson() const {
  nlohmann::json index;
  index["metadata"]["total_size"] = totalSize;
  nlohmann::json &weightMap = index["weight_map"];
  weightMap = nlohmann::json::object();
  for (size_t i = 0; i < tensors.size(); ++i)
    weightMap[tensors[i].name] = shards[placements[i].shard].fileName;
  return index.dump(2) + "\n";
}

} // namespace ckptmap
