// Reading Megatron's legacy per-rank checkpoints: latest_checkpointed_iteration.txt beside
// iter_{N:07d}/, holding mp_rank_{tp:02d}[_{pp:03d}][_{ep:03d}]/model_optim_rng.pt, each a
// torch.save of {"args": Namespace, "checkpoint_version", "iteration", "model": state dict,
// optimizer/RNG state...}. LegacyRankFile presents one rank's state dict as it is (local
// names, shards); LegacySource merges every rank into whole tensors under the in-memory names
// with global layer and expert numbers.
#pragma once

#include "runtime/io/TensorSource.h"
#include "runtime/mcore/Chunks.h"
#include "runtime/io/MappedFile.h"
#include "runtime/mcore/ModuleTable.h"
#include "runtime/mcore/TorchSave.h"

#include "llvm/ADT/StringMap.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ckptmap::mcore {

/// The training arguments a legacy file records, as far as the merge needs them.
struct LegacyArgs {
  std::optional<int64_t> tensorParallel, pipelineParallel, expertParallel, expertTensorParallel;
  std::optional<int64_t> numLayers, numExperts, hiddenSize, paddedVocabSize;
  std::optional<bool> swiglu; ///< gated MLP (args.swiglu or args.gated_linear_unit)
};

class LegacyRankFile final : public TensorSource {
public:
  static llvm::Expected<std::unique_ptr<LegacyRankFile>> open(const std::string &path, bool verifyCrc = true);

  /// The rank's directory.
  const std::string &root() const override { return dir_; }
  llvm::ArrayRef<SourceTensor> tensors() const override { return tensors_; }
  /// The tensor's bytes: a view of the file when stored contiguously, else a copy.
  llvm::Expected<TensorBytes> read(const SourceTensor &tensor) const override;

  const std::string &path() const { return path_; }
  const LegacyArgs &args() const { return args_; }
  std::optional<int64_t> iteration() const { return iteration_; }
  /// What the file holds besides the model's tensors: top-level keys ("optimizer",
  /// "rng_state") and model entries that are not tensors ("x._extra_state (None)").
  llvm::ArrayRef<std::string> skipped() const { return skipped_; }

private:
  LegacyRankFile() = default;
  std::string path_, dir_;
  bool verifyCrc_ = true;
  std::shared_ptr<const MappedFile> file_;
  std::unique_ptr<TorchSaveArchive> archive_;
  LegacyArgs args_;
  std::optional<int64_t> iteration_;
  std::vector<SourceTensor> tensors_;
  llvm::StringMap<StoredTensor> stored_;
  std::vector<std::string> skipped_;
};

class LegacySource final : public TensorSource {
public:
  struct Options {
    bool verifyCrc = true;
    /// Compare every copy of a replicated tensor (and of a shard held by several expert
    /// ranks) with the copy used; a difference is an error.
    bool checkReplicas = true;
  };
  struct Layout {
    int64_t tensorParallel = 1, pipelineParallel = 1, expertParallel = 1;
    std::string iterationDir;
    std::vector<int64_t> stageLayers; ///< decoder layers per pipeline stage
  };

  /// `dir`: the directory with latest_checkpointed_iteration.txt, or an iter_* directory.
  static llvm::Expected<std::unique_ptr<LegacySource>> open(const std::string &dir, Options options);
  static llvm::Expected<std::unique_ptr<LegacySource>> open(const std::string &dir) { return open(dir, Options{}); }

  const std::string &root() const override { return root_; }
  llvm::ArrayRef<SourceTensor> tensors() const override { return tensors_; }
  /// Assembles the whole tensor from the ranks' shards (memory: the tensor, plus one shard
  /// when checking replicas).
  llvm::Expected<TensorBytes> read(const SourceTensor &tensor) const override;

  const Layout &layout() const { return layout_; }
  const LegacyArgs &args() const { return args_; }
  /// Everything not converted, deduplicated across ranks (names with global numbering).
  llvm::ArrayRef<std::string> skipped() const { return skipped_; }
  /// One rank's file, or nullptr.
  const LegacyRankFile *rankFile(int64_t tp, int64_t pp, int64_t ep) const;

private:
  LegacySource() = default;
  struct Holder {
    size_t rank;
    std::string local;
  };
  struct Piece {
    int64_t slot;
    Box local; ///< block of the rank's tensor
    Shape globalOffsets;
  };
  struct Merged {
    DType dtype;
    Shape shape;
    Shape localShape;
    std::map<int64_t, std::vector<Holder>> holders; ///< slot (tp rank or 0) -> ranks holding it
    std::vector<Piece> pieces;
  };
  struct Rank {
    int64_t tp, pp, ep;
    std::unique_ptr<LegacyRankFile> file;
  };

  std::string root_;
  Options options_;
  Layout layout_;
  LegacyArgs args_;
  std::vector<Rank> ranks_;
  std::vector<SourceTensor> tensors_;
  std::map<std::string, Merged> merged_;
  std::vector<std::string> skipped_;
};

} // namespace ckptmap::mcore
