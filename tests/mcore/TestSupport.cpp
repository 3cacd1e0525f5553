#include "TestSupport.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>
#include <regex>

namespace ckptmap::mcore::test {

std::string fixture(const std::string &rel) { return std::string(CKPTMAP_SOURCE_DIR) + "/tests/fixtures/mcore/" + rel; }

std::vector<uint8_t> readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot open " << path);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void writeFile(const std::string &path, const std::vector<uint8_t> &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char *>(bytes.data()), std::streamsize(bytes.size()));
  REQUIRE(out.good());
}

std::map<std::string, StTensor> readSafetensors(const std::string &path) {
  std::vector<uint8_t> file = readFile(path);
  REQUIRE(file.size() >= 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i)
    n |= uint64_t(file[i]) << (8 * i);
  REQUIRE(8 + n <= file.size());
  auto header = nlohmann::json::parse(file.begin() + 8, file.begin() + 8 + long(n));
  std::map<std::string, StTensor> out;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__")
      continue;
    StTensor t;
    auto dt = parseDType(it.value()["dtype"].get<std::string>());
    REQUIRE(dt);
    t.dtype = *dt;
    for (auto d : it.value()["shape"])
      t.shape.push_back(d.get<int64_t>());
    uint64_t a = it.value()["data_offsets"][0], b = it.value()["data_offsets"][1];
    REQUIRE(8 + n + b <= file.size());
    t.bytes.assign(file.begin() + long(8 + n + a), file.begin() + long(8 + n + b));
    out.emplace(it.key(), std::move(t));
  }
  return out;
}

ScratchDir::ScratchDir(const std::string &name) {
  path_ = std::string(CKPTMAP_BINARY_DIR) + "/tests/mcore/scratch/" + name;
  llvm::sys::fs::remove_directories(path_);
  REQUIRE(!llvm::sys::fs::create_directories(path_));
}

ScratchDir::~ScratchDir() {
  if (!getenv("CKPTMAP_KEEP_SCRATCH"))
    llvm::sys::fs::remove_directories(path_);
}

void copyTree(const std::string &from, const std::string &to) {
  REQUIRE(!llvm::sys::fs::create_directories(to));
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(from, ec), end; it != end && !ec; it.increment(ec)) {
    std::string name = llvm::sys::path::filename(it->path()).str();
    if (llvm::sys::fs::is_directory(it->path()))
      copyTree(it->path(), to + "/" + name);
    else
      writeFile(to + "/" + name, readFile(it->path()));
  }
  REQUIRE(!ec);
}

std::string errorText(llvm::Error err) {
  std::string text;
  llvm::handleAllErrors(std::move(err), [&](const llvm::ErrorInfoBase &e) {
    if (!text.empty())
      text += "\n";
    text += e.message();
  });
  return text;
}

std::map<std::string, StTensor> testOnlyDistToInMemory(const std::string &key, const StTensor &tensor) {
  std::map<std::string, StTensor> out;
  std::string name = key;
  static const std::regex mtp(R"(^mtp\.layers\.(\d+)\.transformer_layer\.)");
  name = std::regex_replace(name, mtp, "mtp.layers.$1.mtp_model_layer.");
  static const std::regex qkvNorm(R"(\.self_attention\.linear_qkv\.layer_norm_weight$)");
  static const std::regex fc1Norm(R"(\.mlp\.linear_fc1\.layer_norm_weight$)");
  name = std::regex_replace(name, qkvNorm, ".input_layernorm.weight");
  name = std::regex_replace(name, fc1Norm, ".pre_mlp_layernorm.weight");
  static const std::regex stacked(R"(^(.*\.mlp\.experts)\.experts\.(linear_fc[12]\.weight)$)");
  std::smatch m;
  if (std::regex_match(name, m, stacked)) {
    REQUIRE(!tensor.shape.empty());
    const int64_t experts = tensor.shape[0];
    const size_t each = tensor.bytes.size() / size_t(experts);
    for (int64_t e = 0; e < experts; ++e) {
      StTensor t{tensor.dtype, Shape(tensor.shape.begin() + 1, tensor.shape.end()), {}};
      t.bytes.assign(tensor.bytes.begin() + long(e * each), tensor.bytes.begin() + long((e + 1) * each));
      out.emplace(m[1].str() + ".local_experts." + std::to_string(e) + "." + m[2].str(), std::move(t));
    }
    return out;
  }
  out.emplace(name, tensor);
  return out;
}

std::map<std::string, StTensor> readAll(const TensorSource &source) {
  std::map<std::string, StTensor> out;
  for (const SourceTensor &t : source.tensors()) {
    auto bytes = source.read(t);
    REQUIRE_MESSAGE(bytes, errorText(bytes.takeError()));
    REQUIRE(bytes->size() == t.meta.byteSize());
    out.emplace(t.meta.name, StTensor{t.meta.dtype, t.meta.shape, std::vector<uint8_t>(bytes->bytes().begin(), bytes->bytes().end())});
  }
  return out;
}

} // namespace ckptmap::mcore::test
