// Writing a torch_dist checkpoint that Megatron-Core's dist_checkpointing.load accepts:
// metadata.json, `.metadata` (the pickled torch.distributed.checkpoint Metadata, emitted as
// PyTorch emits it) and `__{rank}_0.distcp` files of torch.save archives, one per chunk,
// byte-identical to what torch writes. Tensors are streamed: each is handed over once, in
// any order, from any thread, and written at once to a place fixed in advance (so the files do
// not depend on the order); only `.metadata`'s index is kept in memory. The directory is
// built under a temporary name and renamed into place by finish().
#pragma once

#include "compiler/TensorMeta.h"
#include "runtime/io/TensorSource.h"
#include "runtime/io/FileOps.h"
#include "runtime/io/OutputDir.h"
#include "runtime/mcore/Chunks.h"

#include "llvm/ADT/StringMap.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace ckptmap::mcore {

class TorchDistSource;

/// One key of the checkpoint, in the order `.metadata` will list it.
struct DistWriteEntry {
  std::string key;
  bool isTensor = true;
  DType dtype = DType::F32; ///< tensors
  Shape shape;              ///< tensors
  /// Tensors: the chunks stored (they must tile the tensor exactly); empty means one chunk,
  /// the whole tensor.
  std::vector<Box> chunks;
  /// Which writer rank's file (`__{rank}_0.distcp`) stores each chunk (or the bytes entry);
  /// empty: chosen by the writer (bytes entries on rank 0, tensors on the least-filled rank).
  std::vector<int> chunkRanks;
  /// MetadataIndex.index recorded for each chunk (a lookup hint; None when empty).
  std::vector<std::optional<int64_t>> chunkIndex;
  /// Bytes entries: the torch.save archive stored (see objectArchive, pickleJson).
  std::vector<uint8_t> archive;

  static DistWriteEntry tensor(std::string key, DType dtype, Shape shape);
  /// A bytes entry holding torch.save(value) for plain JSON-like data.
  static DistWriteEntry object(std::string key, const nlohmann::json &value);
};

struct TorchDistWriteOptions {
  /// Number of writer ranks (files `__0_0.distcp` .. `__{ranks-1}_0.distcp`).
  int ranks = 1;
  /// When set, write `dir/latest_checkpointed_iteration.txt` and put the checkpoint in
  /// `dir/iter_{N:07d}/`, as Megatron's training saves do.
  std::optional<int64_t> iteration;
  /// Add `<linear>._extra_state/shard_*` entries holding `[None]` (what Megatron-Core's
  /// local-spec layers store) for every linear whose weight is written and that has none.
  bool defaultExtraState = true;
  /// Add `common_state/shard_0_1` = `[commonState]` when the entries have none. Megatron's
  /// load returns this dict's items at the top of the loaded state dict; keys it does not
  /// know are ignored.
  bool defaultCommonState = true;
  nlohmann::json commonState = nlohmann::json::object();
  /// storage_meta.checkpoint_id (None when unset) and save_id (derived from the content
  /// when unset).
  std::optional<std::string> checkpointId;
  std::optional<std::string> saveId;
  /// Replace an existing directory instead of refusing.
  bool force = false;
  /// Directory whose carried files (config, tokenizer) are copied beside `.metadata`.
  std::string copyFilesFrom;
  /// When several processes write the checkpoint: this one's part, and which of the entries
  /// given (by index) it writes; the finishing share writes the bytes entries.
  OutputShare share;
  std::vector<bool> shareTensors;
};

class TorchDistWriter {
public:
  /// Starts a checkpoint at `dir` (which must not exist). Writes the bytes entries at once.
  static llvm::Expected<std::unique_ptr<TorchDistWriter>> create(const std::string &dir, std::vector<DistWriteEntry> entries,
                                                                 TorchDistWriteOptions options = {});
  ~TorchDistWriter();

  /// Writes tensor `key` (its whole row-major bytes); every tensor exactly once, whole or
  /// chunk by chunk. Thread-safe.
  llvm::Error write(llvm::StringRef key, llvm::ArrayRef<uint8_t> bytes);
  /// Writes chunk `chunk` of tensor `key`: the row-major bytes of its block.
  llvm::Error writeChunk(llvm::StringRef key, size_t chunk, llvm::ArrayRef<uint8_t> bytes);
  /// Adds a file beside `.metadata` (Megatron-Core reads only the files its metadata names).
  void addFile(std::string name, std::string contents) { dir_->addFile(std::move(name), std::move(contents)); }
  /// Where `.metadata` and the `.distcp` files are being written until finish().
  std::string dataDir() const;
  /// Writes `.metadata` and metadata.json (and the iteration wrapping), then renames the
  /// directory into place. Fails if a chunk was never written.
  llvm::Error finish();

  /// The entries as completed by the defaults, in `.metadata` order.
  const std::vector<DistWriteEntry> &entries() const { return entries_; }

private:
  struct Stored {
    size_t entry, chunk;
    uint64_t offset, length;
  };
  struct RankFile {
    int fd = -1;
    std::string path;
    uint64_t size = 0;
    std::vector<Stored> stored; ///< in file order
  };
  TorchDistWriter() = default;
  llvm::Expected<size_t> tensorEntry(llvm::StringRef key) const;
  llvm::Error writePiece(size_t entry, size_t chunk, llvm::ArrayRef<uint8_t> archiveOrData, bool isTensor);
  std::vector<uint8_t> metadataPickle() const;

  std::unique_ptr<OutputDir> dir_;
  TorchDistWriteOptions options_;
  std::vector<DistWriteEntry> entries_;
  llvm::StringMap<size_t> byKey_;
  std::vector<std::vector<bool>> written_; ///< per entry, per chunk
  std::vector<bool> mine_;                 ///< per entry: written by this share
  std::vector<std::vector<uint64_t>> pieceOffset_; ///< per entry, per chunk: where in its rank's file
  std::mutex mutex_;                               ///< guards written_
  std::vector<RankFile> ranks_;
  std::unique_ptr<WritebackPacer[]> pacers_; ///< per rank file
  bool failed_ = false;
};

/// Copies every tensor of `source` into a new torch_dist checkpoint at `dir`, one chunk per
/// tensor, streaming one tensor at a time. When `source` is a TorchDistSource, its bytes
/// entries are reproduced as they are (and no defaults added). `extra` entries are
/// appended.
llvm::Error writeTorchDist(const TensorSource &source, const std::string &dir, TorchDistWriteOptions options = {},
                           std::vector<DistWriteEntry> extra = {});

/// The plan reproducing a torch_dist checkpoint exactly: its keys in `.metadata` order, its
/// chunks, files and bytes entries (for tests and for rewriting without change).
llvm::Expected<std::vector<DistWriteEntry>> reproducingPlan(const TorchDistSource &source);

} // namespace ckptmap::mcore
