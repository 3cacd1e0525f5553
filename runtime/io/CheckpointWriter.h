// Writing an HF-style sharded safetensors checkpoint, streaming and deterministic.
//
// The complete, ordered list of output tensors is known up front (the plan computed it), so
// the layout of every shard is fixed at creation: headers are written and files sized at
// once, and tensors may then arrive in any order, from any thread. The output is built in a
// temporary directory beside the target and renamed into place by finish(); a writer
// destroyed before that, or a SIGINT/SIGTERM/SIGHUP, leaves nothing behind.
#pragma once

#include "runtime/io/FileOps.h"
#include "runtime/io/OutputDir.h"
#include "runtime/io/ShardLayout.h"
#include "runtime/io/TensorSink.h"

#include "llvm/ADT/ArrayRef.h"

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace ckptmap {

struct WriteOptions {
  std::string outDir;
  uint64_t maxShardSize = 5'000'000'000;
  /// Replace an existing output instead of refusing.
  bool force = false;
  /// Directory whose carried files (see isCarriedFile) are copied; empty for none.
  std::string copyFilesFrom;
  /// Extra `__metadata__` entries of every shard besides "format": "pt".
  std::map<std::string, std::string> metadata;
  /// When several processes write the output: this one's part, and which of the tensors
  /// (by index) it writes.
  OutputShare share;
  std::vector<bool> shareTensors;
};

class CheckpointWriter final : public TensorSink {
public:
  /// Plans the shards, creates the temporary directory and every shard file with its
  /// header. Refuses an existing output unless `force`.
  static llvm::Expected<std::unique_ptr<CheckpointWriter>> create(std::vector<TensorMeta> tensors,
                                                                  WriteOptions options);
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter &) = delete;
  CheckpointWriter &operator=(const CheckpointWriter &) = delete;

  const ShardLayout &layout() const { return layout_; }
  /// The output directory, absolute.
  const std::string &outDir() const { return dir_->destination(); }
  /// Where the output is being built until finish().
  const std::string &tempDir() const { return dir_->path(); }
  const std::string &stagingDir() const override { return dir_->path(); }

  /// Writes the whole of tensor `tensorIndex` (an index into the list given to create()).
  /// Thread-safe; tensors may come in any order, each exactly once.
  llvm::Error write(size_t tensorIndex, llvm::ArrayRef<uint8_t> bytes) override;
  /// Writes bytes [offset, offset + size) of one tensor, for tensors produced in pieces.
  /// Pieces of one tensor must not overlap; together they must cover it. `from` says where
  /// the bytes also lie in an input file: they are then copied file to file where possible.
  llvm::Error writePart(size_t tensorIndex, uint64_t offset, llvm::ArrayRef<uint8_t> bytes,
                        std::optional<TensorBytes::FileSpan> from = std::nullopt) override;

  /// Adds a non-tensor file to the output, replacing a carried file of the same name. The
  /// name must be a plain file name other than the shards' and the index's; finish()
  /// reports a bad one.
  void addFile(std::string name, std::string contents) override;

  /// Checks that every tensor was written exactly once, writes the index (when there are
  /// several shards) and the other files, syncs, and renames the output into place.
  llvm::Error finish() override;

private:
  CheckpointWriter() = default;
  llvm::Error createFiles();
  llvm::Error checkComplete() const;
  void discard();

  /// Byte ranges written so far of one tensor, sorted and merged.
  struct Progress {
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    bool touched = false; ///< any write, even of zero bytes
    uint64_t covered() const;
  };

  WriteOptions options_;
  ShardLayout layout_;
  std::unique_ptr<OutputDir> dir_;
  std::vector<int> fds_; ///< per shard
  std::unique_ptr<WritebackPacer[]> pacers_; ///< per shard
  mutable std::mutex mutex_; ///< guards progress_
  std::vector<Progress> progress_;
  bool finished_ = false;
};

} // namespace ckptmap
