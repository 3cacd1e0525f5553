// The CUDA entry points in a build without CUDA: every call reports NoDevice.
#ifndef CKPTMAP_HAVE_CUDA

#include "kernels/Cuda.h"

namespace ckptmap::cuda {
namespace {
KernelStatus noDevice() {
  return KernelStatus::error(KernelErrc::NoDevice, "ckptmap was built without CUDA");
}
} // namespace

bool cudaAvailable() { return false; }
KernelStatus castTensor(DType, const void*, DType, void*, size_t, void*) { return noDevice(); }
KernelStatus affineTensor(DType, const void*, DType, void*, size_t, double, double, void*) { return noDevice(); }
KernelStatus transpose(const void*, void*, const int64_t*, const int64_t*, size_t, size_t, void*) {
  return noDevice();
}
KernelStatus amax(DType, const void*, size_t, float&, void*) { return noDevice(); }
KernelStatus quantize(DType, const void*, size_t, size_t, const QuantOut&, const QuantOptions&, void*) {
  return noDevice();
}
KernelStatus quantizeExperts(DType, const void*, size_t, size_t, size_t, const QuantOut&, const QuantOptions&, void*) {
  return noDevice();
}
KernelStatus dequantize(const QuantRef&, size_t, size_t, DType, void*, void*) { return noDevice(); }
KernelStatus dequantizeExperts(const QuantRef&, size_t, size_t, size_t, DType, void*, void*) { return noDevice(); }
KernelStatus requantize(const QuantRef&, size_t, size_t, const QuantOut&, const QuantOptions&, DType, void*, void*) {
  return noDevice();
}

} // namespace ckptmap::cuda

#endif
