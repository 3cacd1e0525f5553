#include "runtime/mcore/ModuleTable.h"

namespace ckptmap::mcore {

namespace {

// Checked against the tp2_ep2 fixtures (per-rank shapes vs the global ones):
//  linear_qkv [128,64] -> [64,64] rows; linear_proj [64,64] -> [64,32] columns;
//  dense and expert linear_fc1 [192,64] -> [96,64] rows as [gate_r; up_r]; linear_fc2
//  [64,96] -> [64,48] columns; MLA linear_q_down_proj [32,64] -> [16,64],
//  linear_q_up_proj [96,32] -> [48,32], linear_kv_down_proj [24,64] -> [12,64],
//  linear_kv_up_proj [128,16] -> [64,16] rows; MTP eh_proj [64,128] -> [32,128] rows;
//  word_embeddings / output_layer [512,64] -> [256,64] rows; router [4,64] whole.
constexpr ModuleRule kRules[] = {
    {"linear_qkv", TpSplit::Column, false, true},
    {"linear_q_proj", TpSplit::Column, false, true},
    {"linear_q_down_proj", TpSplit::Column, false, true},
    {"linear_q_up_proj", TpSplit::Column, false, true},
    {"linear_kv_down_proj", TpSplit::Column, false, true},
    {"linear_kv_up_proj", TpSplit::Column, false, true},
    {"linear_fc1", TpSplit::Column, true, true},
    {"linear_proj", TpSplit::Row, false, true},
    {"linear_fc2", TpSplit::Row, false, true},
    {"eh_proj", TpSplit::Column, false, true},
    {"word_embeddings", TpSplit::Column, false, false},
    {"output_layer", TpSplit::Column, false, false},
    {"router", TpSplit::Replicated, false, false},
};

bool hasDigitSuffix(llvm::StringRef s, llvm::StringRef stem) {
  if (!s.startswith(stem))
    return false;
  llvm::StringRef rest = s.drop_front(stem.size());
  return rest.empty() || rest.find_first_not_of("0123456789") == llvm::StringRef::npos;
}

} // namespace

const ModuleRule *moduleRule(llvm::StringRef leaf) {
  for (const ModuleRule &r : kRules)
    if (leaf == r.leaf)
      return &r;
  return nullptr;
}

ParamName splitParamName(llvm::StringRef name) {
  ParamName p;
  size_t dot = name.rfind('.');
  if (dot == llvm::StringRef::npos) {
    p.param = name;
    return p;
  }
  p.module = name.take_front(dot);
  p.param = name.drop_front(dot + 1);
  size_t leafDot = p.module.rfind('.');
  p.leaf = leafDot == llvm::StringRef::npos ? p.module : p.module.drop_front(leafDot + 1);
  return p;
}

TpSplit paramSplit(const ParamName &p) {
  const ModuleRule *rule = moduleRule(p.leaf);
  if (!rule)
    return TpSplit::Replicated;
  if (hasDigitSuffix(p.param, "weight"))
    return rule->split;
  if (hasDigitSuffix(p.param, "bias"))
    return rule->split == TpSplit::Column ? TpSplit::Column : TpSplit::Replicated;
  return TpSplit::Replicated;
}

} // namespace ckptmap::mcore
