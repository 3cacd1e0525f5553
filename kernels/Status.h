// Result of a kernel call. Kernels never throw and never print: a failure comes back as a
// KernelStatus that the caller turns into a diagnostic naming the tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

namespace ckptmap {

enum class KernelErrc : uint8_t {
  Ok,
  UnsupportedDType, // a dtype the op does not take (e.g. quantizing I32)
  UnsupportedCast,  // a cast pair that has no meaning (e.g. F32 -> I32)
  BadShape,         // shape does not fit the format (NVFP4 cols % 16, MXFP8 cols % 32)
  NonFinite,        // NaN or Inf in the input of a quantizer
  OutOfRange,       // an integer cast whose value does not fit the target
  NoDevice,         // CUDA requested but no GPU (or a build without CUDA)
  DeviceError,      // a CUDA runtime call failed
};

constexpr std::string_view kernelErrcName(KernelErrc c) {
  switch (c) {
  case KernelErrc::Ok: return "ok";
  case KernelErrc::UnsupportedDType: return "unsupported dtype";
  case KernelErrc::UnsupportedCast: return "unsupported cast";
  case KernelErrc::BadShape: return "bad shape";
  case KernelErrc::NonFinite: return "non-finite value";
  case KernelErrc::OutOfRange: return "value out of range";
  case KernelErrc::NoDevice: return "no CUDA device";
  case KernelErrc::DeviceError: return "CUDA error";
  }
  return "?";
}

class [[nodiscard]] KernelStatus {
public:
  static constexpr size_t kNoIndex = std::numeric_limits<size_t>::max();

  KernelStatus() = default;
  static KernelStatus error(KernelErrc code, std::string message, size_t index = kNoIndex) {
    KernelStatus s;
    s.code_ = code;
    s.message_ = std::move(message);
    s.index_ = index;
    return s;
  }

  bool ok() const { return code_ == KernelErrc::Ok; }
  explicit operator bool() const { return ok(); }
  KernelErrc code() const { return code_; }
  /// Human-readable, without the tensor name (the caller adds it).
  const std::string& message() const { return message_; }
  /// Flat element index the error refers to (NonFinite, OutOfRange), else kNoIndex.
  size_t index() const { return index_; }

private:
  KernelErrc code_ = KernelErrc::Ok;
  std::string message_;
  size_t index_ = kNoIndex;
};

} // namespace ckptmap
