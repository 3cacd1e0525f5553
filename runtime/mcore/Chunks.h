// Global tensors assembled from blocks ("chunks"): the torch_dist reader places each stored
// piece at its global offsets, the legacy reader places each rank's shard the same way, and
// the writer cuts blocks out of a global tensor. Also the exact-cover check that every
// element of a tensor comes from exactly one chunk.
#pragma once

#include "compiler/TensorMeta.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace ckptmap::mcore {

/// A block of a tensor: where it starts and how large it is, per dimension.
struct Box {
  Shape offsets;
  Shape sizes;
};

/// Checks that `boxes` tile `shape` exactly: inside the tensor, no element twice, none
/// missing. `where` (a file) and `key` (the tensor) start the error, which names the chunks.
llvm::Error checkExactCover(const std::string &where, const std::string &key, llvm::ArrayRef<int64_t> shape,
                            llvm::ArrayRef<Box> boxes);

/// A strided view of elements: element i (multi-index) lives at base[(offset + sum i_d *
/// stride_d) * elemSize].
struct StridedView {
  const uint8_t *base = nullptr;
  int64_t offset = 0;
  llvm::ArrayRef<int64_t> stride;
};

/// Copies the block of `sizes` starting at `from` in `src` into the contiguous tensor `dst`
/// of shape `dstShape` at `to`.
void copyBlock(uint8_t *dst, llvm::ArrayRef<int64_t> dstShape, llvm::ArrayRef<int64_t> to, const StridedView &src,
               llvm::ArrayRef<int64_t> from, llvm::ArrayRef<int64_t> sizes, size_t elemSize);

/// Row-major strides of a contiguous tensor of `shape`, in elements.
Shape contiguousStrides(llvm::ArrayRef<int64_t> shape);

} // namespace ckptmap::mcore
