#include "runtime/mcore/Format.h"

#include "runtime/io/FileOps.h"
#include "runtime/mcore/Errors.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <nlohmann/json.hpp>

#include <cstdio>

namespace ckptmap::mcore {

llvm::StringRef formatName(CheckpointFormat f) {
  switch (f) {
  case CheckpointFormat::TorchDist: return "torch_dist";
  case CheckpointFormat::Legacy: return "legacy";
  case CheckpointFormat::Safetensors: return "safetensors";
  }
  return "?";
}

namespace {

bool exists(const std::string &p) { return llvm::sys::fs::exists(p); }

/// Names in `dir` starting with `prefix` (sorted).
std::vector<std::string> listNames(const std::string &dir, llvm::StringRef prefix) {
  std::vector<std::string> out;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(dir, ec), end; it != end && !ec; it.increment(ec)) {
    llvm::StringRef name = llvm::sys::path::filename(it->path());
    if (name.startswith(prefix))
      out.push_back(name.str());
  }
  std::sort(out.begin(), out.end());
  return out;
}

llvm::Expected<bool> isTorchDistDir(const std::string &dir) {
  std::string meta = joinPath(dir, "metadata.json");
  if (!exists(meta))
    return false;
  auto buf = llvm::MemoryBuffer::getFile(meta);
  if (!buf)
    return makeError(meta + ": cannot read: " + buf.getError().message());
  auto j = nlohmann::json::parse((*buf)->getBuffer().begin(), (*buf)->getBuffer().end(), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return makeError(meta + ": not a JSON object");
  auto it = j.find("sharded_backend");
  if (it == j.end() || !it->is_string())
    return makeError(meta + ": no \"sharded_backend\"");
  if (*it != "torch_dist")
    return makeError(meta + ": sharded_backend '" + it->get<std::string>() +
                     "' is not supported (only torch_dist)");
  return true;
}

} // namespace

llvm::Expected<std::string> resolveIterationDir(const std::string &dir) {
  std::string tracker = joinPath(dir, "latest_checkpointed_iteration.txt");
  auto buf = llvm::MemoryBuffer::getFile(tracker);
  if (!buf)
    return makeError(tracker + ": cannot read: " + buf.getError().message());
  llvm::StringRef text = (*buf)->getBuffer().trim();
  if (text == "release")
    return joinPath(dir, "release");
  unsigned long long iteration = 0;
  if (text.empty() || text.getAsInteger(10, iteration))
    return makeError(tracker + ": '" + text + "' is not an iteration number");
  char name[32];
  std::snprintf(name, sizeof name, "iter_%07llu", iteration);
  std::string iterDir = joinPath(dir, name);
  if (!llvm::sys::fs::is_directory(iterDir))
    return makeError(tracker + ": names iteration " + text + ", but " + iterDir + " is missing");
  return iterDir;
}

llvm::Expected<DetectedCheckpoint> detectFormat(const std::string &path) {
  if (!exists(path))
    return makeError(path + ": no such file or directory");
  if (!llvm::sys::fs::is_directory(path)) {
    if (llvm::StringRef(path).endswith(".safetensors"))
      return DetectedCheckpoint{CheckpointFormat::Safetensors, path};
    return makeError(path + ": not a checkpoint (a file that is not .safetensors)");
  }
  auto td = isTorchDistDir(path);
  if (!td)
    return td.takeError();
  if (*td)
    return DetectedCheckpoint{CheckpointFormat::TorchDist, path};
  if (exists(joinPath(path, "latest_checkpointed_iteration.txt"))) {
    auto iter = resolveIterationDir(path);
    if (!iter)
      return iter.takeError();
    auto inner = isTorchDistDir(*iter);
    if (!inner)
      return inner.takeError();
    if (*inner)
      return DetectedCheckpoint{CheckpointFormat::TorchDist, *iter};
    return DetectedCheckpoint{CheckpointFormat::Legacy, path};
  }
  if (!listNames(path, "mp_rank_").empty())
    return DetectedCheckpoint{CheckpointFormat::Legacy, path};
  for (const std::string &iter : listNames(path, "iter_"))
    if (!listNames(joinPath(path, iter), "mp_rank_").empty())
      return DetectedCheckpoint{CheckpointFormat::Legacy, path};
  if (exists(joinPath(path, "model.safetensors.index.json")))
    return DetectedCheckpoint{CheckpointFormat::Safetensors, path};
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(path, ec), end; it != end && !ec; it.increment(ec))
    if (llvm::StringRef(it->path()).endswith(".safetensors"))
      return DetectedCheckpoint{CheckpointFormat::Safetensors, path};
  return makeError(path + ": not a checkpoint: no metadata.json (torch_dist), "
                          "latest_checkpointed_iteration.txt or mp_rank_* (legacy), or *.safetensors");
}

} // namespace ckptmap::mcore
