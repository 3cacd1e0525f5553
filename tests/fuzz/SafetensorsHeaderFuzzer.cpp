// libFuzzer target: the safetensors header parser on hostile bytes, then what opening a
// checkpoint does with a header that parses (grouping quantized weights with their scales).
//
// Input: four bytes (little-endian) giving the size of a data section to pretend, then the
// file's first bytes (length, header, anything). The parser never reads the data section, so
// the seeds hold a real file's header and the size of its data instead of the data itself.
#include "compiler/quant/Grouping.h"
#include "runtime/io/SafetensorsHeader.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <vector>

using namespace ckptmap;

namespace {

constexpr uint32_t kMaxPretendedData = 1u << 20;

/// Stored tensors as a multiset of (name, dtype, shape).
std::map<std::tuple<std::string, DType, std::vector<int64_t>>, int> contents(llvm::ArrayRef<TensorMeta> metas) {
  std::map<std::tuple<std::string, DType, std::vector<int64_t>>, int> out;
  for (const TensorMeta &t : metas)
    ++out[{t.name, t.dtype, std::vector<int64_t>(t.shape.begin(), t.shape.end())}];
  return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4)
    return 0;
  uint32_t pretended = 0;
  std::memcpy(&pretended, data, 4);
  pretended %= kMaxPretendedData + 1;
  // Exactly the file's size, so a read past its end is one AddressSanitizer reports.
  std::vector<uint8_t> file(size - 4 + pretended);
  if (size > 4) // an empty vector's data() may be null, which memcpy must not get
    std::memcpy(file.data(), data + 4, size - 4);

  auto header = parseSafetensorsHeader(file, "fuzz.safetensors");
  if (!header) {
    llvm::consumeError(header.takeError());
    return 0;
  }
  std::vector<TensorMeta> stored;
  for (const HeaderTensor &t : header->tensors) {
    if (t.begin > t.end || t.end > file.size() - header->dataStart)
      std::abort(); // accepted offsets outside the data section
    stored.push_back(t.meta);
  }
  // Reading a checkpoint groups weights with their scales, writing expands them again: the
  // stored tensors must come back exactly, whatever the names and shapes.
  std::vector<TensorMeta> logical = groupQuantized(stored);
  if (contents(expandQuantized(logical)) != contents(stored))
    std::abort();
  return 0;
}
