// Element types per DType and the element conversions behind castTensor / affineTensor,
// shared by the CPU reference and the CUDA kernels (host and device code).
#pragma once

#include "base/DType.h"
#include "kernels/Float.h"

#include <cstdint>
#include <type_traits>

namespace ckptmap {

struct e8m0_t { uint8_t bits; };
struct bool_t { uint8_t bits; };

template <class T> struct TypeTag { using type = T; };

/// Calls f(TypeTag<T>{}) with the element type of `t` (every DType has one).
template <class F> constexpr void visitDType(DType t, F&& f) {
  switch (t) {
  case DType::F64: f(TypeTag<double>{}); return;
  case DType::F32: f(TypeTag<float>{}); return;
  case DType::F16: f(TypeTag<f16_t>{}); return;
  case DType::BF16: f(TypeTag<bf16_t>{}); return;
  case DType::F8_E4M3: f(TypeTag<e4m3_t>{}); return;
  case DType::F8_E5M2: f(TypeTag<e5m2_t>{}); return;
  case DType::F8_E8M0: f(TypeTag<e8m0_t>{}); return;
  case DType::I64: f(TypeTag<int64_t>{}); return;
  case DType::I32: f(TypeTag<int32_t>{}); return;
  case DType::I16: f(TypeTag<int16_t>{}); return;
  case DType::I8: f(TypeTag<int8_t>{}); return;
  case DType::U64: f(TypeTag<uint64_t>{}); return;
  case DType::U32: f(TypeTag<uint32_t>{}); return;
  case DType::U16: f(TypeTag<uint16_t>{}); return;
  case DType::U8: f(TypeTag<uint8_t>{}); return;
  case DType::BOOL: f(TypeTag<bool_t>{}); return;
  }
}

/// Calls f(TypeTag<T>{}) for the dtypes quantizers read and dequantizers write (F32, BF16,
/// F16); returns false, without calling f, for any other dtype.
template <class F> bool visitQuantDType(DType t, F&& f) {
  switch (t) {
  case DType::F32: f(TypeTag<float>{}); return true;
  case DType::BF16: f(TypeTag<bf16_t>{}); return true;
  case DType::F16: f(TypeTag<f16_t>{}); return true;
  default: return false;
  }
}

namespace conv {

template <class T> inline constexpr bool kIsInteger = std::is_integral_v<T> || std::is_same_v<T, bool_t>;
/// Types whose every value is exactly an F32 (so F32 is an exact intermediate).
template <class T>
inline constexpr bool kIsF32Exact =
    std::is_same_v<T, float> || std::is_same_v<T, bf16_t> || std::is_same_v<T, f16_t> ||
    std::is_same_v<T, e4m3_t> || std::is_same_v<T, e5m2_t> || std::is_same_v<T, e8m0_t>;
/// Types a cast may write as a floating-point value (E8M0 is read-only).
template <class T>
inline constexpr bool kIsFloatTarget = std::is_same_v<T, double> || std::is_same_v<T, float> ||
                                       std::is_same_v<T, bf16_t> || std::is_same_v<T, f16_t> ||
                                       std::is_same_v<T, e4m3_t> || std::is_same_v<T, e5m2_t>;

/// Whether castTensor converts In -> Out (the same type is always a copy).
template <class In, class Out>
inline constexpr bool kCastable =
    std::is_same_v<In, Out> || (kIsFloatTarget<Out> && (kIsF32Exact<In> || std::is_same_v<In, double> ||
                                                        kIsInteger<In>)) ||
    (kIsInteger<In> && kIsInteger<Out>);

template <class T> struct FormatOf;
template <> struct FormatOf<bf16_t> { using type = fp::Bf16Format; };
template <> struct FormatOf<f16_t> { using type = fp::F16Format; };
template <> struct FormatOf<e4m3_t> { using type = fp::E4m3Format; };
template <> struct FormatOf<e5m2_t> { using type = fp::E5m2Format; };

CKPTMAP_HD float toF32(e8m0_t v) { return fp::e8m0ToF32(v.bits); }
using ckptmap::toF32;

/// An integer as sign and magnitude (exact for every 64-bit value).
struct IntValue {
  bool negative;
  uint64_t mag;
};
template <class T> CKPTMAP_HD IntValue intValue(T v) {
  if constexpr (std::is_same_v<T, bool_t>) {
    return {false, static_cast<uint64_t>(v.bits != 0)};
  } else if constexpr (std::is_signed_v<T>) {
    if (v < 0)
      return {true, static_cast<uint64_t>(-(static_cast<int64_t>(v) + 1)) + 1};
    return {false, static_cast<uint64_t>(v)};
  } else {
    return {false, static_cast<uint64_t>(v)};
  }
}

template <class T> CKPTMAP_HD bool intFits(IntValue x) {
  if constexpr (std::is_same_v<T, bool_t>) {
    return !x.negative && x.mag <= 1;
  } else if constexpr (std::is_signed_v<T>) {
    constexpr uint64_t maxPos = static_cast<uint64_t>(static_cast<T>(~0ull >> 1 >> (64 - 8 * sizeof(T))));
    return x.negative ? x.mag <= maxPos + 1 : x.mag <= maxPos;
  } else {
    constexpr uint64_t maxVal = ~0ull >> (64 - 8 * sizeof(T));
    return (!x.negative || x.mag == 0) && x.mag <= maxVal;
  }
}

template <class T> CKPTMAP_HD T fromInt(IntValue x) { // x fits T
  if constexpr (std::is_same_v<T, bool_t>) {
    return bool_t{static_cast<uint8_t>(x.mag)};
  } else if constexpr (std::is_signed_v<T>) {
    return x.negative ? static_cast<T>(-static_cast<int64_t>(x.mag - 1) - 1) : static_cast<T>(x.mag);
  } else {
    return static_cast<T>(x.mag);
  }
}

/// Converts one element with a single rounding. `ok` is cleared when an integer target
/// cannot hold the value (the element is then written as 0). Only for kCastable pairs.
template <class Out, class In> CKPTMAP_HD Out convert(In v, bool& ok) {
  if constexpr (std::is_same_v<In, Out>) {
    return v;
  } else if constexpr (kIsInteger<Out>) {
    const IntValue x = intValue(v);
    if (!intFits<Out>(x)) {
      ok = false;
      return fromInt<Out>(IntValue{false, 0});
    }
    return fromInt<Out>(x);
  } else if constexpr (std::is_same_v<Out, double>) {
    if constexpr (kIsInteger<In>) {
      const IntValue x = intValue(v);
      const double m = static_cast<double>(x.mag); // one IEEE rounding
      return x.negative ? -m : m;
    } else {
      return static_cast<double>(toF32(v)); // exact
    }
  } else if constexpr (std::is_same_v<Out, float>) {
    if constexpr (std::is_same_v<In, double>) {
      return fp::f64ToF32(v);
    } else if constexpr (kIsInteger<In>) {
      const IntValue x = intValue(v);
      const float m = static_cast<float>(x.mag); // one IEEE rounding
      return x.negative ? -m : m;
    } else {
      return toF32(v);
    }
  } else {
    using Fmt = typename FormatOf<Out>::type;
    uint32_t bits;
    if constexpr (std::is_same_v<In, double>) {
      bits = fp::encode<Fmt>(v);
    } else if constexpr (kIsInteger<In>) {
      const IntValue x = intValue(v);
      bits = fp::encodeInteger<Fmt>(x.negative, x.mag);
    } else {
      bits = fromF32<Out>(toF32(v)).bits; // the named conversions (fast paths on the device)
    }
    Out o;
    if constexpr (sizeof(Out) == 2)
      o.bits = static_cast<uint16_t>(bits);
    else
      o.bits = static_cast<uint8_t>(bits);
    return o;
  }
}

/// Types affineTensor reads and writes.
template <class T>
inline constexpr bool kIsAffineType = std::is_same_v<T, double> || std::is_same_v<T, float> ||
                                      std::is_same_v<T, bf16_t> || std::is_same_v<T, f16_t>;

/// y = x * scale + shift: two IEEE operations in F64 when either side is F64, else in F32
/// (scale and shift rounded to F32 first), then one rounding to Out.
template <class Out, class In> struct Affine {
  static constexpr bool kWide = std::is_same_v<In, double> || std::is_same_v<Out, double>;
  using Math = std::conditional_t<kWide, double, float>;
  Math scale, shift;

  CKPTMAP_HD Out operator()(In v) const {
    bool ok = true;
    const Math x = convert<Math>(v, ok);
    const Math y = fp::add(fp::mul(x, scale), shift);
    return convert<Out>(y, ok);
  }
};

template <class Out, class In> Affine<Out, In> makeAffine(double scale, double shift) {
  using A = Affine<Out, In>;
  if constexpr (A::kWide)
    return A{scale, shift};
  else
    return A{fp::f64ToF32(scale), fp::f64ToF32(shift)};
}

} // namespace conv

/// Whether castTensor supports from -> to (see conv::kCastable).
constexpr bool castSupported(DType from, DType to) {
  bool r = false;
  visitDType(from, [&](auto in) {
    visitDType(to, [&](auto out) {
      r = conv::kCastable<typename decltype(in)::type, typename decltype(out)::type>;
    });
  });
  return r;
}

constexpr bool affineSupported(DType from, DType to) {
  auto ok = [](DType t) { return t == DType::F64 || t == DType::F32 || t == DType::F16 || t == DType::BF16; };
  return ok(from) && ok(to);
}

} // namespace ckptmap
