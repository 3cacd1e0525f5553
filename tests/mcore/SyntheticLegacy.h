// TEST-ONLY: builds legacy per-rank checkpoints from whole in-memory tensors, sharding them
// independently of the reader (its own small copy of which linears split how), so the merge
// can be checked on layouts the fixtures lack (pipeline stages) and with experts whose values
// differ between expert ranks.
#pragma once

#include "TestSupport.h"

#include <functional>
#include <map>
#include <optional>
#include <string>

namespace ckptmap::mcore::test {

struct SyntheticLayout {
  int tp = 2, pp = 2, ep = 2;
  std::vector<int> stageLayers; ///< decoder layers per stage (sum = num_layers)
  int numExperts = 4;
  bool writeSwiglu = true; ///< put swiglu=True in args
  bool swigluValue = true;
  std::optional<int> argsNumExperts;
  std::optional<int> argsNumLayers; ///< num_layers written in args (default: the stages' sum) ///< num_experts written in args (default: numExperts)
  /// Changes one rank's state dict before it is written.
  std::function<void(int tp, int pp, int ep, std::map<std::string, StTensor> &)> tweak;
};

/// Writes `dir/latest_checkpointed_iteration.txt` and `dir/iter_0000007/mp_rank_*/...`.
void writeSyntheticLegacy(const std::string &dir, const std::map<std::string, StTensor> &global,
                          const SyntheticLayout &layout);

/// One torch.save archive (top folder model_optim_rng) of {"args": Namespace(intArgs, swiglu),
/// "checkpoint_version": 3.0, "iteration": 7, "model": {...}, "optimizer": {}}.
std::vector<uint8_t> legacyRankArchive(const std::map<std::string, int64_t> &intArgs, const std::optional<bool> &swiglu,
                                       const std::map<std::string, StTensor> &model);

} // namespace ckptmap::mcore::test
