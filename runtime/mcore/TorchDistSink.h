// A conversion's output written as a torch_dist checkpoint: the TensorSink the interpreter
// writes to when the output is MCore in Megatron-Core's own format. Pieces of a tensor may
// arrive in any order from any thread; each chunk is stored as soon as it is complete, so
// memory holds at most the chunks being assembled.
#pragma once

#include "runtime/io/TensorSink.h"
#include "runtime/mcore/TorchDistWriter.h"

#include <mutex>

namespace ckptmap::mcore {

/// Tensors larger than this are stored as several chunks along their first dim.
inline constexpr uint64_t kMaxChunkBytes = uint64_t(256) << 20;

/// The chunks a tensor is stored as: one per expert for stacked experts (as Megatron-Core
/// stores them), else the fewest row blocks of at most kMaxChunkBytes each.
std::vector<Box> chunksFor(const TensorMeta &tensor);

class TorchDistSink final : public TensorSink {
public:
  static llvm::Expected<std::unique_ptr<TorchDistSink>> create(std::vector<TensorMeta> tensors, const std::string &dir,
                                                               TorchDistWriteOptions options);

  llvm::Error writePart(size_t tensorIndex, uint64_t offset, llvm::ArrayRef<uint8_t> bytes,
                        std::optional<TensorBytes::FileSpan> from = std::nullopt) override;
  llvm::Error write(size_t tensorIndex, llvm::ArrayRef<uint8_t> bytes) override {
    return writePart(tensorIndex, 0, bytes);
  }
  void addFile(std::string name, std::string contents) override;
  const std::string &stagingDir() const override { return stagingDir_; }
  llvm::Error finish() override;

private:
  struct Chunk {
    uint64_t begin = 0, end = 0; ///< byte range of the tensor (chunks split the first dim only)
    std::vector<uint8_t> buffer; ///< while assembled from pieces
    uint64_t received = 0;
    bool stored = false;
  };
  TorchDistSink() = default;

  std::vector<TensorMeta> tensors_;
  std::vector<std::vector<Chunk>> chunks_;
  std::unique_ptr<TorchDistWriter> writer_;
  std::string stagingDir_;
  std::mutex mutex_;
};

} // namespace ckptmap::mcore
