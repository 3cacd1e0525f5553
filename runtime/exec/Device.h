// Choosing where a plan's compute ops run (--device): the CPU reference or the GPU backend,
// which give identical bits.
#pragma once

#include "compiler/plan/Plan.h"
#include "kernels/Backend.h"

#include "llvm/Support/Error.h"

#include <memory>
#include <optional>

namespace ckptmap {

enum class DeviceChoice {
  Cpu,  ///< the CPU reference only
  Cuda, ///< every compute op on the GPU; an error when there is none
  Auto, ///< the GPU for tensors large enough to gain from it, when one is present
};

std::optional<DeviceChoice> parseDeviceChoice(llvm::StringRef name);

struct DeviceOptions {
  DeviceChoice device = DeviceChoice::Auto;
  CudaBackendOptions gpu;
};

/// Under --device auto, tensors smaller than this stay on the CPU: their transfer would cost
/// more than the kernel saves.
inline constexpr uint64_t kAutoMinGpuBytes = uint64_t(1) << 20;

/// The backend `plan` runs on; null for the CPU reference (--device cpu, auto without a GPU,
/// or a plan with nothing to compute).
llvm::Expected<std::unique_ptr<KernelBackend>> openKernels(const DeviceOptions &options, const Plan &plan);

} // namespace ckptmap
