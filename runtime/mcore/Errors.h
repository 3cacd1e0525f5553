// Error construction shared by the Megatron-Core readers and writer. Every message names the
// file it concerns first ("path: what is wrong"), so a failure deep inside a 600 GB checkpoint
// still says where to look.
#pragma once

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>

namespace ckptmap::mcore {

/// Wide enough for products of two int64 extents without overflow.
__extension__ typedef __int128 Int128;

inline llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

/// "[0, 32, 0]"
inline std::string formatIndex(llvm::ArrayRef<int64_t> index) {
  std::string out = "[";
  for (size_t i = 0; i < index.size(); ++i)
    out += (i ? ", " : "") + std::to_string(index[i]);
  return out + "]";
}

} // namespace ckptmap::mcore
