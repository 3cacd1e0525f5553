// The numeric ops the runtime runs, on host memory, behind one interface: the CPU reference
// (kernels/Cast.h, Quant.h, Layout.h) or a GPU backend that stages the same calls through
// pinned buffers and device memory on CUDA streams. Both give identical bits, so the choice
// changes speed only.
//
// The GPU backend (makeCudaBackend) keeps a few lanes, each a stream with its own pinned host
// buffer and device buffer. A call takes a free lane, copies its input into the pinned buffer
// in chunks while the previous chunk is already on its way to the device, runs the kernel,
// and copies the result back the same way, chunk by chunk; calls from several threads run on
// several lanes at once, so one call's reads overlap another's transfers and kernels. A
// tensor larger than a lane is processed in row blocks (NVFP4 and FP8 per-tensor scales take
// one extra pass for the amax first), so device memory stays within the budget whatever the
// tensor size. Inputs smaller than `minBytes` run on the CPU reference, where a transfer
// would cost more than it saves.
//
// Backends are safe to call from many threads at once.
#pragma once

#include "base/DType.h"
#include "kernels/Quant.h"
#include "kernels/Status.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace ckptmap {

/// What a backend did, for the run summary.
struct BackendStats {
  uint64_t deviceOps = 0;     // calls that ran on a GPU
  uint64_t hostOps = 0;       // calls that ran on the CPU reference
  uint64_t bytesToDevice = 0; // host-to-device transfer
  uint64_t bytesToHost = 0;   // device-to-host transfer
  unsigned devices = 0;       // GPUs in use
};

class KernelBackend {
public:
  virtual ~KernelBackend() = default;

  /// "cpu" or "cuda".
  virtual const char* name() const = 0;

  virtual KernelStatus castTensor(DType from, const void* src, DType to, void* dst, size_t n) = 0;
  virtual KernelStatus affineTensor(DType from, const void* src, DType to, void* dst, size_t n, double scale,
                                    double shift) = 0;
  /// Permutes the dims of a row-major tensor of `elemBytes`-byte elements (rank <= 8).
  virtual KernelStatus transpose(const void* src, void* dst, const int64_t* shape, const int64_t* perm, size_t rank,
                                 size_t elemBytes) = 0;
  /// amax(|W|) as F32, or NonFinite naming the first NaN/Inf (`cols` only shapes the message).
  virtual KernelStatus amax(DType in, const void* src, size_t n, size_t cols, float& result) = 0;
  virtual KernelStatus quantize(DType in, const void* src, size_t rows, size_t cols, const QuantOut& out,
                                const QuantOptions& opt) = 0;
  virtual KernelStatus dequantize(const QuantRef& in, size_t rows, size_t cols, DType out, void* dst) = 0;

  virtual BackendStats stats() const = 0;
};

/// The CPU reference (one thread per call: the runtime runs calls on its own workers).
KernelBackend& cpuBackend();

struct CudaBackendOptions {
  /// Device memory for all lanes together (pinned host memory is the same amount).
  uint64_t maxGpuMemory = uint64_t(8) << 30;
  /// Concurrent calls on the GPUs (each owns maxGpuMemory / lanes).
  unsigned lanes = 4;
  /// Inputs smaller than this run on the CPU reference; 0 sends everything to the GPU.
  uint64_t minBytes = 0;
};

/// A backend on the visible GPUs; NoDevice when there is none (or ckptmap was built without
/// CUDA), DeviceError when a GPU is there but its buffers cannot be allocated.
std::unique_ptr<KernelBackend> makeCudaBackend(const CudaBackendOptions& options, KernelStatus& status);

} // namespace ckptmap
