// Runtime values of a plan step. A value is a list of byte ranges ("segments") in order:
// structural ops (split, concat, qkv, stack and their inverses) only rearrange the list, so a
// rename or a fuse never copies bytes until the final write, and a tensor read from a mapped
// file is written straight from the page cache. Compute ops materialize their operands.
// A quantized value is a bundle: one plain value per stored part (data, scales), which the
// structural ops cut and join together (compiler/quant/QuantType.h partCut).
#pragma once

#include "compiler/plan/Plan.h"
#include "runtime/io/TensorSource.h"

#include <vector>

namespace ckptmap {

struct Segment {
  const uint8_t *data;
  size_t size;
};

class RtValue {
public:
  RtValue() = default;
  RtValue(ValueType type, TensorBytes bytes);
  /// A quantized value from its parts, in quantParts() order.
  static RtValue bundle(ValueType type, std::vector<RtValue> parts);

  bool isBundle() const { return type_.quant.quantized(); }
  llvm::ArrayRef<RtValue> parts() const { return parts_; }
  RtValue &part(size_t i) { return parts_[i]; }

  const ValueType &type() const { return type_; }
  uint64_t byteSize() const { return type_.byteSize(); }
  llvm::ArrayRef<Segment> segments() const { return segments_; }
  /// One contiguous run of bytes: either the single segment itself, or a copy made once.
  llvm::ArrayRef<uint8_t> contiguous();
  /// Bytes this value owns beyond views of mapped files (for the memory budget).
  uint64_t ownedBytes() const { return owned_; }
  /// Where a segment's bytes lie in an input file, when they are a view of one.
  std::optional<TensorBytes::FileSpan> fileSpanOf(const Segment &s) const;
  /// Releases the pages of [p, p + n), bytes of this value that lie in a mapped file
  /// (TensorBytes::release); every part of a bundle when called without a range.
  void release(const uint8_t *p, size_t n) const;
  void release() const;

  /// [start, start + count) along `dim`.
  RtValue slice(int64_t dim, int64_t start, int64_t count) const;
  /// The parts joined along `dim`; every part has the same shape but along `dim`. Bundles
  /// join part by part; a per-matrix scale is taken from the first (the caller has checked
  /// that they agree).
  static RtValue concat(llvm::ArrayRef<const RtValue *> parts, int64_t dim);
  /// The same bytes under another type of equal size (a bundle's parts retyped to match).
  RtValue retyped(ValueType type) const;
  /// Whether two values hold the same bytes (every part of a bundle).
  bool sameBytes(const RtValue &other) const;

private:
  void appendRange(const RtValue &from, uint64_t offset, uint64_t size);
  void keep(const RtValue &other);

  ValueType type_;
  std::vector<Segment> segments_;
  std::vector<uint64_t> starts_; ///< byte offset of each segment within the value
  uint64_t total_ = 0;           ///< bytes the segments hold
  std::vector<TensorBytes> keep_; ///< owners of the bytes the segments point into
  uint64_t owned_ = 0;
  std::vector<RtValue> parts_; ///< a bundle's parts
};

} // namespace ckptmap
