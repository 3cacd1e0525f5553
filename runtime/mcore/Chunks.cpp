#include "runtime/mcore/Chunks.h"

#include "runtime/mcore/Errors.h"

#include <algorithm>
#include <cstring>

namespace ckptmap::mcore {

Shape contiguousStrides(llvm::ArrayRef<int64_t> shape) {
  Shape s(shape.size());
  int64_t acc = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

namespace {

std::string describe(const Box &b) {
  return "offsets " + formatIndex(b.offsets) + " sizes " + formatIndex(b.sizes);
}

bool overlap(const Box &a, const Box &b) {
  for (size_t d = 0; d < a.offsets.size(); ++d)
    if (a.offsets[d] + a.sizes[d] <= b.offsets[d] || b.offsets[d] + b.sizes[d] <= a.offsets[d])
      return false;
  return true;
}

} // namespace

llvm::Error checkExactCover(const std::string &where, const std::string &key, llvm::ArrayRef<int64_t> shape,
                            llvm::ArrayRef<Box> boxes) {
  auto fail = [&](const std::string &what) {
    return makeError(where + ": tensor '" + key + "' " + formatShape(shape) + ": " + what);
  };
  const size_t rank = shape.size();
  for (const Box &b : boxes) {
    if (b.offsets.size() != rank || b.sizes.size() != rank)
      return fail("chunk " + describe(b) + " has the wrong number of dimensions");
    for (size_t d = 0; d < rank; ++d)
      if (b.offsets[d] < 0 || b.sizes[d] < 0 || b.offsets[d] > shape[d] || b.sizes[d] > shape[d] - b.offsets[d])
        return fail("chunk " + describe(b) + " lies outside the tensor");
  }
  if (numElements(shape) == 0)
    return llvm::Error::success();

  // Cut every dimension at every chunk boundary; each chunk then covers whole cells, and
  // counting cells finds overlaps and gaps exactly.
  std::vector<std::vector<int64_t>> cuts(rank);
  uint64_t cells = 1;
  for (size_t d = 0; d < rank; ++d) {
    cuts[d] = {0, shape[d]};
    for (const Box &b : boxes) {
      cuts[d].push_back(b.offsets[d]);
      cuts[d].push_back(b.offsets[d] + b.sizes[d]);
    }
    std::sort(cuts[d].begin(), cuts[d].end());
    cuts[d].erase(std::unique(cuts[d].begin(), cuts[d].end()), cuts[d].end());
    cells *= cuts[d].size() - 1;
    if (cells > (uint64_t(1) << 24))
      break;
  }
  if (cells <= (uint64_t(1) << 24)) {
    std::vector<int32_t> owner(cells, -1);
    for (size_t i = 0; i < boxes.size(); ++i) {
      const Box &b = boxes[i];
      if (numElements(b.sizes) == 0)
        continue;
      std::vector<size_t> lo(rank), hi(rank), idx(rank);
      for (size_t d = 0; d < rank; ++d) {
        lo[d] = std::lower_bound(cuts[d].begin(), cuts[d].end(), b.offsets[d]) - cuts[d].begin();
        hi[d] = std::lower_bound(cuts[d].begin(), cuts[d].end(), b.offsets[d] + b.sizes[d]) - cuts[d].begin();
      }
      idx = lo;
      bool done = false;
      while (!done) {
        size_t cell = 0;
        for (size_t d = 0; d < rank; ++d)
          cell = cell * (cuts[d].size() - 1) + idx[d];
        if (owner[cell] >= 0)
          return fail("chunk " + describe(boxes[owner[cell]]) + " overlaps chunk " + describe(b));
        owner[cell] = int32_t(i);
        for (size_t d = rank;;) {
          if (d == 0) {
            done = true;
            break;
          }
          --d;
          if (++idx[d] < hi[d])
            break;
          idx[d] = lo[d];
        }
      }
    }
    for (uint64_t cell = 0; cell < cells; ++cell) {
      if (owner[cell] >= 0)
        continue;
      Box gap;
      uint64_t rest = cell;
      gap.offsets.resize(rank);
      gap.sizes.resize(rank);
      for (size_t d = rank; d-- > 0;) {
        uint64_t n = cuts[d].size() - 1;
        size_t k = rest % n;
        rest /= n;
        gap.offsets[d] = cuts[d][k];
        gap.sizes[d] = cuts[d][k + 1] - cuts[d][k];
      }
      return fail("no chunk covers the block at " + describe(gap));
    }
    return llvm::Error::success();
  }

  // Too many cells to count: pairwise overlaps by a sweep along dimension 0, then volume.
  std::vector<size_t> order(boxes.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return boxes[a].offsets[0] < boxes[b].offsets[0]; });
  Int128 volume = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    const Box &a = boxes[order[i]];
    volume += numElements(a.sizes);
    for (size_t j = i + 1; j < order.size() && boxes[order[j]].offsets[0] < a.offsets[0] + a.sizes[0]; ++j)
      if (numElements(a.sizes) && numElements(boxes[order[j]].sizes) && overlap(a, boxes[order[j]]))
        return fail("chunk " + describe(a) + " overlaps chunk " + describe(boxes[order[j]]));
  }
  if (volume != numElements(shape))
    return fail("chunks cover " + std::to_string(int64_t(volume)) + " of " + std::to_string(numElements(shape)) +
                " elements");
  return llvm::Error::success();
}

void copyBlock(uint8_t *dst, llvm::ArrayRef<int64_t> dstShape, llvm::ArrayRef<int64_t> to, const StridedView &src,
               llvm::ArrayRef<int64_t> from, llvm::ArrayRef<int64_t> sizes, size_t elemSize) {
  const size_t rank = sizes.size();
  if (numElements(sizes) == 0)
    return;
  if (rank == 0) {
    std::memcpy(dst, src.base + src.offset * elemSize, elemSize);
    return;
  }
  Shape dstStride = contiguousStrides(dstShape);
  const int64_t inner = sizes[rank - 1];
  const bool innerContiguous = src.stride[rank - 1] == 1;
  std::vector<int64_t> idx(rank, 0); // position within the block, last dim handled per row
  while (true) {
    int64_t s = src.offset, t = 0;
    for (size_t d = 0; d < rank; ++d) {
      s += (from[d] + idx[d]) * src.stride[d];
      t += (to[d] + idx[d]) * dstStride[d];
    }
    if (innerContiguous) {
      std::memcpy(dst + t * elemSize, src.base + s * elemSize, size_t(inner) * elemSize);
    } else {
      for (int64_t k = 0; k < inner; ++k)
        std::memcpy(dst + (t + k) * elemSize, src.base + (s + k * src.stride[rank - 1]) * elemSize, elemSize);
    }
    // next row
    size_t d = rank - 1;
    while (d-- > 0) {
      if (++idx[d] < sizes[d])
        break;
      idx[d] = 0;
    }
    if (d == SIZE_MAX)
      return;
  }
}

} // namespace ckptmap::mcore
