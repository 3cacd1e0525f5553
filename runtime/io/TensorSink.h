// Where a conversion's output tensors go, whatever the format: a fixed list of tensors
// written whole or in pieces, in any order and from any thread, plus side files; nothing
// shows at the destination until finish() succeeds.
#pragma once

#include "runtime/io/TensorSource.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <optional>
#include <string>

namespace ckptmap {

class TensorSink {
public:
  virtual ~TensorSink();

  /// Writes bytes [offset, offset + size) of tensor `tensorIndex` (an index into the list
  /// the sink was created with). Pieces of one tensor must not overlap; together they must
  /// cover it. `from` says where the bytes also lie in an input file, for file-to-file copies.
  virtual llvm::Error writePart(size_t tensorIndex, uint64_t offset, llvm::ArrayRef<uint8_t> bytes,
                                std::optional<TensorBytes::FileSpan> from = std::nullopt) = 0;
  /// Writes the whole of one tensor.
  virtual llvm::Error write(size_t tensorIndex, llvm::ArrayRef<uint8_t> bytes) = 0;
  /// Adds a non-tensor file beside the tensors, replacing a carried file of the same name.
  virtual void addFile(std::string name, std::string contents) = 0;
  /// Where the output is built until finish(): a subdirectory made here moves with it.
  virtual const std::string &stagingDir() const = 0;
  /// Checks that every tensor was written, writes the format's own files and the side
  /// files, syncs, and moves the output into place.
  virtual llvm::Error finish() = 0;
};

} // namespace ckptmap
