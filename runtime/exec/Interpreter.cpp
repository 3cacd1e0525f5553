#include "runtime/exec/Interpreter.h"

#include "runtime/exec/Values.h"

#include "kernels/Cast.h"

#include "llvm/ADT/StringMap.h"

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

namespace ckptmap {

namespace {

llvm::Error stepError(const Step &step, const std::string &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), "%s (%s, %s)", message.c_str(), step.summary.c_str(),
                                 step.rule.c_str());
}

/// Bytes of working memory a step may hold at once: values that compute ops materialize.
/// Structural ops only rearrange views, so a rename of a 10 GB tensor needs none.
uint64_t workingBytes(const Step &step) {
  uint64_t total = 0;
  for (const Instr &instr : step.instrs) {
    switch (instr.op) {
    case InstrOp::Transpose:
    case InstrOp::Cast:
    case InstrOp::Affine:
    case InstrOp::Stash:
      for (uint32_t v : instr.in)
        total += step.values[v].byteSize();
      [[fallthrough]];
    case InstrOp::Fill:
      for (uint32_t v : instr.out)
        total += step.values[v].byteSize();
      break;
    default:
      break;
    }
  }
  return total;
}

/// Admits steps while their working memory fits the budget. A step larger than the whole
/// budget runs alone rather than never.
class MemoryBudget {
public:
  explicit MemoryBudget(uint64_t limit) : limit_(limit) {}
  void acquire(uint64_t bytes) {
    if (!limit_)
      return;
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return used_ == 0 || used_ + bytes <= limit_; });
    used_ += bytes;
  }
  void release(uint64_t bytes) {
    if (!limit_)
      return;
    std::lock_guard lock(mutex_);
    used_ -= bytes;
    cv_.notify_all();
  }

private:
  uint64_t limit_;
  uint64_t used_ = 0;
  std::mutex mutex_;
  std::condition_variable cv_;
};

class StepRunner {
public:
  StepRunner(const Plan &plan, const ExecSources &sources, CheckpointWriter &writer,
             const llvm::StringMap<size_t> &outputIndex, ExecProgress *progress)
      : plan_(plan), sources_(sources), writer_(writer), outputIndex_(outputIndex), progress_(progress) {}

  /// Runs one step; appends to `stash` the dropped tensors that differ from their copy.
  llvm::Error run(const Step &step, std::vector<std::string> &stash);

private:
  llvm::Expected<RtValue> load(const Step &step, const Instr &instr);
  llvm::Error store(const Step &step, const std::string &name, const RtValue &value);
  llvm::Expected<RtValue> compute(const Step &step, const Instr &instr, std::vector<RtValue> &values);

  const Plan &plan_;
  const ExecSources &sources_;
  CheckpointWriter &writer_;
  const llvm::StringMap<size_t> &outputIndex_;
  ExecProgress *progress_;
};

llvm::Expected<RtValue> StepRunner::load(const Step &step, const Instr &instr) {
  const TensorSource *source = instr.source == LoadSource::Stash  ? sources_.stash
                               : instr.source == LoadSource::Base ? sources_.base
                                                                  : sources_.input;
  const char *what = instr.source == LoadSource::Stash ? "the kept-aside tensors"
                     : instr.source == LoadSource::Base ? "the --hf-base checkpoint"
                                                        : "the input";
  if (!source)
    return stepError(step, std::string("the plan reads '") + instr.tensor + "' from " + what + ", which was not given");
  const SourceTensor *tensor = source->find(instr.tensor);
  if (!tensor)
    return stepError(step, "'" + instr.tensor + "' is not in " + what);
  const ValueType &type = step.values[instr.out[0]];
  if (tensor->meta.dtype != type.dtype || tensor->meta.shape != type.shape)
    return stepError(step, "'" + instr.tensor + "' is " + std::string(dtypeName(tensor->meta.dtype)) + " " +
                               formatShape(tensor->meta.shape) + " in " + what + " but the plan expects " +
                               std::string(dtypeName(type.dtype)) + " " + formatShape(type.shape));
  auto bytes = source->read(*tensor);
  if (!bytes)
    return bytes.takeError();
  if (bytes->size() != type.byteSize())
    return stepError(step, "'" + instr.tensor + "' has " + std::to_string(bytes->size()) + " bytes, expected " +
                               std::to_string(type.byteSize()));
  return RtValue(type, std::move(*bytes));
}

llvm::Error StepRunner::store(const Step &step, const std::string &name, const RtValue &value) {
  auto it = outputIndex_.find(name);
  if (it == outputIndex_.end())
    return stepError(step, "'" + name + "' is not an output of the plan");
  // Large segments go straight from their mapping to the file; runs of small ones (a concat
  // along an inner dim) are gathered into a buffer first so each write is sizeable.
  constexpr size_t kGather = 8u << 20;
  std::vector<uint8_t> buffer;
  uint64_t offset = 0, bufferStart = 0;
  auto flush = [&]() -> llvm::Error {
    if (buffer.empty())
      return llvm::Error::success();
    if (auto e = writer_.writePart(it->second, bufferStart, buffer))
      return e;
    buffer.clear();
    return llvm::Error::success();
  };
  if (value.segments().empty())
    if (auto e = writer_.writePart(it->second, 0, {}))
      return e;
  for (const Segment &s : value.segments()) {
    if (s.size >= kGather) {
      if (auto e = flush())
        return e;
      if (auto e = writer_.writePart(it->second, offset, llvm::ArrayRef<uint8_t>(s.data, s.size)))
        return e;
    } else {
      if (buffer.empty())
        bufferStart = offset;
      buffer.insert(buffer.end(), s.data, s.data + s.size);
      if (buffer.size() >= kGather)
        if (auto e = flush())
          return e;
    }
    offset += s.size;
  }
  if (auto e = flush())
    return e;
  if (progress_) {
    progress_->bytesWritten += value.byteSize();
    progress_->tensorsWritten += 1;
  }
  return llvm::Error::success();
}

/// Permutes the dims of a row-major tensor of `elem`-byte elements.
void transposeBytes(const uint8_t *src, uint8_t *dst, llvm::ArrayRef<int64_t> shape, llvm::ArrayRef<int64_t> perm,
                    size_t elem) {
  size_t rank = shape.size();
  std::vector<int64_t> outShape(rank), srcStride(rank), outIndex(rank, 0);
  int64_t stride = 1;
  for (size_t d = rank; d-- > 0;) {
    srcStride[d] = stride;
    stride *= shape[d];
  }
  for (size_t d = 0; d < rank; ++d)
    outShape[d] = shape[perm[d]];
  int64_t total = numElements(shape);
  for (int64_t i = 0; i < total; ++i) {
    int64_t from = 0;
    for (size_t d = 0; d < rank; ++d)
      from += outIndex[d] * srcStride[perm[d]];
    std::memcpy(dst + size_t(i) * elem, src + size_t(from) * elem, elem);
    for (size_t d = rank; d-- > 0;) {
      if (++outIndex[d] < outShape[d])
        break;
      outIndex[d] = 0;
    }
  }
}

llvm::Expected<RtValue> StepRunner::compute(const Step &step, const Instr &instr, std::vector<RtValue> &values) {
  const ValueType &outType = step.values[instr.out[0]];
  auto kernelError = [&](const KernelStatus &status) {
    return stepError(step, std::string(instrOpName(instr.op)) + " failed: " + status.message());
  };
  std::vector<uint8_t> out(outType.byteSize());
  switch (instr.op) {
  case InstrOp::Transpose: {
    RtValue &in = values[instr.in[0]];
    transposeBytes(in.contiguous().data(), out.data(), in.type().shape, instr.perm, dtypeSize(in.type().dtype));
    break;
  }
  case InstrOp::Cast: {
    RtValue &in = values[instr.in[0]];
    KernelStatus s = cpu::castTensor(in.type().dtype, in.contiguous().data(), outType.dtype, out.data(),
                                     size_t(numElements(outType.shape)));
    if (!s)
      return kernelError(s);
    break;
  }
  case InstrOp::Affine: {
    RtValue &in = values[instr.in[0]];
    KernelStatus s = cpu::affineTensor(in.type().dtype, in.contiguous().data(), outType.dtype, out.data(),
                                       size_t(numElements(outType.shape)), instr.scale, instr.shift);
    if (!s)
      return kernelError(s);
    break;
  }
  case InstrOp::Fill: {
    // One element converted exactly as a cast would, then repeated.
    size_t elem = dtypeSize(outType.dtype);
    std::vector<uint8_t> one(elem);
    KernelStatus s = cpu::castTensor(DType::F64, &instr.value, outType.dtype, one.data(), 1);
    if (!s)
      return kernelError(s);
    for (size_t at = 0; at < out.size(); at += elem)
      std::memcpy(out.data() + at, one.data(), elem);
    break;
  }
  default:
    return stepError(step, "not a compute instruction");
  }
  return RtValue(outType, TensorBytes::owned(std::move(out)));
}

llvm::Error StepRunner::run(const Step &step, std::vector<std::string> &stash) {
  std::vector<RtValue> values(step.values.size());
  for (const Instr &instr : step.instrs) {
    switch (instr.op) {
    case InstrOp::Load: {
      auto v = load(step, instr);
      if (!v)
        return v.takeError();
      values[instr.out[0]] = std::move(*v);
      break;
    }
    case InstrOp::Store:
      if (auto e = store(step, instr.tensor, values[instr.in[0]]))
        return e;
      break;
    case InstrOp::Stash: {
      llvm::ArrayRef<uint8_t> a = values[instr.in[0]].contiguous(), b = values[instr.in[1]].contiguous();
      if (a.size() != b.size() || std::memcmp(a.data(), b.data(), a.size()) != 0)
        stash.push_back(instr.tensor);
      break;
    }
    case InstrOp::Concat:
    case InstrOp::Stack: {
      std::vector<RtValue> parts;
      std::vector<const RtValue *> ptrs;
      for (uint32_t v : instr.in) {
        RtValue part = values[v];
        if (instr.op == InstrOp::Stack) {
          ValueType t = part.type();
          t.shape.insert(t.shape.begin(), 1);
          part = part.retyped(t);
        }
        parts.push_back(std::move(part));
      }
      for (const RtValue &p : parts)
        ptrs.push_back(&p);
      values[instr.out[0]] = RtValue::concat(ptrs, instr.op == InstrOp::Stack ? 0 : instr.dim);
      break;
    }
    case InstrOp::Split: {
      const RtValue &in = values[instr.in[0]];
      int64_t at = 0;
      for (size_t i = 0; i < instr.sizes.size(); ++i) {
        values[instr.out[i]] = in.slice(instr.dim, at, instr.sizes[i]);
        at += instr.sizes[i];
      }
      break;
    }
    case InstrOp::Unstack: {
      const RtValue &in = values[instr.in[0]];
      for (size_t i = 0; i < instr.out.size(); ++i)
        values[instr.out[i]] = in.slice(0, int64_t(i), 1).retyped(step.values[instr.out[i]]);
      break;
    }
    case InstrOp::QkvFuse:
    case InstrOp::QkvSplit: {
      // MCore's grouped layout: per group, its query heads (then their gate heads when the
      // attention is gated), one key head, one value head; HF's gated q holds per head its
      // query rows then its gate rows.
      const int64_t d = instr.headDim, perGroup = instr.heads / instr.groups, g = instr.groups;
      const int64_t qStride = instr.gate ? 2 * d : d;
      const int64_t groupRows = perGroup * qStride + 2 * d;
      if (instr.op == InstrOp::QkvFuse) {
        const RtValue &q = values[instr.in[0]], &k = values[instr.in[1]], &v = values[instr.in[2]];
        std::vector<RtValue> pieces;
        for (int64_t grp = 0; grp < g; ++grp) {
          for (int64_t h = 0; h < perGroup; ++h)
            pieces.push_back(q.slice(0, (grp * perGroup + h) * qStride, d));
          if (instr.gate)
            for (int64_t h = 0; h < perGroup; ++h)
              pieces.push_back(q.slice(0, (grp * perGroup + h) * qStride + d, d));
          pieces.push_back(k.slice(0, grp * d, d));
          pieces.push_back(v.slice(0, grp * d, d));
        }
        std::vector<const RtValue *> ptrs;
        for (const RtValue &p : pieces)
          ptrs.push_back(&p);
        values[instr.out[0]] = RtValue::concat(ptrs, 0);
      } else {
        const RtValue &fused = values[instr.in[0]];
        std::vector<RtValue> q, k, v;
        for (int64_t grp = 0; grp < g; ++grp) {
          int64_t base = grp * groupRows;
          for (int64_t h = 0; h < perGroup; ++h) {
            q.push_back(fused.slice(0, base + h * d, d));
            if (instr.gate)
              q.push_back(fused.slice(0, base + perGroup * d + h * d, d));
          }
          k.push_back(fused.slice(0, base + perGroup * qStride, d));
          v.push_back(fused.slice(0, base + perGroup * qStride + d, d));
        }
        auto join = [](const std::vector<RtValue> &parts) {
          std::vector<const RtValue *> ptrs;
          for (const RtValue &p : parts)
            ptrs.push_back(&p);
          return RtValue::concat(ptrs, 0);
        };
        values[instr.out[0]] = join(q);
        values[instr.out[1]] = join(k);
        values[instr.out[2]] = join(v);
      }
      break;
    }
    case InstrOp::Reshape:
      values[instr.out[0]] = values[instr.in[0]].retyped(step.values[instr.out[0]]);
      break;
    case InstrOp::Transpose:
    case InstrOp::Cast:
    case InstrOp::Affine:
    case InstrOp::Fill: {
      auto v = compute(step, instr, values);
      if (!v)
        return v.takeError();
      values[instr.out[0]] = std::move(*v);
      break;
    }
    }
  }
  return llvm::Error::success();
}

} // namespace

llvm::Expected<ExecResult> executePlan(const Plan &plan, const ExecSources &sources, CheckpointWriter &writer,
                                       const ExecOptions &options) {
  llvm::StringMap<size_t> outputIndex;
  for (size_t i = 0; i < plan.outputs.size(); ++i)
    outputIndex[plan.outputs[i].name] = i;
  if (options.progress) {
    options.progress->totalBytes = plan.outputBytes();
    options.progress->totalTensors = plan.outputs.size();
  }

  unsigned threads = options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  threads = std::min<unsigned>(threads, std::max<size_t>(1, plan.steps.size()));
  MemoryBudget budget(options.maxMemory);
  StepRunner runner(plan, sources, writer, outputIndex, options.progress);

  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex resultMutex;
  llvm::Error firstError = llvm::Error::success();
  std::vector<std::vector<std::string>> stashes(plan.steps.size());

  auto worker = [&] {
    while (!failed) {
      size_t i = next++;
      if (i >= plan.steps.size())
        return;
      const Step &step = plan.steps[i];
      uint64_t bytes = workingBytes(step);
      budget.acquire(bytes);
      llvm::Error e = runner.run(step, stashes[i]);
      budget.release(bytes);
      if (e) {
        std::lock_guard lock(resultMutex);
        if (!failed.exchange(true))
          firstError = std::move(e);
        else
          llvm::consumeError(std::move(e));
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t)
    pool.emplace_back(worker);
  worker();
  for (std::thread &t : pool)
    t.join();
  if (firstError)
    return firstError;
  llvm::consumeError(std::move(firstError));

  ExecResult result;
  for (const auto &s : stashes)
    result.stash.insert(result.stash.end(), s.begin(), s.end());
  result.bytesWritten = plan.outputBytes();
  result.tensorsWritten = plan.outputs.size();
  return result;
}

} // namespace ckptmap
