// Reading safetensors checkpoints: one file, or a directory of shards with or without
// model.safetensors.index.json. Every header and the index are validated when opening, so
// later reads never meet a malformed file; tensor bytes are views into read-only mappings.
#pragma once

#include "runtime/io/MappedFile.h"
#include "runtime/io/TensorSource.h"

#include <map>

namespace ckptmap {

/// The name of the shard index HF writes beside sharded checkpoints.
inline constexpr llvm::StringLiteral kIndexFileName = "model.safetensors.index.json";
/// The name HF gives an unsharded checkpoint.
inline constexpr llvm::StringLiteral kSingleFileName = "model.safetensors";

/// One opened safetensors file.
struct SafetensorsShard {
  std::string name; ///< relative to the checkpoint root, as SourceTensor::file spells it
  std::string path; ///< as opened; error messages use it
  std::shared_ptr<const MappedFile> file;
  uint64_t dataStart = 0; ///< file offset where the data section begins
  std::map<std::string, std::string> metadata; ///< the file's `__metadata__`
};

class SafetensorsSource final : public TensorSource {
public:
  /// Where a tensor's bytes lie, for callers that copy ranges without mapping them.
  struct Location {
    uint32_t shard;  ///< index into shards()
    uint64_t offset; ///< absolute file offset
    uint64_t size;
  };

  /// `path` is a .safetensors file or a directory holding, in order of preference,
  /// model.safetensors.index.json and its shards, model.safetensors, or any *.safetensors
  /// files (then the files must not share tensor names). Shards present beside an index but
  /// not listed by it are ignored, as HF loaders do.
  static llvm::Expected<std::unique_ptr<SafetensorsSource>> open(llvm::StringRef path);

  const std::string &root() const override { return root_; }
  llvm::ArrayRef<SourceTensor> tensors() const override { return tensors_; }
  llvm::Expected<TensorBytes> read(const SourceTensor &tensor) const override;

  /// Opened files, sorted by name.
  llvm::ArrayRef<SafetensorsShard> shards() const { return shards_; }
  /// Path of the index that was read; empty when there was none.
  const std::string &indexPath() const { return indexPath_; }
  /// nullptr for a tensor this source does not list.
  const Location *location(const SourceTensor &tensor) const;

private:
  SafetensorsSource() = default;
  /// Position of `tensor` in tensors_, accepting entries of this source or equal names.
  std::optional<size_t> indexOf(const SourceTensor &tensor) const;

  std::string root_;
  std::string indexPath_;
  std::vector<SafetensorsShard> shards_;
  std::vector<SourceTensor> tensors_; ///< sorted by name
  std::vector<Location> locations_;   ///< parallel to tensors_
};

/// Opens a safetensors checkpoint; see SafetensorsSource::open.
llvm::Expected<std::unique_ptr<TensorSource>> openSafetensors(llvm::StringRef path);

} // namespace ckptmap
