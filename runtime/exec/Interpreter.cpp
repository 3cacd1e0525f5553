#include "runtime/exec/Interpreter.h"

#include "compiler/quant/Grouping.h"
#include "runtime/exec/Chunked.h"
#include "runtime/exec/Partition.h"
#include "runtime/exec/QuantOps.h"
#include "runtime/exec/Values.h"

#include "kernels/Cast.h"

#include "llvm/ADT/ScopeExit.h"
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

/// The tensor value `v` of the step is loaded from, for errors about its contents; empty for a
/// value an instruction computes.
llvm::StringRef loadedTensor(const Step &step, uint32_t v) {
  for (const Instr &i : step.instrs)
    if (i.op == InstrOp::Load && i.out[0] == v)
      return i.tensor;
  return {};
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
    case InstrOp::Quantize:
    case InstrOp::Dequantize:
      for (uint32_t v : instr.in)
        total += step.values[v].byteSize();
      [[fallthrough]];
    case InstrOp::Fill:
      for (uint32_t v : instr.out)
        total += step.values[v].byteSize();
      break;
    case InstrOp::Concat:
    case InstrOp::QkvFuse:
      // A join of quantized parts whose scales differ is requantized through F32.
      if (instr.requantize)
        for (uint32_t v : instr.out)
          total += step.values[v].byteSize() + uint64_t(numElements(step.values[v].shape)) * 8;
      break;
    default:
      break;
    }
  }
  return total;
}

/// Admits steps while their working memory fits the budget. A step larger than the whole
/// budget runs in pieces of the budget where it can (runChunked), else alone rather than never.
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
  StepRunner(const Plan &plan, const ExecSources &sources, TensorSink &writer,
             const llvm::StringMap<size_t> &outputIndex, ExecProgress *progress, KernelBackend &kernels)
      : plan_(plan), sources_(sources), writer_(writer), outputIndex_(outputIndex), progress_(progress),
        kernels_(kernels) {}

  /// Runs one step; appends to `stash` the dropped tensors that differ from their copy and to
  /// `notes` what was done lossily.
  llvm::Error run(const Step &step, std::vector<std::string> &stash, std::vector<std::string> &notes);
  /// Runs a chunkable step in pieces of `budget` bytes of working memory.
  llvm::Error runInPieces(const Step &step, uint64_t budget);

private:
  llvm::Expected<RtValue> load(const Step &step, const Instr &instr);
  llvm::Expected<RtValue> loadPlain(const Step &step, const std::string &name, const ValueType &type, LoadSource from);
  llvm::Error store(const Step &step, const std::string &name, const RtValue &value);
  llvm::Error storePlain(const Step &step, const std::string &name, const RtValue &value);
  llvm::Expected<RtValue> compute(const Step &step, const Instr &instr, std::vector<RtValue> &values,
                                  std::vector<std::string> &notes);
  /// Quantizes plain values together: parts engines fuse share their per-matrix scales.
  llvm::Error quantize(const Step &step, const Instr &instr, std::vector<RtValue> &values);
  /// Concat, Stack, QkvFuse and their inverses, on plain values or bundles alike.
  std::vector<RtValue> rearrange(const Instr &instr, llvm::ArrayRef<const RtValue *> in);
  /// A join of quantized parts: bits kept when their per-matrix scales agree, else requantized
  /// when the rule allows it.
  llvm::Expected<std::vector<RtValue>> join(const Step &step, const Instr &instr, std::vector<RtValue> &values,
                                            std::vector<std::string> &notes);

  const Plan &plan_;
  const ExecSources &sources_;
  TensorSink &writer_;
  const llvm::StringMap<size_t> &outputIndex_;
  ExecProgress *progress_;
  KernelBackend &kernels_;
};

static const char *sourceWhat(LoadSource from) {
  return from == LoadSource::Stash  ? "the kept-aside tensors"
         : from == LoadSource::Base ? "the --hf-base checkpoint"
                                    : "the input";
}

llvm::Expected<RtValue> StepRunner::loadPlain(const Step &step, const std::string &name, const ValueType &type,
                                              LoadSource from) {
  const TensorSource *source = from == LoadSource::Stash  ? sources_.stash
                               : from == LoadSource::Base ? sources_.base
                                                          : sources_.input;
  const char *what = sourceWhat(from);
  if (!source)
    return stepError(step, std::string("the plan reads '") + name + "' from " + what + ", which was not given");
  const SourceTensor *tensor = source->find(name);
  if (!tensor)
    return stepError(step, "'" + name + "' is not in " + what);
  if (tensor->meta.dtype != type.dtype || tensor->meta.shape != type.shape)
    return stepError(step, "'" + name + "' is " + std::string(dtypeName(tensor->meta.dtype)) + " " +
                               formatShape(tensor->meta.shape) + " in " + what + " but the plan expects " +
                               std::string(dtypeName(type.dtype)) + " " + formatShape(type.shape));
  auto bytes = source->read(*tensor);
  if (!bytes)
    return bytes.takeError();
  if (bytes->size() != type.byteSize())
    return stepError(step, "'" + name + "' has " + std::to_string(bytes->size()) + " bytes, expected " +
                               std::to_string(type.byteSize()));
  return RtValue(type, std::move(*bytes));
}

llvm::Expected<RtValue> StepRunner::load(const Step &step, const Instr &instr) {
  const ValueType &type = step.values[instr.out[0]];
  if (!type.quant.quantized())
    return loadPlain(step, instr.tensor, type, instr.source);
  auto layout = quantParts(type.quant, type.shape);
  if (!layout)
    return stepError(step, "'" + instr.tensor + "': " + llvm::toString(layout.takeError()));
  std::vector<RtValue> parts;
  for (const QuantPart &p : *layout) {
    auto v = loadPlain(step, quantPartName(instr.tensor, p), ValueType{p.dtype, Shape(p.shape.begin(), p.shape.end()), {}},
                       instr.source);
    if (!v)
      return v.takeError();
    parts.push_back(std::move(*v));
  }
  return RtValue::bundle(type, std::move(parts));
}

llvm::Error StepRunner::store(const Step &step, const std::string &name, const RtValue &value) {
  if (value.isBundle()) {
    auto layout = quantParts(value.type().quant, value.type().shape);
    if (!layout)
      return stepError(step, "'" + name + "': " + llvm::toString(layout.takeError()));
    for (size_t i = 0; i < layout->size(); ++i)
      if (auto e = storePlain(step, quantPartName(name, (*layout)[i]), value.parts()[i]))
        return e;
  } else if (auto e = storePlain(step, name, value)) {
    return e;
  }
  if (progress_) {
    progress_->bytesWritten += value.byteSize();
    progress_->tensorsWritten += 1;
  }
  return llvm::Error::success();
}

llvm::Error StepRunner::storePlain(const Step &step, const std::string &name, const RtValue &value) {
  auto it = outputIndex_.find(name);
  if (it == outputIndex_.end())
    return stepError(step, "'" + name + "' is not an output of the plan");
  // Segments of an input file go file to file (copy_file_range), large ones in memory
  // straight from there; runs of small ones (a concat along an inner dim) are gathered into
  // a buffer first so each write is sizeable.
  constexpr size_t kGather = 8u << 20, kFileCopy = 64u << 10;
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
    std::optional<TensorBytes::FileSpan> file = s.size >= kFileCopy ? value.fileSpanOf(s) : std::nullopt;
    if (file || s.size >= kGather) {
      if (auto e = flush())
        return e;
      if (auto e = writer_.writePart(it->second, offset, llvm::ArrayRef<uint8_t>(s.data, s.size), file))
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
  return flush();
}

llvm::Expected<RtValue> StepRunner::compute(const Step &step, const Instr &instr, std::vector<RtValue> &values,
                                            std::vector<std::string> &notes) {
  const ValueType &outType = step.values[instr.out[0]];
  auto kernelError = [&](const KernelStatus &status) {
    return stepError(step, std::string(instrOpName(instr.op)) + " failed: " + status.message());
  };
  if (instr.op == InstrOp::Dequantize || (instr.op == InstrOp::Quantize && values[instr.in[0]].isBundle())) {
    RtValue &in = values[instr.in[0]];
    llvm::Expected<RtValue> result = RtValue();
    if (instr.op == InstrOp::Dequantize) {
      result = dequantizeValue(in, outType.dtype, kernels_, loadedTensor(step, instr.in[0]));
    } else {
      bool exact = true;
      result = renameQuantized(in, outType, exact);
      if (result && !exact)
        notes.push_back(step.summary + " (" + step.rule + "): a global scale whose inverse does not invert back to "
                        "the same bits; converting back changes it by one ulp");
    }
    if (!result)
      return stepError(step, llvm::toString(result.takeError()));
    return std::move(*result);
  }
  std::vector<uint8_t> out(outType.byteSize());
  switch (instr.op) {
  case InstrOp::Transpose: {
    RtValue &in = values[instr.in[0]];
    const Shape &shape = in.type().shape;
    KernelStatus s = kernels_.transpose(in.contiguous().data(), out.data(), shape.data(), instr.perm.data(),
                                        shape.size(), dtypeSize(in.type().dtype));
    if (!s)
      return kernelError(s);
    break;
  }
  case InstrOp::Cast: {
    RtValue &in = values[instr.in[0]];
    KernelStatus s = kernels_.castTensor(in.type().dtype, in.contiguous().data(), outType.dtype, out.data(),
                                         size_t(numElements(outType.shape)));
    if (!s)
      return kernelError(s);
    break;
  }
  case InstrOp::Affine: {
    RtValue &in = values[instr.in[0]];
    KernelStatus s = kernels_.affineTensor(in.type().dtype, in.contiguous().data(), outType.dtype, out.data(),
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

std::vector<RtValue> StepRunner::rearrange(const Instr &instr, llvm::ArrayRef<const RtValue *> in) {
  auto joined = [](const std::vector<RtValue> &parts, int64_t dim) {
    std::vector<const RtValue *> ptrs;
    for (const RtValue &p : parts)
      ptrs.push_back(&p);
    return RtValue::concat(ptrs, dim);
  };
  switch (instr.op) {
  case InstrOp::Concat:
    return {RtValue::concat(in, instr.dim)};
  case InstrOp::Stack: {
    std::vector<RtValue> parts;
    for (const RtValue *v : in) {
      ValueType t = v->type();
      t.shape.insert(t.shape.begin(), 1);
      parts.push_back(v->retyped(t));
    }
    return {joined(parts, 0)};
  }
  case InstrOp::Split: {
    std::vector<RtValue> out;
    int64_t at = 0;
    for (int64_t size : instr.sizes) {
      out.push_back(in[0]->slice(instr.dim, at, size));
      at += size;
    }
    return out;
  }
  case InstrOp::Unstack: {
    std::vector<RtValue> out;
    for (size_t i = 0; i < instr.out.size(); ++i)
      out.push_back(in[0]->slice(0, int64_t(i), 1));
    return out;
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
      const RtValue &q = *in[0], &k = *in[1], &v = *in[2];
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
      return {joined(pieces, 0)};
    }
    const RtValue &fused = *in[0];
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
    return {joined(q, 0), joined(k, 0), joined(v, 0)};
  }
  default:
    return {};
  }
}

llvm::Expected<std::vector<RtValue>> StepRunner::join(const Step &step, const Instr &instr, std::vector<RtValue> &values,
                                                      std::vector<std::string> &notes) {
  std::vector<const RtValue *> in;
  for (uint32_t v : instr.in)
    in.push_back(&values[v]);
  // Joining within a matrix (not along the experts dim) makes one matrix of the parts: its
  // per-matrix scales must be the parts' common ones.
  const ValueType &first = in[0]->type();
  bool withinMatrix = instr.op == InstrOp::QkvFuse ||
                      (instr.op == InstrOp::Concat && instr.dim >= int64_t(first.shape.size()) - 2);
  if (!first.quant.quantized() || !withinMatrix)
    return rearrange(instr, in);
  std::vector<const RtValue *> shared = sharedScales(*in[0]);
  for (size_t i = 1; i < in.size(); ++i) {
    std::vector<const RtValue *> other = sharedScales(*in[i]);
    for (size_t k = 0; k < shared.size(); ++k) {
      if (shared[k]->sameBytes(*other[k]))
        continue;
      if (!instr.requantize)
        return stepError(step, "the parts' per-tensor scales differ (part 1 and part " + std::to_string(i + 1) +
                                   "), so joining them cannot keep their bits; state requantize = true on the rule to "
                                   "requantize them (lossy)");
      // Requantize: dequantize to F32, join, quantize again with the largest global scale.
      std::vector<RtValue> plain;
      std::vector<RtValue *> bundles;
      for (uint32_t v : instr.in) {
        auto p = dequantizeValue(values[v], DType::F32, kernels_, loadedTensor(step, v));
        if (!p)
          return stepError(step, llvm::toString(p.takeError()));
        plain.push_back(std::move(*p));
        bundles.push_back(&values[v]);
      }
      std::vector<const RtValue *> ptrs;
      for (const RtValue &p : plain)
        ptrs.push_back(&p);
      std::vector<RtValue> joined = rearrange(instr, ptrs);
      std::vector<float> global;
      if (first.quant.kind == QuantKind::Nvfp4)
        global = largestGlobalScales(bundles);
      const ValueType &target = step.values[instr.out[0]];
      std::optional<RtValue> inputScale;
      if (target.quant.inputScale)
        inputScale = largestInputScale(bundles);
      auto q = quantizeValue(joined[0], target, kernels_, global, inputScale ? &*inputScale : nullptr);
      if (!q)
        return stepError(step, llvm::toString(q.takeError()));
      notes.push_back("requantized " + step.summary + " (" + step.rule + "): its parts' scales differed" +
                      (inputScale ? "; input_scale is the largest of theirs" : ""));
      std::vector<RtValue> out;
      out.push_back(std::move(*q));
      return out;
    }
  }
  return rearrange(instr, in);
}

llvm::Error StepRunner::quantize(const Step &step, const Instr &instr, std::vector<RtValue> &values) {
  std::vector<RtValue *> plain;
  for (uint32_t v : instr.in)
    plain.push_back(&values[v]);
  const ValueType &first = step.values[instr.out[0]];
  // Errors name the tensor the quantized value is stored as (a NaN in it, say).
  auto stored = [&](uint32_t v) {
    for (const Instr &i : step.instrs)
      if (i.op == InstrOp::Store && i.in[0] == v)
        return "'" + i.tensor + "': ";
    return std::string();
  };
  auto shared = sharedQuantScales(plain, first.quant.kind, kernels_);
  if (!shared)
    return stepError(step, stored(instr.out[0]) + llvm::toString(shared.takeError()));
  std::vector<float> globals = instr.in.size() > 1 ? *shared : std::vector<float>{};
  for (size_t i = 0; i < instr.in.size(); ++i) {
    auto q = quantizeValue(values[instr.in[i]], step.values[instr.out[i]], kernels_, globals);
    if (!q)
      return stepError(step, stored(instr.out[i]) + llvm::toString(q.takeError()));
    values[instr.out[i]] = std::move(*q);
  }
  return llvm::Error::success();
}

llvm::Error StepRunner::runInPieces(const Step &step, uint64_t budget) {
  auto input = load(step, step.instrs[0]);
  if (!input)
    return input.takeError();
  std::vector<size_t> outputs;
  for (const Instr &instr : step.instrs) {
    if (instr.op != InstrOp::Store)
      continue;
    auto it = outputIndex_.find(instr.tensor);
    if (it == outputIndex_.end())
      return stepError(step, "'" + instr.tensor + "' is not an output of the plan");
    outputs.push_back(it->second);
  }
  llvm::Error e = runChunked(step, *input, budget, [&](uint64_t offset, llvm::ArrayRef<uint8_t> bytes) -> llvm::Error {
    for (size_t output : outputs)
      if (auto e = writer_.writePart(output, offset, bytes))
        return e;
    if (progress_)
      progress_->bytesWritten += bytes.size() * outputs.size();
    return llvm::Error::success();
  });
  if (progress_)
    progress_->tensorsWritten += outputs.size();
  return e;
}

llvm::Error StepRunner::run(const Step &step, std::vector<std::string> &stash, std::vector<std::string> &notes) {
  std::vector<RtValue> values(step.values.size());
  // What the step read from mapped files leaves resident memory with it.
  auto releaseLoads = llvm::make_scope_exit([&] {
    for (const Instr &instr : step.instrs)
      if (instr.op == InstrOp::Load)
        values[instr.out[0]].release();
  });
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
    case InstrOp::Stash:
      if (!values[instr.in[0]].sameBytes(values[instr.in[1]]))
        stash.push_back(instr.tensor);
      break;
    case InstrOp::Concat:
    case InstrOp::Stack:
    case InstrOp::Split:
    case InstrOp::Unstack:
    case InstrOp::QkvFuse:
    case InstrOp::QkvSplit: {
      auto out = join(step, instr, values, notes);
      if (!out)
        return out.takeError();
      // The plan's types are authoritative (a bundle's FP8 block row groups, say).
      for (size_t i = 0; i < instr.out.size(); ++i)
        values[instr.out[i]] = (*out)[i].retyped(step.values[instr.out[i]]);
      break;
    }
    case InstrOp::Reshape:
      values[instr.out[0]] = values[instr.in[0]].retyped(step.values[instr.out[0]]);
      break;
    case InstrOp::Quantize:
      if (!values[instr.in[0]].isBundle()) {
        if (auto e = quantize(step, instr, values))
          return e;
        break;
      }
      [[fallthrough]];
    case InstrOp::Transpose:
    case InstrOp::Cast:
    case InstrOp::Affine:
    case InstrOp::Fill:
    case InstrOp::Dequantize: {
      auto v = compute(step, instr, values, notes);
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

llvm::Expected<ExecResult> executePlan(const Plan &plan, const ExecSources &sources, TensorSink &writer,
                                       const ExecOptions &options) {
  // The writer's tensors: every stored part of the outputs, in the order expandQuantized gives.
  llvm::StringMap<size_t> outputIndex;
  std::vector<TensorMeta> stored = expandQuantized(plan.outputs);
  for (size_t i = 0; i < stored.size(); ++i)
    outputIndex[stored[i].name] = i;
  // What this run writes: every output, or those of its share's steps.
  uint64_t bytesToWrite = plan.outputBytes(), tensorsToWrite = plan.outputs.size();
  if (options.steps) {
    std::vector<bool> mine = storedBySteps(plan, *options.steps);
    bytesToWrite = tensorsToWrite = 0;
    for (size_t i = 0; i < stored.size(); ++i)
      if (mine[i])
        bytesToWrite += stored[i].byteSize();
    for (size_t s = 0; s < plan.steps.size(); ++s)
      if ((*options.steps)[s])
        tensorsToWrite += llvm::count_if(plan.steps[s].instrs, [](const Instr &i) { return i.op == InstrOp::Store; });
  }
  if (options.progress) {
    options.progress->totalBytes = bytesToWrite;
    options.progress->totalTensors = tensorsToWrite;
  }

  unsigned threads = options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  threads = std::min<unsigned>(threads, std::max<size_t>(1, plan.steps.size()));
  MemoryBudget budget(options.maxMemory);
  StepRunner runner(plan, sources, writer, outputIndex, options.progress,
                    options.kernels ? *options.kernels : cpuBackend());

  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex resultMutex;
  llvm::Error firstError = llvm::Error::success();
  std::vector<std::vector<std::string>> stashes(plan.steps.size()), notes(plan.steps.size());

  auto worker = [&] {
    while (!failed) {
      size_t i = next++;
      if (i >= plan.steps.size())
        return;
      if (options.steps && !(*options.steps)[i])
        continue;
      const Step &step = plan.steps[i];
      uint64_t bytes = workingBytes(step);
      bool inPieces = options.maxMemory && bytes > options.maxMemory && chunkable(step);
      if (inPieces)
        bytes = options.maxMemory;
      budget.acquire(bytes);
      llvm::Error e = inPieces ? runner.runInPieces(step, bytes) : runner.run(step, stashes[i], notes[i]);
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
  for (const auto &n : notes)
    result.lossy.insert(result.lossy.end(), n.begin(), n.end());
  result.bytesWritten = bytesToWrite;
  result.tensorsWritten = tensorsToWrite;
  return result;
}

} // namespace ckptmap
