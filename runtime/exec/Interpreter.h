// Executes a plan: steps in parallel on worker threads, within a memory budget, writing
// every output through a TensorSink created with the list of outputs from the plan. Output
// bytes do not depend on thread count or timing.
#pragma once

#include "compiler/plan/Plan.h"
#include "runtime/io/TensorSink.h"
#include "runtime/io/TensorSource.h"

#include "kernels/Backend.h"

#include <atomic>
#include <functional>

namespace ckptmap {

struct ExecSources {
  const TensorSource *input = nullptr;
  const TensorSource *stash = nullptr; ///< tensors a previous run kept aside
  const TensorSource *base = nullptr;  ///< --hf-base
};

/// Counters the progress display reads while a plan runs.
struct ExecProgress {
  std::atomic<uint64_t> bytesWritten{0};
  std::atomic<uint64_t> tensorsWritten{0};
  uint64_t totalBytes = 0;
  uint64_t totalTensors = 0;
};

struct ExecOptions {
  unsigned threads = 0;   ///< 0: one per hardware thread
  uint64_t maxMemory = 0; ///< bytes of working memory at once; 0: no limit
  ExecProgress *progress = nullptr;
  /// Where casts, affine maps, transposes and (de)quantization run; null: the CPU reference.
  KernelBackend *kernels = nullptr;
  /// The steps to run (one share of a partitioned conversion); null: all.
  const std::vector<bool> *steps = nullptr;
};

struct ExecResult {
  uint64_t bytesWritten = 0;
  uint64_t tensorsWritten = 0;
  /// Dropped tensors whose bytes differ from the tensor they should duplicate: the caller
  /// keeps them aside so the way back restores them.
  std::vector<std::string> stash;
  /// What the run did that does not keep bits (a join requantized because its parts' scales
  /// differed), in plan order.
  std::vector<std::string> lossy;
};

llvm::Expected<ExecResult> executePlan(const Plan &plan, const ExecSources &sources, TensorSink &writer,
                                       const ExecOptions &options);

} // namespace ckptmap
