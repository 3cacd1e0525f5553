// Messages shared by the CPU and CUDA entry points, so both report failures identically.
#pragma once

#include "base/DType.h"
#include "kernels/Float.h"
#include "kernels/Status.h"

#include <cstdio>
#include <string>

namespace ckptmap::errors {

inline KernelStatus unsupportedCast(DType from, DType to) {
  return KernelStatus::error(KernelErrc::UnsupportedCast, "cannot cast " + std::string(dtypeName(from)) +
                                                              " to " + std::string(dtypeName(to)));
}

inline KernelStatus unsupportedAffine(DType from, DType to) {
  return KernelStatus::error(KernelErrc::UnsupportedDType,
                             "affine map supports F64/F32/F16/BF16, not " + std::string(dtypeName(from)) +
                                 " -> " + std::string(dtypeName(to)));
}

inline KernelStatus unsupportedDType(const char* what, DType t) {
  return KernelStatus::error(KernelErrc::UnsupportedDType,
                             std::string(what) + " does not take " + std::string(dtypeName(t)));
}

inline KernelStatus outOfRange(DType to, size_t index) {
  return KernelStatus::error(KernelErrc::OutOfRange,
                             "value at element " + std::to_string(index) + " does not fit " +
                                 std::string(dtypeName(to)),
                             index);
}

inline KernelStatus badShape(std::string what) {
  return KernelStatus::error(KernelErrc::BadShape, std::move(what));
}

/// `value` is the offending input (as F32), `index` its flat position in a [rows, cols] matrix.
inline KernelStatus nonFinite(float value, size_t index, size_t cols) {
  const char* kind = fp::isNaN(value) ? "NaN" : (value > 0 ? "+Inf" : "-Inf");
  std::string msg = std::string(kind) + " in quantizer input at element " + std::to_string(index);
  if (cols)
    msg += " (row " + std::to_string(index / cols) + ", col " + std::to_string(index % cols) + ")";
  return KernelStatus::error(KernelErrc::NonFinite, std::move(msg), index);
}

/// The status of expert e's matrix within a [E, rows, cols] stack (index stays expert-local).
inline KernelStatus inExpert(const KernelStatus& s, size_t e) {
  if (s)
    return s;
  return KernelStatus::error(s.code(), "expert " + std::to_string(e) + ": " + s.message(), s.index());
}

inline KernelStatus noDevice() { return KernelStatus::error(KernelErrc::NoDevice, "no CUDA device"); }

} // namespace ckptmap::errors
