#include "compiler/check/Ops.h"

#include <cstdint>

namespace ckptmap {

llvm::ArrayRef<OpInfo> allOps() {
  static const std::vector<OpInfo> ops = {
      {OpKind::Concat, "concat", "split", 2, UINT32_MAX, true, false, true,
       {{"dim", ParamType::Int, true, "the dimension joined along"}, {"requantize", ParamType::Bool, false, "quantized parts whose per-tensor scales differ are requantized to one scale (lossy, reported) instead of refused"}},
       "joins parts along `dim`; a part may state its size (`part : size`), which is checked "
       "against the tensor when fusing and used to split when going back"},
      {OpKind::Gated, "gated", "split_gated", 2, 2, false, false, true, {{"requantize", ParamType::Bool, false, "quantized parts whose per-tensor scales differ are requantized to one scale (lossy, reported) instead of refused"}},
       "[gate; up] along dim 0, both halves the same size (MCore linear_fc1)"},
      {OpKind::Qkv, "qkv", "split_qkv", 3, 3, false, false, true,
       {{"heads", ParamType::Int, true, "query heads"},
        {"groups", ParamType::Int, true, "query groups (key/value heads)"},
        {"gate", ParamType::Bool, false, "q holds per head d query rows then d gate rows"},
        {"requantize", ParamType::Bool, false, "quantized parts whose per-tensor scales differ are requantized to one scale (lossy, reported) instead of refused"}},
       "MCore grouped-query layout: for each group its query heads (then their gate heads), "
       "its key head, its value head"},
      {OpKind::Stack, "stack", "unstack", 1, 1, false, true, true, {},
       "stacks one part per value of the bound variable along a new leading dim"},
      {OpKind::Transpose, "transpose", "transpose", 1, 1, false, false, true,
       {{"perm", ParamType::IntList, false, "permutation of the dims (default: swap the last two)"}},
       "permutes dimensions"},
      {OpKind::Reshape, "reshape", "reshape", 1, 1, false, false, true,
       {{"to", ParamType::IntList, true, "the shape produced"},
        {"from", ParamType::IntList, true, "the part's shape, checked and restored"}},
       "reinterprets the shape without moving bytes"},
      {OpKind::Cast, "cast", "cast", 1, 1, false, false, false,
       {{"to", ParamType::DType, true, "dtype produced"},
        {"from", ParamType::DType, true, "dtype of the part, checked and restored"}},
       "converts the element type (round to nearest even)"},
      {OpKind::Affine, "affine", "affine", 1, 1, false, false, false,
       {{"scale", ParamType::Float, false, "multiplier (default 1)"},
        {"shift", ParamType::Float, false, "addend (default 0)"}},
       "x * scale + shift elementwise, computed in FP32 and rounded once (zero-centred norms: shift -1)"},
      {OpKind::Quantize, "quantize", "dequantize", 1, 1, false, false, false,
       {{"format", ParamType::QuantFormat, true, "nvfp4, fp8, fp8_block or mxfp8"},
        {"from", ParamType::DType, false, "dtype of the plain tensor, checked and restored (default BF16)"}},
       "stores a plain weight quantized, with its scales; the way back dequantizes it to `from`"},
      {OpKind::Dequantize, "dequantize", "quantize", 1, 1, false, false, false,
       {{"format", ParamType::QuantFormat, true, "how the part is quantized: nvfp4, fp8, fp8_block or mxfp8"},
        {"to", ParamType::DType, false, "dtype produced (default BF16)"}},
       "stores a quantized weight as plain floats; the way back quantizes it to `format` again"},
  };
  return ops;
}

const OpInfo *lookupOp(llvm::StringRef name) {
  for (const OpInfo &op : allOps())
    if (name == op.name)
      return &op;
  return nullptr;
}

int paramIndex(const OpInfo &op, llvm::StringRef name) {
  for (size_t i = 0; i < op.params.size(); ++i)
    if (name == op.params[i].name)
      return int(i);
  return -1;
}

std::vector<std::string> opNames() {
  std::vector<std::string> names;
  for (const OpInfo &op : allOps())
    names.push_back(op.name);
  return names;
}

} // namespace ckptmap
