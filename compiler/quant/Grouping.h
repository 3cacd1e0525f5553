// From a checkpoint's stored tensors to the logical tensors rules see, and back: every
// quantized weight and its scales become one tensor named like the weight.
#pragma once

#include "compiler/TensorMeta.h"

#include <vector>

namespace ckptmap {

/// Groups stored tensors into logical ones, sorted by name. A weight is quantized when its
/// data and scales are all there with the dtypes and shapes of one format; scales without
/// their weight stay plain tensors, so coverage reports them by name.
std::vector<TensorMeta> groupQuantized(llvm::ArrayRef<TensorMeta> stored);

/// The stored tensors of logical ones: the inverse of groupQuantized.
std::vector<TensorMeta> expandQuantized(llvm::ArrayRef<TensorMeta> logical);

} // namespace ckptmap
