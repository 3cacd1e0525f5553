// libFuzzer target: model.safetensors.index.json on hostile text.
#include "runtime/io/ShardIndex.h"

#include "llvm/Support/Path.h"

#include <cstdint>
#include <cstdlib>

using namespace ckptmap;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::StringRef text(reinterpret_cast<const char *>(data), size);
  auto index = parseShardIndex(text, "fuzz/model.safetensors.index.json");
  if (!index) {
    llvm::consumeError(index.takeError());
    return 0;
  }
  // What the reader then opens must lie inside the checkpoint directory.
  for (const auto &[tensor, shard] : index->weightMap) {
    if (shard.empty() || llvm::sys::path::is_absolute(shard) || llvm::StringRef(shard).contains('\0'))
      std::abort();
    for (auto it = llvm::sys::path::begin(shard), end = llvm::sys::path::end(shard); it != end; ++it)
      if (*it == "..")
        std::abort();
  }
  return 0;
}
