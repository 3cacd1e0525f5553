#include "runtime/mcore/TorchDistSink.h"

#include "runtime/mcore/Errors.h"

#include <algorithm>
#include <cstring>

namespace ckptmap::mcore {

std::vector<Box> chunksFor(const TensorMeta &tensor) {
  const Shape &shape = tensor.shape;
  const uint64_t bytes = tensor.byteSize();
  int64_t parts = 1;
  if (!shape.empty() && shape[0] > 1) {
    if (llvm::StringRef(tensor.name).contains(".experts.experts."))
      parts = shape[0];
    else if (bytes > kMaxChunkBytes)
      parts = std::min<int64_t>(shape[0], int64_t((bytes + kMaxChunkBytes - 1) / kMaxChunkBytes));
  }
  std::vector<Box> boxes;
  for (int64_t p = 0; p < parts; ++p) {
    Box box{Shape(shape.size(), 0), shape};
    if (parts > 1) {
      int64_t begin = shape[0] * p / parts, end = shape[0] * (p + 1) / parts;
      box.offsets[0] = begin;
      box.sizes[0] = end - begin;
    }
    boxes.push_back(std::move(box));
  }
  return boxes;
}

llvm::Expected<std::unique_ptr<TorchDistSink>> TorchDistSink::create(std::vector<TensorMeta> tensors,
                                                                     const std::string &dir,
                                                                     TorchDistWriteOptions options) {
  std::unique_ptr<TorchDistSink> sink(new TorchDistSink());
  std::vector<DistWriteEntry> entries;
  for (const TensorMeta &t : tensors) {
    DistWriteEntry e = DistWriteEntry::tensor(t.name, t.dtype, t.shape);
    e.chunks = chunksFor(t);
    const uint64_t rowBytes = t.shape.empty() || t.shape[0] == 0 ? 0 : t.byteSize() / uint64_t(t.shape[0]);
    std::vector<Chunk> chunks(e.chunks.size());
    for (size_t c = 0; c < chunks.size(); ++c) {
      const Box &box = e.chunks[c];
      chunks[c].begin = box.offsets.empty() ? 0 : uint64_t(box.offsets[0]) * rowBytes;
      chunks[c].end = box.offsets.empty() ? t.byteSize() : chunks[c].begin + uint64_t(box.sizes[0]) * rowBytes;
    }
    sink->chunks_.push_back(std::move(chunks));
    entries.push_back(std::move(e));
  }
  auto writer = TorchDistWriter::create(dir, std::move(entries), std::move(options));
  if (!writer)
    return writer.takeError();
  sink->writer_ = std::move(*writer);
  sink->stagingDir_ = sink->writer_->dataDir();
  sink->tensors_ = std::move(tensors);
  return sink;
}

llvm::Error TorchDistSink::writePart(size_t tensorIndex, uint64_t offset, llvm::ArrayRef<uint8_t> bytes,
                                     std::optional<TensorBytes::FileSpan>) {
  if (tensorIndex >= tensors_.size())
    return makeError(writer_->dataDir() + ": tensor index " + std::to_string(tensorIndex) + " is out of range");
  const std::string &name = tensors_[tensorIndex].name;
  const uint64_t end = offset + bytes.size();
  // Decided under the lock, written after it: the writer itself is thread-safe.
  struct Ready {
    size_t chunk;
    llvm::ArrayRef<uint8_t> bytes;
    std::vector<uint8_t> assembled;
  };
  std::vector<Ready> ready;
  {
    std::lock_guard lock(mutex_);
    std::vector<Chunk> &chunks = chunks_[tensorIndex];
    if (end < offset || end > chunks.back().end)
      return makeError("tensor '" + name + "': bytes [" + std::to_string(offset) + ", " + std::to_string(end) +
                       ") fall outside its " + std::to_string(chunks.back().end) + " bytes");
    for (size_t c = 0; c < chunks.size(); ++c) {
      Chunk &chunk = chunks[c];
      const uint64_t lo = std::max(offset, chunk.begin), hi = std::min(end, chunk.end);
      const bool empty = chunk.begin == chunk.end;
      if (lo >= hi && !(empty && offset == chunk.begin))
        continue;
      if (chunk.stored || chunk.received + (hi - lo) > chunk.end - chunk.begin)
        return makeError("tensor '" + name + "' is written twice");
      llvm::ArrayRef<uint8_t> piece = bytes.slice(lo - offset, hi - lo);
      if (chunk.received == 0 && lo == chunk.begin && hi == chunk.end) {
        chunk.stored = true;
        ready.push_back({c, piece, {}});
        continue;
      }
      // A chunk assembled from several pieces waits for all of them.
      if (chunk.buffer.empty())
        chunk.buffer.resize(chunk.end - chunk.begin);
      std::memcpy(chunk.buffer.data() + (lo - chunk.begin), piece.data(), piece.size());
      chunk.received += piece.size();
      if (chunk.received == chunk.end - chunk.begin) {
        chunk.stored = true;
        ready.push_back({c, {}, std::move(chunk.buffer)});
        chunk.buffer = {};
      }
    }
  }
  for (Ready &r : ready)
    if (auto e = writer_->writeChunk(name, r.chunk, r.assembled.empty() ? r.bytes : llvm::ArrayRef<uint8_t>(r.assembled)))
      return e;
  return llvm::Error::success();
}

void TorchDistSink::addFile(std::string name, std::string contents) {
  writer_->addFile(std::move(name), std::move(contents));
}

llvm::Error TorchDistSink::finish() { return writer_->finish(); }

} // namespace ckptmap::mcore
