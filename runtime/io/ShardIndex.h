// model.safetensors.index.json: which shard holds which tensor.
#pragma once

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <map>
#include <string>

namespace ckptmap {

struct ShardIndex {
  std::string path;                             ///< the index file, for messages
  std::map<std::string, std::string> weightMap; ///< tensor name -> shard name
};

/// Reads an index and checks its form: a `weight_map` object of strings naming files inside
/// the checkpoint directory. Whether the shards agree with it is the reader's business.
llvm::Expected<ShardIndex> readShardIndex(llvm::StringRef path);

} // namespace ckptmap
