#include "runtime/io/ByteSize.h"

#include "runtime/io/IoError.h"

#include <cctype>

namespace ckptmap {
namespace {

struct Unit {
  llvm::StringLiteral suffix;
  uint64_t factor;
};
constexpr Unit kUnits[] = {
    {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30}, {"TiB", 1ull << 40},
    {"KB", 1000ull},     {"MB", 1000'000ull}, {"GB", 1000'000'000ull},
    {"TB", 1000'000'000'000ull}, {"B", 1ull},
};

} // namespace

llvm::Expected<uint64_t> parseByteSize(llvm::StringRef text) {
  auto invalid = [&] {
    return ioError("invalid size '" + text +
                   "': expected an integer with an optional unit (B, KB, MB, GB, TB, KiB, MiB, "
                   "GiB, TiB)");
  };
  llvm::StringRef digits = text.take_while([](char c) { return std::isdigit(uint8_t(c)); });
  llvm::StringRef unit = text.drop_front(digits.size());
  if (digits.empty())
    return invalid();
  uint64_t factor = 1;
  if (!unit.empty()) {
    const Unit *match = nullptr;
    for (const Unit &u : kUnits)
      if (unit.equals_insensitive(u.suffix)) {
        match = &u;
        break;
      }
    if (!match)
      return invalid();
    if (unit.back() == 'b' && !match->suffix.contains('i'))
      return ioError("invalid size '" + text +
                     "': a lowercase 'b' means bits; write the unit with 'B' for bytes");
    factor = match->factor;
  }
  uint64_t value = 0;
  if (digits.getAsInteger(10, value))
    return ioError("size '" + text + "' is too large");
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(value, factor, &bytes))
    return ioError("size '" + text + "' is too large");
  return bytes;
}

} // namespace ckptmap
