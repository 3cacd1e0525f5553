// The CPU reference behind the KernelBackend interface, and the CUDA backend's absence in a
// build without CUDA.
#include "kernels/Backend.h"

#include "kernels/Cast.h"
#include "kernels/Errors.h"
#include "kernels/Layout.h"

namespace ckptmap {
namespace {

class CpuBackend final : public KernelBackend {
public:
  const char* name() const override { return "cpu"; }

  KernelStatus castTensor(DType from, const void* src, DType to, void* dst, size_t n) override {
    count();
    return cpu::castTensor(from, src, to, dst, n);
  }
  KernelStatus affineTensor(DType from, const void* src, DType to, void* dst, size_t n, double scale,
                            double shift) override {
    count();
    return cpu::affineTensor(from, src, to, dst, n, scale, shift);
  }
  KernelStatus transpose(const void* src, void* dst, const int64_t* shape, const int64_t* perm, size_t rank,
                         size_t elemBytes) override {
    count();
    return cpu::transpose(src, dst, shape, perm, rank, elemBytes);
  }
  KernelStatus amax(DType in, const void* src, size_t n, size_t cols, float& result) override {
    count();
    switch (in) {
    case DType::F32: return cpu::amax(static_cast<const float*>(src), n, result, cols);
    case DType::BF16: return cpu::amax(static_cast<const bf16_t*>(src), n, result, cols);
    case DType::F16: return cpu::amax(static_cast<const f16_t*>(src), n, result, cols);
    default: return errors::unsupportedDType("quantization", in);
    }
  }
  KernelStatus quantize(DType in, const void* src, size_t rows, size_t cols, const QuantOut& out,
                        const QuantOptions& opt) override {
    count();
    return cpu::quantize(in, src, rows, cols, out, opt);
  }
  KernelStatus dequantize(const QuantRef& in, size_t rows, size_t cols, DType out, void* dst) override {
    count();
    return cpu::dequantize(in, rows, cols, out, dst);
  }
  BackendStats stats() const override {
    BackendStats s;
    s.hostOps = ops_.load(std::memory_order_relaxed);
    return s;
  }

private:
  void count() { ops_.fetch_add(1, std::memory_order_relaxed); }
  std::atomic<uint64_t> ops_{0};
};

} // namespace

KernelBackend& cpuBackend() {
  static CpuBackend backend;
  return backend;
}

#ifndef CKPTMAP_HAVE_CUDA
std::unique_ptr<KernelBackend> makeCudaBackend(const CudaBackendOptions&, KernelStatus& status) {
  status = KernelStatus::error(KernelErrc::NoDevice, "ckptmap was built without CUDA");
  return nullptr;
}
#endif

} // namespace ckptmap
