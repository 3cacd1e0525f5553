// Error construction for the I/O layer. Every message starts with the path it concerns, so a
// user can tell which of hundreds of shards is at fault.
#pragma once

#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"

namespace ckptmap {

/// A plain error with the given text.
inline llvm::Error ioError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

/// "PATH: cannot VERB: <strerror(err)>".
llvm::Error systemError(const llvm::Twine &path, const llvm::Twine &verb, int err);

} // namespace ckptmap
