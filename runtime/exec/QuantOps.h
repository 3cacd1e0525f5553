// The compute side of quantized values: turning bundles into plain tensors and back with a
// kernel backend (CPU reference or GPU), matrix by matrix (experts and FP8 block row groups are
// matrices of their own).
#pragma once

#include "runtime/exec/Values.h"

#include "kernels/Backend.h"

#include <optional>

namespace ckptmap {

/// A plain value of dtype `to` (F32, BF16, F16) holding the numbers of bundle `in`; an error
/// naming the part (of logical tensor `name`) when a scale is NaN, infinite, zero or negative.
llvm::Expected<RtValue> dequantizeValue(RtValue &in, DType to, KernelBackend &kernels,
                                        llvm::StringRef name = {});

/// Quantizes plain `in` (F32, BF16, F16) into `target`'s format. `globals` fixes the per-matrix
/// scale (NVFP4's weight_scale_2, FP8's weight_scale), one per expert, instead of deriving it from
/// the data; `inputScale` is carried into the bundle when the target has one (an activation scale
/// is never invented).
llvm::Expected<RtValue> quantizeValue(RtValue &in, const ValueType &target, KernelBackend &kernels,
                                      llvm::ArrayRef<float> globals = {}, const RtValue *inputScale = nullptr);

/// The per-matrix scales plain values quantized together into `kind` share (the largest each
/// would have alone), as ModelOpt gives the modules engines fuse (q/k/v, gate/up); empty for
/// formats without a per-matrix scale.
llvm::Expected<std::vector<float>> sharedQuantScales(llvm::ArrayRef<RtValue *> plain, QuantKind kind,
                                                     KernelBackend &kernels);

/// The same numbers under another naming of the same format (ModelOpt <-> compressed-tensors
/// NVFP4): packed data and block scales kept, global scales inverted. `exact` is cleared when an
/// inverted scale does not invert back to the same bits.
llvm::Expected<RtValue> renameQuantized(RtValue &in, const ValueType &target, bool &exact);

/// The per-matrix scales (global, input) of a bundle, which parts joined into one matrix must
/// share; empty for formats without them.
std::vector<const RtValue *> sharedScales(const RtValue &bundle);

/// The largest NVFP4 global scale (as weight_scale_2) per matrix over the bundles: what a
/// requantized join uses, so no part's block scales overflow.
std::vector<float> largestGlobalScales(llvm::ArrayRef<RtValue *> bundles);

/// The input_scale a requantized join keeps: per matrix, the largest of the bundles' (as engines
/// do when they fuse q/k/v or gate/up), so no part's activations clip. Bundles without one: none.
std::optional<RtValue> largestInputScale(llvm::ArrayRef<RtValue *> bundles);

} // namespace ckptmap
