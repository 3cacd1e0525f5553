// Megatron-Core module knowledge, in one table: how each linear is split under tensor
// parallelism, whether it may be gated ([gate; up] rows), and whether torch_dist stores an
// `_extra_state` entry for it. Looked up by the module's leaf name; checked against the
// fixtures' shapes (tp2_ep2: which tensors are split, and along which dimension).
#pragma once

#include "llvm/ADT/StringRef.h"

namespace ckptmap::mcore {

enum class TpSplit : uint8_t {
  Replicated, ///< every tensor-parallel rank holds the whole tensor
  Column,     ///< output rows split: dim 0 (dim 1 of stacked experts)
  Row,        ///< input columns split: the last dim
};

struct ModuleRule {
  const char *leaf;  ///< leaf module name ("linear_qkv")
  TpSplit split;     ///< for its `weight`; a Column module's `bias` splits the same way, a Row module's is replicated
  bool mayBeGated;   ///< [gate; up] along the split dim when the MLP is gated (swiglu)
  bool extraState;   ///< torch_dist holds `<module>._extra_state/shard_*` for it
};

/// nullptr for modules not in the table (norms and the like: replicated, no extra state).
const ModuleRule *moduleRule(llvm::StringRef leaf);

/// Splits a parameter name into module path and parameter: "a.b.linear_fc1.weight" ->
/// ("a.b.linear_fc1", "weight"). Also returns the module's leaf name.
struct ParamName {
  llvm::StringRef module; ///< "decoder.layers.0.mlp.linear_fc1"
  llvm::StringRef leaf;   ///< "linear_fc1"
  llvm::StringRef param;  ///< "weight", "bias", "layer_norm_weight", "weight3"
};
ParamName splitParamName(llvm::StringRef name);

/// How a parameter is split: a module's `weight` / `weight{N}` as its rule says; `bias` /
/// `bias{N}` split like a Column module's weight, replicated otherwise; anything else
/// (fused norm weights, expert_bias) replicated.
TpSplit paramSplit(const ParamName &p);

} // namespace ckptmap::mcore
