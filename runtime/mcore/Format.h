// Which kind of checkpoint a path holds, and where Megatron's iteration wrapping points.
#pragma once

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>

namespace ckptmap::mcore {

enum class CheckpointFormat {
  TorchDist,   ///< metadata.json with sharded_backend torch_dist (+ .metadata, *.distcp)
  Legacy,      ///< iter_*/mp_rank_*/model_optim_rng.pt (Megatron's per-rank torch.save files)
  Safetensors, ///< *.safetensors (+ model.safetensors.index.json)
};

llvm::StringRef formatName(CheckpointFormat f);

struct DetectedCheckpoint {
  CheckpointFormat format;
  /// The directory (or file) that holds the format's files: for a Megatron save directory
  /// (latest_checkpointed_iteration.txt + iter_N/) holding torch_dist, the iter_N directory;
  /// for legacy, the directory holding iter_N/ or mp_rank_*/.
  std::string path;
};

/// Looks at `path` (never reads tensor data) and says what it is; an error says what was
/// found instead.
llvm::Expected<DetectedCheckpoint> detectFormat(const std::string &path);

/// Reads `dir/latest_checkpointed_iteration.txt` and returns the iteration directory it
/// names: `dir/iter_{N:07d}` (or `dir/release`).
llvm::Expected<std::string> resolveIterationDir(const std::string &dir);

} // namespace ckptmap::mcore
