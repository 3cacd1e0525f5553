// Sizes written by people: "5GB", "500MB", "2GiB", "1000".
#pragma once

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>

namespace ckptmap {

/// Parses a size as HF's `max_shard_size` does: an integer with an optional unit,
/// KB/MB/GB/TB in powers of 1000 and KiB/MiB/GiB/TiB in powers of 1024, B for bytes; units
/// are case-insensitive. HF reads a lowercase final "b" of a decimal unit ("5Gb") as bits;
/// that reading is a trap, so such a size is refused instead.
llvm::Expected<uint64_t> parseByteSize(llvm::StringRef text);

} // namespace ckptmap
