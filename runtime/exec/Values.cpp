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

void RtValue::keep(const RtValue &other) {
  for (const TensorBytes &b : other.keep_)
    if (std::none_of(keep_.begin(), keep_.end(), [&](const TensorBytes &k) { return k.data() == b.data(); }))
      keep_.push_back(b);
  owned_ = std::max(owned_, other.owned_);
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
  out.type_ = std::move(type);
  return out;
}

} // namespace ckptmap
