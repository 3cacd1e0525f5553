// An independent, deliberately simple safetensors parser: the oracle the reader and writer
// tests compare against. It trusts its input and validates nothing.
#pragma once

#include "TestUtil.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <map>

namespace ckptmap::test {

struct NaiveTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
  uint64_t fileOffset = 0;
};

struct NaiveFile {
  std::map<std::string, NaiveTensor> tensors;
  std::map<std::string, std::string> metadata;
};

inline NaiveFile naiveParse(const std::string &path) {
  std::string file = readFile(path);
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8); // the test hosts are little-endian
  nlohmann::json header = nlohmann::json::parse(file.substr(8, n));
  NaiveFile out;
  for (auto &[name, v] : header.items()) {
    if (name == "__metadata__") {
      out.metadata = v.get<std::map<std::string, std::string>>();
      continue;
    }
    uint64_t begin = v["data_offsets"][0], end = v["data_offsets"][1];
    out.tensors[name] = {v["dtype"], v["shape"].get<std::vector<int64_t>>(),
                         file.substr(8 + n + begin, end - begin), 8 + n + begin};
  }
  return out;
}

/// Tensor name -> shard file of a hub checkpoint's index.
inline std::map<std::string, std::string> naiveWeightMap(const std::string &dir) {
  nlohmann::json index = nlohmann::json::parse(readFile(dir + "/model.safetensors.index.json"));
  return index["weight_map"].get<std::map<std::string, std::string>>();
}

inline std::string asString(llvm::ArrayRef<uint8_t> bytes) {
  return std::string(reinterpret_cast<const char *>(bytes.data()), bytes.size());
}

} // namespace ckptmap::test
