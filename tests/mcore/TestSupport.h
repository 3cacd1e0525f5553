// Helpers for the Megatron-Core format tests: fixture paths, a minimal safetensors reader (the
// fixtures' global.safetensors and ranks/rank{r}.safetensors are the oracles), scratch
// directories, and the test-only name mapping between torch_dist keys and in-memory names.
#pragma once

#include "compiler/TensorMeta.h"
#include "runtime/io/TensorSource.h"

#include "llvm/Support/Error.h"

#include <doctest/doctest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ckptmap::mcore::test {

/// tests/fixtures/mcore/<rel>
std::string fixture(const std::string &rel);

struct StTensor {
  DType dtype;
  Shape shape;
  std::vector<uint8_t> bytes;
};
/// Every tensor of a .safetensors file, by name.
std::map<std::string, StTensor> readSafetensors(const std::string &path);

/// A fresh empty directory under the build tree, removed when the object dies.
class ScratchDir {
public:
  explicit ScratchDir(const std::string &name);
  ~ScratchDir();
  const std::string &path() const { return path_; }
  std::string operator/(const std::string &rel) const { return path_ + "/" + rel; }

private:
  std::string path_;
};

std::vector<uint8_t> readFile(const std::string &path);
void writeFile(const std::string &path, const std::vector<uint8_t> &bytes);
/// Copies a directory tree (small fixtures only).
void copyTree(const std::string &from, const std::string &to);

/// The message of an error (consumed), or "" for success.
std::string errorText(llvm::Error err);
template <typename T> std::string errorText(llvm::Expected<T> &value) {
  return value ? std::string() : errorText(value.takeError());
}
template <typename T> std::string errorText(llvm::Expected<T> &&value) {
  return value ? std::string() : errorText(value.takeError());
}

/// TEST-ONLY: the in-memory (local spec) tensors a torch_dist key stands for. In the product
/// this correspondence belongs in rulebooks; the tests only need it to compare a torch_dist
/// read with global.safetensors. Stacked experts [E, ...] become E tensors
/// `...local_experts.{e}...`; the fused-norm keys become the separate norms; the MTP
/// `transformer_layer` becomes `mtp_model_layer`.
std::map<std::string, StTensor> testOnlyDistToInMemory(const std::string &key, const StTensor &tensor);

/// Reads every tensor of `source` (bytes included).
std::map<std::string, StTensor> readAll(const TensorSource &source);

} // namespace ckptmap::mcore::test
