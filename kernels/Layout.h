// Moving elements without changing them: transpose (a permutation of a row-major tensor's
// dims). CPU reference; kernels/Cuda.h has the device twin. Elements are opaque bytes, so
// results are identical on every backend.
#pragma once

#include "kernels/Status.h"

#include <cstddef>
#include <cstdint>

namespace ckptmap {

/// Dims a transpose takes.
inline constexpr size_t kMaxTransposeRank = 8;

namespace cpu {

/// dst[i_perm[0], ..., i_perm[r-1]] = src[i_0, ..., i_{r-1}]: output dim d is input dim
/// perm[d]. `elemBytes` is 1, 2, 4 or 8 (any size works; those are fast); rank <= 8.
KernelStatus transpose(const void* src, void* dst, const int64_t* shape, const int64_t* perm, size_t rank,
                       size_t elemBytes);

} // namespace cpu
} // namespace ckptmap
