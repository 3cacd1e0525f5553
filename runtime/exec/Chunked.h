// Steps larger than the memory budget, run in pieces: a chain of element-wise ops (cast,
// affine, reshape) from one load to its stores, or a transpose of the last two dims, computed
// a block at a time, so working memory stays within --max-memory whatever the tensor's size.
// Input bytes that lie in a file are read with pread, so the input's mapping never becomes
// resident either.
#pragma once

#include "compiler/plan/Plan.h"
#include "runtime/exec/Values.h"

#include <functional>

namespace ckptmap {

/// Receives bytes [offset, offset + size) of the step's stored value.
using ChunkStore = std::function<llvm::Error(uint64_t offset, llvm::ArrayRef<uint8_t> bytes)>;

/// Whether runChunked can run `step`: a load of a plain tensor, then either cast, affine and
/// reshape ops each on the value before, or one transpose of the last two dims; the last
/// value stored one or more times, nothing else.
bool chunkable(const Step &step);

/// Runs a chunkable step on `input` (the loaded value) in pieces holding at most about
/// `budget` bytes at once; `store` receives every piece of the output once.
llvm::Error runChunked(const Step &step, const RtValue &input, uint64_t budget, const ChunkStore &store);

} // namespace ckptmap
