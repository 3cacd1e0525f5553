#include "runtime/exec/Device.h"

namespace ckptmap {

std::optional<DeviceChoice> parseDeviceChoice(llvm::StringRef name) {
  if (name == "cpu")
    return DeviceChoice::Cpu;
  if (name == "cuda")
    return DeviceChoice::Cuda;
  if (name == "auto")
    return DeviceChoice::Auto;
  return std::nullopt;
}

namespace {

bool computes(const Plan &plan) {
  for (const Step &step : plan.steps)
    for (const Instr &instr : step.instrs)
      switch (instr.op) {
      case InstrOp::Transpose:
      case InstrOp::Cast:
      case InstrOp::Affine:
      case InstrOp::Quantize:
      case InstrOp::Dequantize:
        return true;
      case InstrOp::Concat:
      case InstrOp::QkvFuse:
        if (instr.requantize)
          return true;
        break;
      default:
        break;
      }
  return false;
}

} // namespace

llvm::Expected<std::unique_ptr<KernelBackend>> openKernels(const DeviceOptions &options, const Plan &plan) {
  if (options.device == DeviceChoice::Cpu)
    return nullptr;
  // Auto does not start a GPU for a plan that only moves bytes; --device cuda still checks
  // that one is there, so asking for it never silently means the CPU.
  if (options.device == DeviceChoice::Auto && !computes(plan))
    return nullptr;
  CudaBackendOptions gpu = options.gpu;
  if (options.device == DeviceChoice::Auto)
    gpu.minBytes = std::max(gpu.minBytes, kAutoMinGpuBytes);
  KernelStatus status;
  std::unique_ptr<KernelBackend> backend = makeCudaBackend(gpu, status);
  if (backend)
    return backend;
  if (options.device == DeviceChoice::Auto && status.code() == KernelErrc::NoDevice)
    return nullptr;
  const char *name = options.device == DeviceChoice::Cuda ? "cuda" : "auto";
  return llvm::createStringError(llvm::inconvertibleErrorCode(), "--device %s: %s", name, status.message().c_str());
}

} // namespace ckptmap
