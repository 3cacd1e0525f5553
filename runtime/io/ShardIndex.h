// model.safetensors.index.json: which shard holds which tensor.
#pragma once

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <map>
#include <optional>
#include <string>

namespace ckptmap {

struct ShardIndex {
  std::string path;                             ///< the index file, for messages
  std::map<std::string, std::string> weightMap; ///< tensor name -> shard name
};

/// Reads an index and checks its form: a `weight_map` object of strings naming files inside
/// the checkpoint directory. Whether the shards agree with it is the reader's business.
llvm::Expected<ShardIndex> readShardIndex(llvm::StringRef path);

/// The same for an index's text already in memory; `path` is what errors call it.
llvm::Expected<ShardIndex> parseShardIndex(llvm::StringRef text, llvm::StringRef path);

// parseShardIndex's two paths, for tests that hold them to the same results.

/// The fast path: an index in PlainJsonScanner's subset with valid entries, read without a
/// JSON tree. nullopt for any other index, valid or not.
std::optional<ShardIndex> scanPlainShardIndex(llvm::StringRef path, llvm::StringRef text);
/// The general path through the strict JSON parser, which every error message comes from.
llvm::Expected<ShardIndex> parseShardIndexJson(llvm::StringRef path, llvm::StringRef text);

} // namespace ckptmap
