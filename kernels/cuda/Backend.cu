// The GPU backend: host-memory calls staged through pinned buffers on per-lane streams
// (kernels/Backend.h explains the scheme). Everything numeric is done by the kernels of
// kernels/Cuda.h; this file only moves bytes and splits work that exceeds a lane.
#include "kernels/Backend.h"

#include "kernels/Cast.h"
#include "kernels/Convert.h"
#include "kernels/Cuda.h"
#include "kernels/Errors.h"
#include "kernels/Layout.h"
#include "kernels/QuantMath.h"
#include "kernels/cuda/Common.cuh"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <vector>

namespace ckptmap {
namespace {

using cuda::detail::deviceError;

constexpr size_t kAlign = 256;
/// Granularity of the host<->pinned copies that overlap the DMA of the previous chunk.
constexpr size_t kMinChunk = size_t(4) << 20;
constexpr size_t kMaxChunksPerRegion = 32;

size_t alignUp(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

size_t chunkFor(size_t bytes) { return std::max(kMinChunk, (bytes + kMaxChunksPerRegion - 1) / kMaxChunksPerRegion); }

/// Host memory a call reads, and where its results go.
struct In {
  const void* src;
  size_t bytes;
};
struct Out {
  void* dst;
  size_t bytes;
};

/// One stream with its pinned host buffer and device buffer, used by one call at a time.
class Lane {
public:
  Lane(int device, size_t limit) : device_(device), limit_(limit) {}
  Lane(const Lane&) = delete;
  Lane& operator=(const Lane&) = delete;
  ~Lane() {
    cudaSetDevice(device_);
    if (stream_)
      cudaStreamSynchronize(stream_);
    for (cudaEvent_t e : events_)
      cudaEventDestroy(e);
    if (host_)
      cudaFreeHost(host_);
    if (dev_)
      cudaFree(dev_);
    if (stream_)
      cudaStreamDestroy(stream_);
  }

  KernelStatus init() {
    CKPTMAP_CUDA_TRY(cudaSetDevice(device_));
    CKPTMAP_CUDA_TRY(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    events_.resize(3 * kMaxChunksPerRegion + 8);
    for (cudaEvent_t& e : events_)
      CKPTMAP_CUDA_TRY(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    return {};
  }

  /// Uploads `ins`, calls launch(device inputs, device outputs, stream), downloads `outs`.
  /// Each region's copy is split in chunks so the CPU's copy into pinned memory of one chunk
  /// overlaps the DMA of the one before it (and the same on the way back).
  template <class Launch>
  KernelStatus run(std::initializer_list<In> ins, std::initializer_list<Out> outs, Launch&& launch,
                   std::atomic<uint64_t>& toDevice, std::atomic<uint64_t>& toHost) {
    KernelStatus s = stage(ins, outs, launch, toDevice, toHost);
    // A failed call may leave copies in flight: they must finish before the buffers are reused.
    if (!s && stream_)
      cudaStreamSynchronize(stream_);
    return s;
  }

private:
  template <class Launch>
  KernelStatus stage(std::initializer_list<In> ins, std::initializer_list<Out> outs, Launch& launch,
                     std::atomic<uint64_t>& toDevice, std::atomic<uint64_t>& toHost) {
    size_t total = 0;
    for (const In& i : ins)
      total += alignUp(i.bytes);
    for (const Out& o : outs)
      total += alignUp(o.bytes);
    CKPTMAP_CUDA_TRY(cudaSetDevice(device_));
    if (KernelStatus s = reserve(total); !s)
      return s;
    void* devIn[4] = {};
    void* devOut[4] = {};
    size_t at = 0, k = 0;
    for (const In& i : ins) {
      for (size_t c = 0; c < i.bytes; c += chunkFor(i.bytes)) {
        const size_t n = std::min(chunkFor(i.bytes), i.bytes - c);
        std::memcpy(host_ + at + c, static_cast<const uint8_t*>(i.src) + c, n);
        CKPTMAP_CUDA_TRY(cudaMemcpyAsync(dev_ + at + c, host_ + at + c, n, cudaMemcpyHostToDevice, stream_));
      }
      toDevice.fetch_add(i.bytes, std::memory_order_relaxed);
      devIn[k++] = dev_ + at;
      at += alignUp(i.bytes);
    }
    k = 0;
    const size_t outStart = at;
    for (const Out& o : outs) {
      devOut[k++] = dev_ + at;
      at += alignUp(o.bytes);
    }
    if (KernelStatus status = launch(devIn, devOut, stream_); !status)
      return status;
    // Queue every chunk's download with an event behind it, then copy each out of pinned
    // memory as soon as its event fires.
    struct Pending {
      uint8_t* dst;
      size_t from, bytes;
    };
    std::vector<Pending> pending;
    at = outStart;
    for (const Out& o : outs) {
      for (size_t c = 0; c < o.bytes; c += chunkFor(o.bytes)) {
        const size_t n = std::min(chunkFor(o.bytes), o.bytes - c);
        CKPTMAP_CUDA_TRY(cudaMemcpyAsync(host_ + at + c, dev_ + at + c, n, cudaMemcpyDeviceToHost, stream_));
        CKPTMAP_CUDA_TRY(cudaEventRecord(events_[pending.size()], stream_));
        pending.push_back({static_cast<uint8_t*>(o.dst) + c, at + c, n});
      }
      toHost.fetch_add(o.bytes, std::memory_order_relaxed);
      at += alignUp(o.bytes);
    }
    for (size_t p = 0; p < pending.size(); ++p) {
      CKPTMAP_CUDA_TRY(cudaEventSynchronize(events_[p]));
      std::memcpy(pending[p].dst, host_ + pending[p].from, pending[p].bytes);
    }
    CKPTMAP_CUDA_TRY(cudaStreamSynchronize(stream_));
    return {};
  }

  /// Grows the buffers to `bytes` (never past the limit the caller planned for).
  KernelStatus reserve(size_t bytes) {
    if (bytes <= capacity_)
      return {};
    if (bytes > limit_)
      return KernelStatus::error(KernelErrc::DeviceError, "a call needs " + std::to_string(bytes) +
                                                              " bytes of staging; a lane holds " + std::to_string(limit_));
    if (host_)
      CKPTMAP_CUDA_TRY(cudaFreeHost(host_));
    if (dev_)
      CKPTMAP_CUDA_TRY(cudaFree(dev_));
    // Grow geometrically so a run of slightly larger calls does not reallocate each time.
    const size_t want = std::min(limit_, std::max(bytes, capacity_ * 2));
    host_ = nullptr;
    dev_ = nullptr;
    capacity_ = 0;
    CKPTMAP_CUDA_TRY(cudaHostAlloc(reinterpret_cast<void**>(&host_), want, cudaHostAllocDefault));
    CKPTMAP_CUDA_TRY(cudaMalloc(reinterpret_cast<void**>(&dev_), want));
    capacity_ = want;
    return {};
  }

  int device_;
  size_t limit_;
  size_t capacity_ = 0;
  cudaStream_t stream_ = nullptr;
  uint8_t* host_ = nullptr;
  uint8_t* dev_ = nullptr;
  std::vector<cudaEvent_t> events_;
};

/// Rows handled by one lane call: the largest multiple of `granule` whose staged bytes fit in
/// `limit`. `bytesPer(n)` sums the call's regions for n rows (linear in n / granule); each
/// region may grow by its alignment, hence the slack.
template <class F> size_t rowsPerCall(size_t rows, size_t granule, size_t limit, F&& bytesPer) {
  constexpr size_t kSlack = 4 * kAlign;
  if (limit <= kSlack)
    return 0;
  limit -= kSlack;
  if (bytesPer(rows) <= limit)
    return rows;
  const size_t fixed = bytesPer(0), per = bytesPer(granule) - fixed;
  if (limit <= fixed || per == 0)
    return 0;
  return (limit - fixed) / per * granule;
}

bool deviceCast(DType from, DType to) { return from == to || (isFloating(from) && isFloating(to)); }

class CudaBackend final : public KernelBackend {
public:
  explicit CudaBackend(const CudaBackendOptions& o) : minBytes_(o.minBytes) {}

  KernelStatus init(const CudaBackendOptions& o) {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices <= 0)
      return errors::noDevice();
    devices_ = unsigned(devices);
    const unsigned lanes = std::max(1u, o.lanes);
    laneLimit_ = std::max<size_t>(size_t(1) << 20, o.maxGpuMemory / lanes);
    for (unsigned i = 0; i < lanes; ++i) {
      lanes_.push_back(std::make_unique<Lane>(int(i % devices_), laneLimit_));
      if (KernelStatus s = lanes_.back()->init(); !s)
        return s;
      free_.push_back(lanes_.back().get());
    }
    return {};
  }

  const char* name() const override { return "cuda"; }

  KernelStatus castTensor(DType from, const void* src, DType to, void* dst, size_t n) override {
    if (!castSupported(from, to))
      return errors::unsupportedCast(from, to);
    if (!deviceCast(from, to) || n * dtypeSize(from) < minBytes_)
      return host(cpu::castTensor(from, src, to, dst, n));
    return elementwise(from, dtypeSize(to), src, dst, n, [&](const void* i, void* o, size_t m, cudaStream_t s) {
      return cuda::castTensor(from, i, to, o, m, s);
    });
  }

  KernelStatus affineTensor(DType from, const void* src, DType to, void* dst, size_t n, double scale,
                            double shift) override {
    if (n * dtypeSize(from) < minBytes_)
      return host(cpu::affineTensor(from, src, to, dst, n, scale, shift));
    if (!affineSupported(from, to))
      return errors::unsupportedAffine(from, to);
    return elementwise(from, dtypeSize(to), src, dst, n, [&](const void* i, void* o, size_t m, cudaStream_t s) {
      return cuda::affineTensor(from, i, to, o, m, scale, shift, s);
    });
  }

  KernelStatus transpose(const void* src, void* dst, const int64_t* shape, const int64_t* perm, size_t rank,
                         size_t elemBytes) override {
    size_t bytes = elemBytes;
    for (size_t d = 0; d < rank; ++d)
      bytes *= size_t(shape[d]);
    // A transpose moves whole tensors: one that does not fit a lane runs on the CPU.
    if (bytes < minBytes_ || 2 * bytes + 4 * kAlign > laneLimit_)
      return host(cpu::transpose(src, dst, shape, perm, rank, elemBytes));
    LaneRef lane(*this);
    return device(lane->run({{src, bytes}}, {{dst, bytes}},
                            [&](void** i, void** o, cudaStream_t s) {
                              return cuda::transpose(i[0], o[0], shape, perm, rank, elemBytes, s);
                            },
                            toDevice_, toHost_));
  }

  KernelStatus amax(DType in, const void* src, size_t n, size_t cols, float& result) override {
    if (!isQuantInput(in))
      return errors::unsupportedDType("quantization", in);
    const size_t elem = dtypeSize(in);
    if (n * elem < minBytes_)
      return host(cpuAmax(in, src, n, cols, result));
    KernelStatus s = deviceAmax(in, src, n, result);
    // The CPU names the first NaN/Inf the way every other error does (row and column).
    if (s.code() == KernelErrc::NonFinite)
      return cpuAmax(in, src, n, cols, result);
    return s;
  }

  KernelStatus quantize(DType in, const void* src, size_t rows, size_t cols, const QuantOut& out,
                        const QuantOptions& opt) override {
    QuantShapes sh;
    if (KernelStatus s = quantShapes(out.format, rows, cols, sh, out.scaleType); !s)
      return s;
    if (!isQuantInput(in))
      return errors::unsupportedDType("quantization input", in);
    const size_t elem = dtypeSize(in);
    if (rows * cols * elem < minBytes_)
      return host(cpu::quantize(in, src, rows, cols, out, opt));
    KernelStatus s = deviceQuantize(in, src, rows, cols, out, opt);
    if (s.code() == KernelErrc::NonFinite)
      return cpu::quantize(in, src, rows, cols, out, opt);
    return s;
  }

  KernelStatus dequantize(const QuantRef& in, size_t rows, size_t cols, DType out, void* dst) override {
    QuantShapes sh;
    if (KernelStatus s = quantShapes(in.format, rows, cols, sh, in.scaleType); !s)
      return s;
    if (!isQuantInput(out))
      return errors::unsupportedDType("dequantization output", out);
    if (in.format == QuantFormat::Nvfp4 && !in.globalScale)
      return errors::badShape("NVFP4 dequantization needs the global scale");
    if (sh.dataBytes() + sh.scaleBytes() < minBytes_)
      return host(cpu::dequantize(in, rows, cols, out, dst));
    const size_t outElem = dtypeSize(out);
    const size_t granule = in.format == QuantFormat::Fp8Block ? kFp8BlockSize : 1;
    const size_t per = rowsPerCall(rows, granule, laneLimit_, [&](size_t n) {
      const Slice q = slice(in.format, in.scaleType, n, cols);
      return q.dataBytes + q.scaleBytes + sizeof(float) + n * cols * outElem;
    });
    if (per == 0)
      return host(cpu::dequantize(in, rows, cols, out, dst));
    LaneRef lane(*this);
    for (size_t r0 = 0; r0 < rows; r0 += per) {
      const size_t n = std::min(per, rows - r0);
      const Slice q = slice(in.format, in.scaleType, n, cols), at = sliceOffset(in.format, in.scaleType, r0, cols);
      // FP8 per tensor keeps its scalar in `scale`; NVFP4 its global in `globalScale`.
      const void* scalar = in.format == QuantFormat::Fp8Tensor ? in.scale : in.globalScale;
      const bool blockScales = in.format != QuantFormat::Fp8Tensor;
      KernelStatus s = lane->run(
          {{static_cast<const uint8_t*>(in.data) + at.dataBytes, q.dataBytes},
           {blockScales ? static_cast<const uint8_t*>(in.scale) + at.scaleBytes : nullptr, blockScales ? q.scaleBytes : 0},
           {scalar, scalar ? sizeof(float) : 0}},
          {{static_cast<uint8_t*>(dst) + r0 * cols * outElem, n * cols * outElem}},
          [&](void** i, void** o, cudaStream_t st) {
            QuantRef ref{in.format, i[0], blockScales ? i[1] : i[2], in.scaleType,
                         in.format == QuantFormat::Nvfp4 ? static_cast<const float*>(i[2]) : nullptr};
            return cuda::dequantize(ref, n, cols, out, o[0], st);
          },
          toDevice_, toHost_);
      if (!s)
        return s;
    }
    return device({});
  }

  BackendStats stats() const override {
    BackendStats s;
    s.deviceOps = deviceOps_.load();
    s.hostOps = hostOps_.load();
    s.bytesToDevice = toDevice_.load();
    s.bytesToHost = toHost_.load();
    s.devices = devices_;
    return s;
  }

private:
  /// A lane held for the duration of one call.
  class LaneRef {
  public:
    explicit LaneRef(CudaBackend& b) : backend_(b) {
      std::unique_lock lock(b.mutex_);
      b.cv_.wait(lock, [&] { return !b.free_.empty(); });
      lane_ = b.free_.back();
      b.free_.pop_back();
    }
    ~LaneRef() {
      {
        std::lock_guard lock(backend_.mutex_);
        backend_.free_.push_back(lane_);
      }
      backend_.cv_.notify_one();
    }
    Lane* operator->() const { return lane_; }

  private:
    CudaBackend& backend_;
    Lane* lane_;
  };

  /// Byte sizes (or offsets) of the data and block-scale parts of `rows` rows of a matrix.
  struct Slice {
    size_t dataBytes, scaleBytes;
  };
  static Slice slice(QuantFormat f, DType scaleType, size_t rows, size_t cols) {
    QuantShapes sh;
    if (!quantShapes(f, rows ? rows : 1, cols, sh, scaleType))
      return {0, 0};
    const size_t scaleBytes = f == QuantFormat::Fp8Tensor ? 0 : (rows ? sh.scaleBytes() : 0);
    return {rows ? sh.dataBytes() : 0, scaleBytes};
  }
  /// Where row `r0` starts in each part (r0 a multiple of 128 for FP8 blocks).
  static Slice sliceOffset(QuantFormat f, DType scaleType, size_t r0, size_t cols) {
    QuantShapes sh;
    if (!quantShapes(f, 1, cols, sh, scaleType))
      return {0, 0};
    const size_t scaleRow = f == QuantFormat::Fp8Block ? r0 / kFp8BlockSize : r0;
    const size_t scaleBytes = f == QuantFormat::Fp8Tensor ? 0 : scaleRow * sh.scaleCols * dtypeSize(sh.scaleType);
    return {r0 * sh.dataCols, scaleBytes};
  }

  static bool isQuantInput(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }

  static KernelStatus cpuAmax(DType in, const void* src, size_t n, size_t cols, float& result) {
    switch (in) {
    case DType::F32: return cpu::amax(static_cast<const float*>(src), n, result, cols);
    case DType::BF16: return cpu::amax(static_cast<const bf16_t*>(src), n, result, cols);
    default: return cpu::amax(static_cast<const f16_t*>(src), n, result, cols);
    }
  }

  KernelStatus host(KernelStatus s) {
    hostOps_.fetch_add(1, std::memory_order_relaxed);
    return s;
  }
  KernelStatus device(KernelStatus s) {
    if (s)
      deviceOps_.fetch_add(1, std::memory_order_relaxed);
    return s;
  }

  /// An elementwise map in blocks of whole 16-element packs (a lane holds millions of them).
  template <class Launch>
  KernelStatus elementwise(DType from, size_t outElem, const void* src, void* dst, size_t n, Launch&& launch) {
    const size_t inElem = dtypeSize(from);
    const size_t per = std::max<size_t>(16, rowsPerCall(n, 16, laneLimit_, [&](size_t m) { return m * (inElem + outElem); }));
    LaneRef lane(*this);
    for (size_t at = 0; at < n; at += per) {
      const size_t m = std::min(per, n - at);
      KernelStatus s = lane->run({{static_cast<const uint8_t*>(src) + at * inElem, m * inElem}},
                                 {{static_cast<uint8_t*>(dst) + at * outElem, m * outElem}},
                                 [&](void** i, void** o, cudaStream_t st) { return launch(i[0], o[0], m, st); },
                                 toDevice_, toHost_);
      if (!s)
        return s;
    }
    return device({});
  }

  /// amax over row blocks of the input (the whole of it in one call when it fits).
  KernelStatus deviceAmax(DType in, const void* src, size_t n, float& result) {
    const size_t elem = dtypeSize(in);
    const size_t per = std::max<size_t>(16, rowsPerCall(n, 16, laneLimit_, [&](size_t m) { return m * elem; }));
    LaneRef lane(*this);
    float best = 0;
    for (size_t at = 0; at < n; at += per) {
      const size_t m = std::min(per, n - at);
      float part = 0;
      KernelStatus s = lane->run({{static_cast<const uint8_t*>(src) + at * elem, m * elem}}, {},
                                 [&](void** i, void**, cudaStream_t st) { return cuda::amax(in, i[0], m, part, st); },
                                 toDevice_, toHost_);
      if (!s)
        return s;
      best = std::max(best, part);
    }
    result = best;
    return device({});
  }

  KernelStatus deviceQuantize(DType in, const void* src, size_t rows, size_t cols, const QuantOut& out,
                              QuantOptions opt) {
    const size_t elem = dtypeSize(in);
    const size_t granule = out.format == QuantFormat::Fp8Block ? kFp8BlockSize : 1;
    const size_t per = rowsPerCall(rows, granule, laneLimit_, [&](size_t n) {
      const Slice q = slice(out.format, out.scaleType, n, cols);
      return n * cols * elem + q.dataBytes + q.scaleBytes + sizeof(float);
    });
    if (per == 0)
      return host(cpu::quantize(in, src, rows, cols, out, opt));
    // Formats with one scale per matrix need the whole matrix's amax before any block.
    const bool perMatrixScale = out.format == QuantFormat::Nvfp4 || out.format == QuantFormat::Fp8Tensor;
    if (per < rows && perMatrixScale && !opt.globalScale) {
      float a = 0;
      if (KernelStatus s = deviceAmax(in, src, rows * cols, a); !s)
        return s;
      opt.globalScale = out.format == QuantFormat::Nvfp4 ? qmath::nvfp4GlobalScale(a) : qmath::fp8Scale(a);
    }
    // The scalar part: NVFP4's global scale, FP8's per-tensor scale (written by every block alike).
    float* scalar = out.format == QuantFormat::Nvfp4 ? out.globalScale
                    : out.format == QuantFormat::Fp8Tensor ? static_cast<float*>(out.scale)
                                                           : nullptr;
    const bool blockScales = out.format != QuantFormat::Fp8Tensor;
    LaneRef lane(*this);
    for (size_t r0 = 0; r0 < rows; r0 += per) {
      const size_t n = std::min(per, rows - r0);
      const Slice q = slice(out.format, out.scaleType, n, cols), at = sliceOffset(out.format, out.scaleType, r0, cols);
      KernelStatus s = lane->run(
          {{static_cast<const uint8_t*>(src) + r0 * cols * elem, n * cols * elem}},
          {{static_cast<uint8_t*>(out.data) + at.dataBytes, q.dataBytes},
           {blockScales ? static_cast<uint8_t*>(out.scale) + at.scaleBytes : nullptr, blockScales ? q.scaleBytes : 0},
           {scalar, scalar ? sizeof(float) : 0}},
          [&](void** i, void** o, cudaStream_t st) {
            QuantOut dev{out.format, o[0], blockScales ? o[1] : o[2], out.scaleType,
                         out.format == QuantFormat::Nvfp4 ? static_cast<float*>(o[2]) : nullptr};
            return cuda::quantize(in, i[0], n, cols, dev, opt, st);
          },
          toDevice_, toHost_);
      if (!s)
        return s;
    }
    return device({});
  }

  uint64_t minBytes_;
  size_t laneLimit_ = 0; // staging bytes of one lane
  unsigned devices_ = 0;
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::vector<Lane*> free_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::atomic<uint64_t> deviceOps_{0}, hostOps_{0}, toDevice_{0}, toHost_{0};
};

} // namespace

std::unique_ptr<KernelBackend> makeCudaBackend(const CudaBackendOptions& options, KernelStatus& status) {
  auto backend = std::make_unique<CudaBackend>(options);
  status = backend->init(options);
  if (!status)
    return nullptr;
  return backend;
}

} // namespace ckptmap
