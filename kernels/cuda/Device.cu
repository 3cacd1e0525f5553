// Device discovery, launch geometry, and the host-memory ("staged") wrappers used by tests.
#include "kernels/Cuda.h"
#include "kernels/Errors.h"
#include "kernels/cuda/Common.cuh"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <mutex>
#include <vector>

namespace ckptmap::cuda {

bool cudaAvailable() {
  static const bool available = [] {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  }();
  return available;
}

namespace detail {

size_t gridFor(size_t work, int threads) {
  static std::array<std::atomic<int>, 64> smCount{}; // per device ordinal, 0 = not asked yet
  int dev = 0;
  cudaGetDevice(&dev);
  int sms = dev >= 0 && dev < 64 ? smCount[static_cast<size_t>(dev)].load(std::memory_order_relaxed) : 0;
  if (sms == 0) {
    if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || sms <= 0)
      sms = 132;
    if (dev >= 0 && dev < 64)
      smCount[static_cast<size_t>(dev)].store(sms, std::memory_order_relaxed);
  }
  const size_t needed = (work + static_cast<size_t>(threads) - 1) / static_cast<size_t>(threads);
  return std::clamp<size_t>(needed, 1, static_cast<size_t>(sms) * 16);
}

/// A pool entry: device words for amax values, and mapped host words (the error word, then a
/// landing place for an amax copied back). Entries live as long as the process: a handful, one
/// per call in flight at once.
struct CallWords::Slot {
  int device = 0;
  size_t capacity = 0; // amax words
  unsigned long long* amax = nullptr;
  uint32_t* hostError = nullptr;
  uint32_t* deviceError = nullptr; // the device's address of hostError
  unsigned long long* hostAmax = nullptr;
  uint32_t epoch = 0;
};

namespace {

std::mutex freeSlotsMutex;
std::vector<CallWords::Slot*> freeSlots;

/// Brings `slot` to `matrices` words and a new epoch. Clearing or replacing the words first waits
/// for the device: kernels of a call that returned early may still be writing them.
KernelStatus prepare(CallWords::Slot& slot, size_t matrices) {
  if (!slot.hostError) {
    void* host = nullptr;
    CKPTMAP_CUDA_TRY(cudaHostAlloc(&host, 2 * sizeof(unsigned long long), cudaHostAllocMapped));
    std::memset(host, 0, 2 * sizeof(unsigned long long));
    slot.hostError = static_cast<uint32_t*>(host);
    slot.hostAmax = static_cast<unsigned long long*>(host) + 1;
    void* alias = nullptr;
    CKPTMAP_CUDA_TRY(cudaHostGetDevicePointer(&alias, host, 0));
    slot.deviceError = static_cast<uint32_t*>(alias);
  }
  bool clear = ++slot.epoch == 0; // after 2^32 calls an old word could pass for a new one
  if (!slot.amax || slot.capacity < matrices) {
    const size_t want = std::max<size_t>({matrices, 2 * slot.capacity, 64});
    if (slot.amax)
      CKPTMAP_CUDA_TRY(cudaFree(slot.amax));
    slot.amax = nullptr;
    slot.capacity = 0;
    CKPTMAP_CUDA_TRY(cudaMalloc(reinterpret_cast<void**>(&slot.amax), want * sizeof(unsigned long long)));
    slot.capacity = want;
    clear = true;
  }
  if (clear) {
    CKPTMAP_CUDA_TRY(cudaDeviceSynchronize());
    CKPTMAP_CUDA_TRY(cudaMemset(slot.amax, 0, slot.capacity * sizeof(unsigned long long)));
    CKPTMAP_CUDA_TRY(cudaDeviceSynchronize());
    __atomic_store_n(slot.hostError, 0u, __ATOMIC_RELEASE);
    slot.epoch = 1;
  }
  return {};
}

} // namespace

CallWords::~CallWords() {
  if (!slot_)
    return;
  std::lock_guard lock(freeSlotsMutex);
  freeSlots.push_back(slot_);
}

KernelStatus CallWords::acquire(size_t matrices) {
  int device = 0;
  CKPTMAP_CUDA_TRY(cudaGetDevice(&device));
  {
    std::lock_guard lock(freeSlotsMutex);
    auto it = std::find_if(freeSlots.begin(), freeSlots.end(), [&](const Slot* s) { return s->device == device; });
    if (it != freeSlots.end()) {
      slot_ = *it;
      freeSlots.erase(it);
    }
  }
  if (!slot_) {
    slot_ = new Slot;
    slot_->device = device;
  }
  if (KernelStatus st = prepare(*slot_, matrices); !st)
    return st;
  flags_ = CallFlags{slot_->amax, slot_->deviceError, slot_->epoch};
  return {};
}

bool CallWords::sawNonFinite() const { return __atomic_load_n(slot_->hostError, __ATOMIC_ACQUIRE) == flags_.epoch; }

KernelStatus CallWords::copyAmaxBack(cudaStream_t stream) {
  CKPTMAP_CUDA_TRY(cudaMemcpyAsync(slot_->hostAmax, slot_->amax, sizeof(unsigned long long), cudaMemcpyDeviceToHost, stream));
  return {};
}

uint32_t CallWords::copiedAmaxBits() const { return CallFlags::bitsOf(*slot_->hostAmax, flags_.epoch); }

} // namespace detail

namespace staged {
namespace {

using detail::DeviceBuffer;

/// A device copy of a host range (or an empty device buffer of that size).
KernelStatus upload(DeviceBuffer& buf, const void* host, size_t bytes) {
  if (KernelStatus s = buf.allocate(bytes); !s)
    return s;
  if (host && bytes)
    CKPTMAP_CUDA_TRY(cudaMemcpy(buf.get(), host, bytes, cudaMemcpyHostToDevice));
  return {};
}

KernelStatus download(void* host, const DeviceBuffer& buf, size_t bytes) {
  if (host && bytes)
    CKPTMAP_CUDA_TRY(cudaMemcpy(host, buf.get(), bytes, cudaMemcpyDeviceToHost));
  return {};
}

} // namespace

#define CKPTMAP_TRY(expr)                                                                                    \
  do {                                                                                                       \
    if (KernelStatus s_ = (expr); !s_)                                                                       \
      return s_;                                                                                             \
  } while (0)

KernelStatus castTensor(DType from, const void* src, DType to, void* dst, size_t n) {
  if (!cudaAvailable())
    return errors::noDevice();
  DeviceBuffer in(nullptr), out(nullptr);
  CKPTMAP_TRY(upload(in, src, n * dtypeSize(from)));
  CKPTMAP_TRY(upload(out, nullptr, n * dtypeSize(to)));
  CKPTMAP_TRY(cuda::castTensor(from, in.get(), to, out.get(), n));
  return download(dst, out, n * dtypeSize(to));
}

KernelStatus affineTensor(DType from, const void* src, DType to, void* dst, size_t n, double scale, double shift) {
  if (!cudaAvailable())
    return errors::noDevice();
  DeviceBuffer in(nullptr), out(nullptr);
  CKPTMAP_TRY(upload(in, src, n * dtypeSize(from)));
  CKPTMAP_TRY(upload(out, nullptr, n * dtypeSize(to)));
  CKPTMAP_TRY(cuda::affineTensor(from, in.get(), to, out.get(), n, scale, shift));
  return download(dst, out, n * dtypeSize(to));
}

namespace {

/// Device copies of a quantized stack's parts.
struct DeviceQuant {
  DeviceBuffer data{nullptr}, scale{nullptr}, global{nullptr};
  size_t dataBytes = 0, scaleBytes = 0, globalBytes = 0;

  KernelStatus allocate(QuantFormat f, DType scaleType, size_t experts, size_t rows, size_t cols) {
    QuantShapes sh;
    CKPTMAP_TRY(quantShapes(f, rows, cols, sh, scaleType));
    dataBytes = experts * sh.dataBytes();
    scaleBytes = experts * sh.scaleBytes();
    globalBytes = sh.hasGlobalScale ? experts * sizeof(float) : 0;
    CKPTMAP_TRY(data.allocate(dataBytes));
    CKPTMAP_TRY(scale.allocate(scaleBytes));
    return global.allocate(globalBytes);
  }
  KernelStatus upload(const QuantRef& r) {
    if (dataBytes)
      CKPTMAP_CUDA_TRY(cudaMemcpy(data.get(), r.data, dataBytes, cudaMemcpyHostToDevice));
    if (scaleBytes)
      CKPTMAP_CUDA_TRY(cudaMemcpy(scale.get(), r.scale, scaleBytes, cudaMemcpyHostToDevice));
    if (globalBytes && r.globalScale)
      CKPTMAP_CUDA_TRY(cudaMemcpy(global.get(), r.globalScale, globalBytes, cudaMemcpyHostToDevice));
    return {};
  }
  KernelStatus download(const QuantOut& o) {
    CKPTMAP_TRY(staged::download(o.data, data, dataBytes));
    CKPTMAP_TRY(staged::download(o.scale, scale, scaleBytes));
    return staged::download(o.globalScale, global, globalBytes);
  }
  QuantRef ref(const QuantRef& like) const {
    return {like.format, data.get(), scale.get(), like.scaleType, globalBytes ? global.as<float>() : nullptr};
  }
  QuantOut out(const QuantOut& like) const {
    return {like.format, data.get(), scale.get(), like.scaleType, globalBytes ? global.as<float>() : nullptr};
  }
};

} // namespace

KernelStatus quantizeExperts(DType in, const void* src, size_t experts, size_t rows, size_t cols, const QuantOut& out,
                             const QuantOptions& opt) {
  if (!cudaAvailable())
    return errors::noDevice();
  DeviceBuffer input(nullptr);
  DeviceQuant q;
  CKPTMAP_TRY(q.allocate(out.format, out.scaleType, experts, rows, cols));
  CKPTMAP_TRY(upload(input, src, experts * rows * cols * dtypeSize(in)));
  CKPTMAP_TRY(cuda::quantizeExperts(in, input.get(), experts, rows, cols, q.out(out), opt));
  return q.download(out);
}

KernelStatus dequantizeExperts(const QuantRef& in, size_t experts, size_t rows, size_t cols, DType out, void* dst) {
  if (!cudaAvailable())
    return errors::noDevice();
  DeviceQuant q;
  DeviceBuffer output(nullptr);
  CKPTMAP_TRY(q.allocate(in.format, in.scaleType, experts, rows, cols));
  CKPTMAP_TRY(q.upload(in));
  const size_t bytes = experts * rows * cols * dtypeSize(out);
  CKPTMAP_TRY(output.allocate(bytes));
  CKPTMAP_TRY(cuda::dequantizeExperts(q.ref(in), experts, rows, cols, out, output.get()));
  return download(dst, output, bytes);
}

KernelStatus requantize(const QuantRef& in, size_t rows, size_t cols, const QuantOut& out, const QuantOptions& opt,
                        DType via) {
  if (!cudaAvailable())
    return errors::noDevice();
  DeviceQuant src, dst;
  CKPTMAP_TRY(src.allocate(in.format, in.scaleType, 1, rows, cols));
  CKPTMAP_TRY(src.upload(in));
  CKPTMAP_TRY(dst.allocate(out.format, out.scaleType, 1, rows, cols));
  CKPTMAP_TRY(cuda::requantize(src.ref(in), rows, cols, dst.out(out), opt, via));
  return dst.download(out);
}

#undef CKPTMAP_TRY

} // namespace staged
} // namespace ckptmap::cuda
