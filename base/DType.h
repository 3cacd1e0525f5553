// Element types of checkpoint tensors, named as the safetensors format names them.
// Every layer speaks of dtypes through this header; it has no dependencies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace ckptmap {

enum class DType : uint8_t {
  F64, F32, F16, BF16, F8_E4M3, F8_E5M2, F8_E8M0,
  I64, I32, I16, I8, U64, U32, U16, U8, BOOL,
};

inline constexpr DType kAllDTypes[] = {
    DType::F64,  DType::F32, DType::F16, DType::BF16, DType::F8_E4M3, DType::F8_E5M2,
    DType::F8_E8M0, DType::I64, DType::I32, DType::I16, DType::I8, DType::U64,
    DType::U32, DType::U16, DType::U8, DType::BOOL};

constexpr std::string_view dtypeName(DType t) {
  switch (t) {
  case DType::F64: return "F64";
  case DType::F32: return "F32";
  case DType::F16: return "F16";
  case DType::BF16: return "BF16";
  case DType::F8_E4M3: return "F8_E4M3";
  case DType::F8_E5M2: return "F8_E5M2";
  case DType::F8_E8M0: return "F8_E8M0";
  case DType::I64: return "I64";
  case DType::I32: return "I32";
  case DType::I16: return "I16";
  case DType::I8: return "I8";
  case DType::U64: return "U64";
  case DType::U32: return "U32";
  case DType::U16: return "U16";
  case DType::U8: return "U8";
  case DType::BOOL: return "BOOL";
  }
  return "?";
}

constexpr size_t dtypeSize(DType t) {
  switch (t) {
  case DType::F64: case DType::I64: case DType::U64: return 8;
  case DType::F32: case DType::I32: case DType::U32: return 4;
  case DType::F16: case DType::BF16: case DType::I16: case DType::U16: return 2;
  default: return 1;
  }
}

constexpr bool isFloating(DType t) {
  switch (t) {
  case DType::F64: case DType::F32: case DType::F16: case DType::BF16:
  case DType::F8_E4M3: case DType::F8_E5M2: case DType::F8_E8M0: return true;
  default: return false;
  }
}

/// Parses a safetensors dtype name ("BF16"); case-sensitive, as the format is.
constexpr std::optional<DType> parseDType(std::string_view name) {
  for (DType t : kAllDTypes)
    if (dtypeName(t) == name)
      return t;
  return std::nullopt;
}

} // namespace ckptmap
