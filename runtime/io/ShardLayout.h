// Where every output tensor goes: which shard, at which offset, and the bytes of each shard's
// header. Computed once from the ordered tensor list before any data is written, so shards
// can be filled in any order and the result depends on nothing but the inputs.
#pragma once

#include "compiler/TensorMeta.h"

#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ckptmap {

struct ShardPlan {
  std::string fileName;       ///< "model-00001-of-00003.safetensors" or "model.safetensors"
  std::string header;         ///< 8-byte length + JSON padded with spaces to a multiple of 8
  uint64_t fileSize = 0;      ///< header plus data
  std::vector<size_t> tensors; ///< indices into ShardLayout::tensors, in file order
};

struct TensorPlacement {
  size_t shard = 0;
  uint64_t offset = 0; ///< absolute file offset of the first byte
  uint64_t size = 0;
};

struct ShardLayout {
  std::vector<TensorMeta> tensors;
  std::vector<TensorPlacement> placements; ///< parallel to tensors
  std::vector<ShardPlan> shards;
  uint64_t totalSize = 0; ///< sum of tensor sizes, as the index's total_size reports it

  /// Shard assignment as HF's save_pretrained does it: tensors in the given order, a new
  /// shard when the next tensor would push the current one past maxShardSize, and a tensor
  /// larger than the limit alone in its own shard. Names must be unique and non-empty.
  /// `metadata` is added to every header's `__metadata__` after "format": "pt" (a "format"
  /// key replaces that value).
  static llvm::Expected<ShardLayout> plan(std::vector<TensorMeta> tensors,
                                          uint64_t maxShardSize,
                                          const std::map<std::string, std::string> &metadata);

  /// The model.safetensors.index.json text for this layout (only meaningful with several
  /// shards): sorted keys, two-space indent and a final newline, as HF writes it.
  std::string indexJson() const;
};

} // namespace ckptmap
