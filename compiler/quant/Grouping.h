// From a checkpoint's stored tensors to the logical tensors rules see, and back: every
// quantized weight and its scales become one tensor named like the weight.
#pragma once

#include "compiler/TensorMeta.h"

#include <map>
#include <string>
#include <vector>

namespace ckptmap {

/// Groups stored tensors into logical ones, in the stored order. A weight is quantized when its
/// data and scales are all there with the dtypes and shapes of one format; scales without
/// their weight stay plain tensors, so coverage reports them by name. Names in `stored` are
/// unique, as every source and plan has them.
/// `rowGroups` names fused FP8 block weights whose grid keeps one part per group of rows (as
/// recorded when they were written), where the shapes alone cannot tell.
using RowGroupHints = std::map<std::string, std::vector<int64_t>>;
std::vector<TensorMeta> groupQuantized(llvm::ArrayRef<TensorMeta> stored, const RowGroupHints &rowGroups = {});

/// The stored tensors of logical ones: the inverse of groupQuantized.
std::vector<TensorMeta> expandQuantized(llvm::ArrayRef<TensorMeta> logical);

/// An FP8 KV-cache scale (`k_proj.k_scale`, `v_proj.v_scale`, and MCore's
/// `core_attention.k_scale`): an F32 scalar of the attention, not part of a weight.
bool isKvCacheScale(const TensorMeta &t);

} // namespace ckptmap
