#include "runtime/exec/Chunked.h"

#include "kernels/Cast.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unistd.h>

namespace ckptmap {

namespace {

llvm::Error chunkError(const Step &step, const std::string &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), "%s (%s, %s)", message.c_str(), step.summary.c_str(),
                                 step.rule.c_str());
}

/// The instructions between the load and the stores.
llvm::ArrayRef<Instr> opsOf(const Step &step) {
  size_t end = step.instrs.size();
  while (end > 1 && step.instrs[end - 1].op == InstrOp::Store)
    --end;
  return llvm::ArrayRef<Instr>(step.instrs).slice(1, end - 1);
}

/// A transpose that swaps the last two dims and keeps the others.
bool swapsLastTwo(const Instr &t) {
  size_t rank = t.perm.size();
  if (rank < 2 || t.perm[rank - 1] != int64_t(rank - 2) || t.perm[rank - 2] != int64_t(rank - 1))
    return false;
  for (size_t d = 0; d + 2 < rank; ++d)
    if (t.perm[d] != int64_t(d))
      return false;
  return true;
}

/// Copies bytes [offset, offset + size) of `value` to `dst`: with pread where they lie in a
/// file, so the mapping stays untouched, else from memory.
llvm::Error readRange(const Step &step, const RtValue &value, uint64_t offset, size_t size, uint8_t *dst) {
  uint64_t start = 0;
  for (const Segment &s : value.segments()) {
    uint64_t end = start + s.size;
    if (size > 0 && offset < end) {
      size_t skip = size_t(offset - start), take = std::min<size_t>(size, s.size - skip);
      if (auto file = value.fileSpanOf(s)) {
        for (size_t done = 0; done < take;) {
          ssize_t n = ::pread(file->fd, dst + done, take - done, off_t(file->offset + skip + done));
          if (n < 0 && errno == EINTR)
            continue;
          if (n <= 0)
            return chunkError(step, std::string("cannot read the input: ") + (n < 0 ? std::strerror(errno) : "it ends early"));
          done += size_t(n);
        }
      } else {
        std::memcpy(dst, s.data + skip, take);
      }
      dst += take;
      offset += take;
      size -= take;
    }
    start = end;
  }
  return llvm::Error::success();
}

llvm::Error runElementwise(const Step &step, const RtValue &input, uint64_t budget, const ChunkStore &store) {
  llvm::ArrayRef<Instr> ops = opsOf(step);
  // Every value of the chain is held one piece at a time.
  uint64_t perElement = dtypeSize(input.type().dtype);
  for (const Instr &op : ops)
    perElement += dtypeSize(step.values[op.out[0]].dtype);
  const uint64_t total = uint64_t(numElements(input.type().shape));
  const uint64_t chunk = std::max<uint64_t>(1, budget / perElement);
  std::vector<uint8_t> in, out;
  for (uint64_t first = 0; first < total; first += chunk) {
    const size_t n = size_t(std::min(chunk, total - first));
    DType dtype = input.type().dtype;
    in.resize(n * dtypeSize(dtype));
    if (auto e = readRange(step, input, first * dtypeSize(dtype), in.size(), in.data()))
      return e;
    for (const Instr &op : ops) {
      DType to = step.values[op.out[0]].dtype;
      if (op.op == InstrOp::Reshape)
        continue;
      out.resize(n * dtypeSize(to));
      KernelStatus s = op.op == InstrOp::Cast
                           ? cpu::castTensor(dtype, in.data(), to, out.data(), n)
                           : cpu::affineTensor(dtype, in.data(), to, out.data(), n, op.scale, op.shift);
      if (!s)
        return chunkError(step, std::string(instrOpName(op.op)) + " failed: " + s.message());
      std::swap(in, out);
      dtype = to;
    }
    if (auto e = store(first * dtypeSize(dtype), in))
      return e;
  }
  return llvm::Error::success();
}

/// [..., R, C] -> [..., C, R], a block of output rows at a time.
llvm::Error runTranspose(const Step &step, const RtValue &input, uint64_t budget, const ChunkStore &store) {
  const Shape &shape = input.type().shape;
  const size_t elem = dtypeSize(input.type().dtype);
  const int64_t rows = shape[shape.size() - 2], cols = shape.back();
  const int64_t matrices = numElements(shape) / std::max<int64_t>(1, rows * cols);
  // A block holds its output rows and one input row's piece of them.
  const int64_t block = std::clamp<int64_t>(int64_t(budget / (uint64_t(rows + 1) * elem)), 1, cols);
  std::vector<uint8_t> out, piece;
  for (int64_t m = 0; m < matrices; ++m) {
    const uint64_t matrix = uint64_t(m) * uint64_t(rows * cols) * elem;
    for (int64_t c0 = 0; c0 < cols; c0 += block) {
      const int64_t width = std::min(block, cols - c0);
      out.resize(size_t(width * rows) * elem);
      piece.resize(size_t(width) * elem);
      for (int64_t r = 0; r < rows; ++r) {
        if (auto e = readRange(step, input, matrix + uint64_t(r * cols + c0) * elem, piece.size(), piece.data()))
          return e;
        for (int64_t c = 0; c < width; ++c)
          std::memcpy(out.data() + size_t(c * rows + r) * elem, piece.data() + size_t(c) * elem, elem);
      }
      if (auto e = store(matrix + uint64_t(c0 * rows) * elem, out))
        return e;
    }
  }
  return llvm::Error::success();
}

} // namespace

bool chunkable(const Step &step) {
  if (step.instrs.size() < 2 || step.instrs[0].op != InstrOp::Load || step.values[step.instrs[0].out[0]].quant.quantized())
    return false;
  llvm::ArrayRef<Instr> ops = opsOf(step);
  if (ops.empty())
    return false;
  uint32_t last = step.instrs[0].out[0];
  bool transpose = ops.size() == 1 && ops[0].op == InstrOp::Transpose && swapsLastTwo(ops[0]);
  for (const Instr &op : ops) {
    bool elementwise = op.op == InstrOp::Cast || op.op == InstrOp::Affine || op.op == InstrOp::Reshape;
    if ((!elementwise && !transpose) || op.in.size() != 1 || op.in[0] != last || op.out.size() != 1 ||
        step.values[op.out[0]].quant.quantized())
      return false;
    last = op.out[0];
  }
  for (const Instr &store : llvm::ArrayRef<Instr>(step.instrs).drop_front(1 + ops.size()))
    if (store.in.size() != 1 || store.in[0] != last)
      return false;
  return true;
}

llvm::Error runChunked(const Step &step, const RtValue &input, uint64_t budget, const ChunkStore &store) {
  return opsOf(step).front().op == InstrOp::Transpose ? runTranspose(step, input, budget, store)
                                                      : runElementwise(step, input, budget, store);
}

} // namespace ckptmap
