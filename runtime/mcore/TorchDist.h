// Reading a torch_dist checkpoint (Megatron-Core's dist_checkpointing.save): metadata.json,
// the pickled `.metadata` (torch.distributed.checkpoint's Metadata) and the `__{rank}_{n}.distcp`
// files, each a run of torch.save archives ("pieces"). A tensor is assembled from its chunks
// when it is read; the checks that need no tensor data (chunks tile each tensor exactly,
// every piece lies inside an existing file) run when the directory is opened.
#pragma once

#include "compiler/TensorMeta.h"
#include "runtime/io/TensorSource.h"
#include "runtime/mcore/Chunks.h"
#include "runtime/io/MappedFile.h"
#include "runtime/mcore/Pickle.h"

#include "llvm/ADT/StringMap.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ckptmap::mcore {

/// Where one stored piece lies: a byte range of a .distcp file.
struct DistPiece {
  std::string file; ///< relative to the checkpoint directory ("__0_0.distcp")
  uint64_t offset = 0;
  uint64_t length = 0;
};

struct DistChunk {
  Box box; ///< global offsets and sizes (empty for a bytes entry)
  DistPiece piece;
  /// MetadataIndex.index of its stored item: a lookup hint torch records for some chunks
  /// (several chunks of one tensor in one rank's state dict); kept to rewrite it unchanged.
  std::optional<int64_t> storageIndex;
};

/// One key of `.metadata`'s state_dict_metadata.
struct DistEntry {
  std::string key;
  bool isTensor = true;
  DType dtype = DType::F32;      ///< tensors
  Shape shape;                   ///< tensors
  std::vector<DistChunk> chunks; ///< tensors: as listed; bytes entries: exactly one, box empty
};

/// Everything `.metadata` says, in its order.
struct TorchDistIndex {
  std::vector<DistEntry> entries;
  /// storage_meta, kept so a rewrite can reproduce it.
  std::optional<std::string> checkpointId;
  std::optional<std::string> saveId;
  std::string version;
  /// storage_data in its order: entry index, chunk index (0 for bytes entries).
  std::vector<std::pair<size_t, size_t>> storageOrder;
};

/// Parses a `.metadata` pickle. `label` names the file in errors.
llvm::Expected<TorchDistIndex> parseDistMetadata(llvm::ArrayRef<uint8_t> bytes, const std::string &label);
/// The `.metadata` pickle of an index, emitted as torch.distributed.checkpoint's coordinator
/// pickles it (protocol 4): parseDistMetadata's inverse, byte for byte on Megatron's files.
std::vector<uint8_t> encodeDistMetadata(const TorchDistIndex &index);

class TorchDistSource final : public TensorSource {
public:
  struct Options {
    bool verifyCrc = true; ///< check every piece's CRC-32 when reading
  };

  /// Opens `dir`: a torch_dist directory, or a Megatron save directory whose
  /// latest_checkpointed_iteration.txt names one.
  static llvm::Expected<std::unique_ptr<TorchDistSource>> open(const std::string &dir, Options options);
  static llvm::Expected<std::unique_ptr<TorchDistSource>> open(const std::string &dir) {
    return open(dir, Options{});
  }

  const std::string &root() const override { return root_; }
  llvm::ArrayRef<SourceTensor> tensors() const override { return tensors_; }
  /// Assembles the whole tensor from its chunks (memory: the tensor).
  llvm::Expected<TensorBytes> read(const SourceTensor &tensor) const override;

  const TorchDistIndex &index() const { return index_; }
  /// The entries that are not tensors (`..._extra_state/shard_i_n`, `common_state/shard_0_1`):
  /// skipped by tensors(), reproduced by a writer.
  std::vector<const DistEntry *> objects() const;
  /// Training state (optimizer moments, RNG state) a conversion leaves, by key.
  llvm::ArrayRef<std::string> skipped() const { return skipped_; }
  /// Whether a key is training state rather than a model parameter.
  static bool isTrainingState(llvm::StringRef key);
  /// The raw torch.save archive a bytes entry is stored as.
  llvm::Expected<std::vector<uint8_t>> readObjectArchive(const DistEntry &entry) const;
  /// A bytes entry's value, unpickled (restricted) from its archive's data.pkl.
  llvm::Expected<std::unique_ptr<Pickle>> decodeObject(const DistEntry &entry) const;
  /// The raw bytes of one stored piece (an archive), checked to lie inside its file.
  llvm::Expected<llvm::ArrayRef<uint8_t>> pieceBytes(const DistPiece &piece) const;

private:
  TorchDistSource() = default;
  std::string label(const DistPiece &piece) const;

  std::string root_;
  Options options_;
  TorchDistIndex index_;
  std::vector<SourceTensor> tensors_;
  llvm::StringMap<size_t> entryOf_; ///< tensor name -> index_.entries
  std::vector<std::string> skipped_;
  llvm::StringMap<std::shared_ptr<const MappedFile>> files_;
};

} // namespace ckptmap::mcore
