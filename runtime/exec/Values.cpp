#include "runtime/exec/Values.h"

#include <algorithm>
#include <cstring>

namespace ckptmap {

RtValue::RtValue(ValueType type, TensorBytes bytes) : type_(std::move(type)) {
  if (bytes.size()) {
    segments_.push_back({bytes.data(), bytes.size()});
    starts_.push_back(0);
    total_ = bytes.size();
  }
  keep_.push_back(std::move(bytes));
}

RtValue RtValue::bundle(ValueType type, std::vector<RtValue> parts) {
  RtValue out;
  out.type_ = std::move(type);
  for (const RtValue &p : parts)
    out.owned_ += p.owned_;
  out.parts_ = std::move(parts);
  return out;
}

/// The stored parts of a quantized type; the plan's type rules have checked it is valid.
static std::vector<QuantPart> partsOf(const ValueType &t) {
  auto parts = quantParts(t.quant, t.shape);
  if (!parts) {
    llvm::consumeError(parts.takeError());
    return {};
  }
  return std::move(*parts);
}

void RtValue::keep(const RtValue &other) {
  for (const TensorBytes &b : other.keep_)
    if (std::none_of(keep_.begin(), keep_.end(), [&](const TensorBytes &k) { return k.data() == b.data(); }))
      keep_.push_back(b);
  owned_ = std::max(owned_, other.owned_);
}

std::optional<TensorBytes::FileSpan> RtValue::fileSpanOf(const Segment &s) const {
  for (const TensorBytes &b : keep_)
    if (auto span = b.fileSpanOf(s.data))
      return span;
  return std::nullopt;
}

void RtValue::release(const uint8_t *p, size_t n) const {
  for (const TensorBytes &b : keep_)
    b.release(p, n);
}

void RtValue::release() const {
  for (const Segment &s : segments_)
    release(s.data, s.size);
  for (const RtValue &p : parts_)
    p.release();
}

llvm::ArrayRef<uint8_t> RtValue::contiguous() {
  if (segments_.size() == 1)
    return {segments_[0].data, segments_[0].size};
  if (segments_.empty())
    return {};
  std::vector<uint8_t> buffer(byteSize());
  size_t at = 0;
  for (const Segment &s : segments_) {
    std::memcpy(buffer.data() + at, s.data, s.size);
    at += s.size;
  }
  TensorBytes owned = TensorBytes::owned(std::move(buffer));
  *this = RtValue(type_, owned);
  owned_ = owned.size();
  return {segments_[0].data, segments_[0].size};
}

void RtValue::appendRange(const RtValue &from, uint64_t offset, uint64_t size) {
  if (size == 0)
    return;
  // The segment holding `offset`, then forward until `size` bytes are taken.
  size_t i = size_t(std::upper_bound(from.starts_.begin(), from.starts_.end(), offset) - from.starts_.begin()) - 1;
  uint64_t skip = offset - from.starts_[i];
  while (size > 0 && i < from.segments_.size()) {
    const Segment &s = from.segments_[i];
    size_t take = size_t(std::min<uint64_t>(size, s.size - skip));
    const uint8_t *data = s.data + skip;
    // Adjacent bytes stay one segment, so a slice of a contiguous tensor stays contiguous.
    if (!segments_.empty() && segments_.back().data + segments_.back().size == data) {
      segments_.back().size += take;
    } else {
      starts_.push_back(total_);
      segments_.push_back({data, take});
    }
    total_ += take;
    size -= take;
    skip = 0;
    ++i;
  }
}

RtValue RtValue::slice(int64_t dim, int64_t start, int64_t count) const {
  if (isBundle()) {
    std::vector<QuantPart> layout = partsOf(type_);
    std::vector<RtValue> parts;
    for (size_t i = 0; i < parts_.size(); ++i) {
      PartCut cut = partCut(type_.quant, type_.shape, layout[i], dim, start, count);
      parts.push_back(cut.whole ? parts_[i] : parts_[i].slice(cut.dim, cut.start, cut.count));
    }
    ValueType t = type_;
    t.shape[dim] = count;
    return bundle(std::move(t), std::move(parts));
  }
  RtValue out;
  out.type_ = type_;
  out.type_.shape[dim] = count;
  uint64_t outer = uint64_t(numElements(llvm::ArrayRef<int64_t>(type_.shape).take_front(dim)));
  uint64_t inner = uint64_t(numElements(llvm::ArrayRef<int64_t>(type_.shape).drop_front(dim + 1))) * dtypeSize(type_.dtype);
  uint64_t span = uint64_t(type_.shape[dim]) * inner;
  for (uint64_t o = 0; o < outer; ++o)
    out.appendRange(*this, o * span + uint64_t(start) * inner, uint64_t(count) * inner);
  out.keep(*this);
  return out;
}

RtValue RtValue::concat(llvm::ArrayRef<const RtValue *> parts, int64_t dim) {
  if (parts[0]->isBundle()) {
    const ValueType &first = parts[0]->type_;
    std::vector<QuantPart> layout = partsOf(first);
    std::vector<RtValue> joined;
    for (size_t i = 0; i < layout.size(); ++i) {
      PartCut cut = partCut(first.quant, first.shape, layout[i], dim, 0, first.shape[dim]);
      if (cut.whole) {
        joined.push_back(parts[0]->parts_[i]);
        continue;
      }
      std::vector<const RtValue *> pieces;
      for (const RtValue *p : parts)
        pieces.push_back(&p->parts_[i]);
      joined.push_back(concat(pieces, cut.dim));
    }
    ValueType t = first;
    t.shape[dim] = 0;
    for (const RtValue *p : parts)
      t.shape[dim] += p->type_.shape[dim];
    return bundle(std::move(t), std::move(joined));
  }
  RtValue out;
  out.type_ = parts[0]->type_;
  out.type_.shape[dim] = 0;
  for (const RtValue *p : parts) {
    out.type_.shape[dim] += p->type_.shape[dim];
    out.keep(*p);
  }
  const ValueType &t = parts[0]->type_;
  uint64_t outer = uint64_t(numElements(llvm::ArrayRef<int64_t>(t.shape).take_front(dim)));
  uint64_t inner = uint64_t(numElements(llvm::ArrayRef<int64_t>(t.shape).drop_front(dim + 1))) * dtypeSize(t.dtype);
  for (uint64_t o = 0; o < outer; ++o)
    for (const RtValue *p : parts) {
      uint64_t span = uint64_t(p->type_.shape[dim]) * inner;
      out.appendRange(*p, o * span, span);
    }
  return out;
}

RtValue RtValue::retyped(ValueType type) const {
  RtValue out = *this;
  if (type.quant.quantized()) {
    std::vector<QuantPart> layout = partsOf(type);
    for (size_t i = 0; i < out.parts_.size() && i < layout.size(); ++i)
      out.parts_[i] = out.parts_[i].retyped(ValueType{layout[i].dtype, Shape(layout[i].shape.begin(), layout[i].shape.end())});
  }
  out.type_ = std::move(type);
  return out;
}

bool RtValue::sameBytes(const RtValue &other) const {
  if (isBundle() || other.isBundle()) {
    if (parts_.size() != other.parts_.size())
      return false;
    for (size_t i = 0; i < parts_.size(); ++i)
      if (!parts_[i].sameBytes(other.parts_[i]))
        return false;
    return true;
  }
  if (total_ != other.total_)
    return false;
  // Walk both segment lists in step, comparing the overlapping runs.
  size_t i = 0, j = 0;
  uint64_t oi = 0, oj = 0;
  while (i < segments_.size() && j < other.segments_.size()) {
    uint64_t n = std::min(segments_[i].size - oi, other.segments_[j].size - oj);
    if (std::memcmp(segments_[i].data + oi, other.segments_[j].data + oj, n) != 0)
      return false;
    oi += n;
    oj += n;
    if (oi == segments_[i].size)
      ++i, oi = 0;
    if (oj == other.segments_[j].size)
      ++j, oj = 0;
  }
  return true;
}

} // namespace ckptmap
