// Bit-for-bit comparison with test vectors written by tools/quant_vectors.py (an independent
// torch implementation of reference/quant.md) into tests/kernels/vectors/*.safetensors.
//
// File layout (one case per file; `__metadata__.format` names the case's kind):
//   nvfp4:     input [r,c] | [E,r,c] (F32/BF16), weight U8, weight_scale F8_E4M3,
//              weight_scale_2 F32 ([] or [E]), dequant F32, dequant_bf16 BF16
//   fp8:       input, weight F8_E4M3, weight_scale F32 ([] or [E]), dequant, dequant_bf16
//   fp8_block: input, weight F8_E4M3, weight_scale_inv F32|BF16, dequant, dequant_bf16
//   mxfp8:     input, weight F8_E4M3, weight_scale_inv U8, dequant, dequant_bf16
//   cast:      f32 F32 [n] and its casts bf16, f16, e4m3 (torch's .to), e4m3_sat
//              (clamp to +-448 first), e5m2 (optional); e4m3_all F8_E4M3 [256] and e4m3_all_f32
// Quantizers run on `input` and must reproduce weight and scales; the dequantizers run on the
// file's weight and scales and must reproduce dequant / dequant_bf16.
#include "kernels/Cast.h"
#include "kernels/Quant.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

using namespace ckptmap;
namespace fs = std::filesystem;

namespace {

struct Tensor {
  DType dtype = DType::U8;
  std::vector<size_t> shape;
  std::vector<uint8_t> bytes;
  size_t numel() const {
    size_t n = 1;
    for (size_t d : shape)
      n *= d;
    return n;
  }
};

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
  const Tensor& at(const std::string& name) const {
    auto it = tensors.find(name);
    if (it == tensors.end())
      FAIL("missing tensor " << name);
    return it->second;
  }
};

/// Minimal safetensors reader: u64 LE header size, JSON header, data.
SafetensorsFile readSafetensors(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  uint8_t lenBytes[8];
  in.read(reinterpret_cast<char*>(lenBytes), 8);
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i)
    len = len << 8 | lenBytes[i];
  std::string header(len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(len));
  std::vector<uint8_t> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const nlohmann::json j = nlohmann::json::parse(header);
  SafetensorsFile f;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      for (auto m = it->begin(); m != it->end(); ++m)
        f.metadata[m.key()] = m->get<std::string>();
      continue;
    }
    Tensor t;
    const auto dt = parseDType((*it)["dtype"].get<std::string>());
    REQUIRE(dt.has_value());
    t.dtype = *dt;
    t.shape = (*it)["shape"].get<std::vector<size_t>>();
    const auto off = (*it)["data_offsets"].get<std::vector<size_t>>();
    REQUIRE(off.size() == 2);
    REQUIRE(off[1] <= data.size());
    REQUIRE(off[1] - off[0] == t.numel() * dtypeSize(t.dtype));
    t.bytes.assign(data.begin() + static_cast<std::ptrdiff_t>(off[0]), data.begin() + static_cast<std::ptrdiff_t>(off[1]));
    f.tensors[it.key()] = std::move(t);
  }
  return f;
}

std::vector<fs::path> vectorFiles() {
  const fs::path dir = fs::path(CKPTMAP_SOURCE_DIR) / "tests" / "kernels" / "vectors";
  std::vector<fs::path> files;
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".safetensors")
        files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

/// First differing element (as hex) or an empty string.
std::string firstDifference(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want, size_t elem) {
  if (got.size() != want.size())
    return "size " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
  for (size_t i = 0; i < got.size(); i += elem)
    if (std::memcmp(got.data() + i, want.data() + i, elem) != 0) {
      uint64_t g = 0, w = 0;
      std::memcpy(&g, got.data() + i, elem);
      std::memcpy(&w, want.data() + i, elem);
      char buf[128];
      std::snprintf(buf, sizeof buf, "element %zu: got 0x%llx, want 0x%llx", i / elem,
                    static_cast<unsigned long long>(g), static_cast<unsigned long long>(w));
      return buf;
    }
  return {};
}

#define CHECK_BYTES(name, got, want, elem)                                                                  \
  do {                                                                                                       \
    const std::string diff_ = firstDifference(got, want, elem);                                              \
    INFO(name << ": " << diff_);                                                                             \
    CHECK(diff_.empty());                                                                                    \
  } while (0)

QuantFormat formatOf(const std::string& s) {
  if (s == "nvfp4")
    return QuantFormat::Nvfp4;
  if (s == "fp8")
    return QuantFormat::Fp8Tensor;
  if (s == "fp8_block")
    return QuantFormat::Fp8Block;
  return QuantFormat::Mxfp8;
}

void checkQuantCase(const SafetensorsFile& f, QuantFormat format) {
  const Tensor& input = f.at("input");
  const size_t experts = input.shape.size() == 3 ? input.shape[0] : 1;
  const size_t rows = input.shape[input.shape.size() - 2], cols = input.shape.back();
  const Tensor& weight = f.at("weight");
  const char* scaleName = format == QuantFormat::Nvfp4 || format == QuantFormat::Fp8Tensor ? "weight_scale" : "weight_scale_inv";
  const Tensor& scale = f.at(scaleName);
  const DType scaleType = format == QuantFormat::Fp8Block ? scale.dtype : DType::F32;

  // Quantize.
  std::vector<uint8_t> data(weight.bytes.size()), sc(scale.bytes.size());
  std::vector<float> global(experts, 0.0f);
  QuantOut out{format, data.data(), sc.data(), scaleType, global.data()};
  REQUIRE(cpu::quantizeExperts(input.dtype, input.bytes.data(), experts, rows, cols, out).ok());
  CHECK_BYTES("weight", data, weight.bytes, 1);
  CHECK_BYTES(scaleName, sc, scale.bytes, dtypeSize(scale.dtype));
  std::vector<uint8_t> globalBytes(experts * 4);
  std::memcpy(globalBytes.data(), global.data(), globalBytes.size());
  const Tensor* ws2 = nullptr;
  if (format == QuantFormat::Nvfp4) {
    ws2 = &f.at("weight_scale_2");
    CHECK_BYTES("weight_scale_2", globalBytes, ws2->bytes, 4);
  }

  // Dequantize the file's quantized tensors.
  std::vector<float> fileGlobal(experts);
  if (ws2)
    std::memcpy(fileGlobal.data(), ws2->bytes.data(), experts * 4);
  const QuantRef ref{format, weight.bytes.data(), scale.bytes.data(), scaleType, fileGlobal.data()};
  for (const auto& [name, dtype] : {std::pair<std::string, DType>{"dequant", DType::F32}, {"dequant_bf16", DType::BF16}}) {
    const Tensor& want = f.at(name);
    std::vector<uint8_t> got(want.bytes.size());
    REQUIRE(cpu::dequantizeExperts(ref, experts, rows, cols, dtype, got.data()).ok());
    CHECK_BYTES(name, got, want.bytes, dtypeSize(dtype));
  }
}

/// Casts `from` to `dtype` and compares; NaN results only need to be NaN (torch's CPU bf16 cast
/// writes the positive canonical NaN for every NaN).
void checkCast(const Tensor& from, const Tensor& want, const char* name) {
  std::vector<uint8_t> got(want.bytes.size());
  REQUIRE(cpu::castTensor(from.dtype, from.bytes.data(), want.dtype, got.data(), from.numel()).ok());
  const size_t es = dtypeSize(want.dtype);
  std::vector<float> gf(from.numel()), wf(from.numel());
  REQUIRE(cpu::castTensor(want.dtype, got.data(), DType::F32, gf.data(), gf.size()).ok());
  REQUIRE(cpu::castTensor(want.dtype, want.bytes.data(), DType::F32, wf.data(), wf.size()).ok());
  for (size_t i = 0; i < gf.size(); ++i)
    if (std::isnan(gf[i]) && std::isnan(wf[i]))
      std::memcpy(got.data() + i * es, want.bytes.data() + i * es, es);
  CHECK_BYTES(name, got, want.bytes, es);
}

void checkCastCase(const SafetensorsFile& f) {
  const Tensor& src = f.at("f32");
  for (const char* name : {"bf16", "f16", "e4m3", "e5m2"})
    if (f.tensors.count(name)) // e5m2 only where the generating torch has float8_e5m2
      checkCast(src, f.at(name), name);
  // The saturating e4m3 conversion the quantizers use.
  const Tensor& sat = f.at("e4m3_sat");
  std::vector<uint8_t> got(src.numel());
  for (size_t i = 0; i < got.size(); ++i) {
    float v;
    std::memcpy(&v, src.bytes.data() + i * 4, 4);
    got[i] = fp::f32ToE4m3Sat(v);
  }
  CHECK_BYTES("e4m3_sat", got, sat.bytes, 1);
  checkCast(f.at("e4m3_all"), f.at("e4m3_all_f32"), "e4m3_all_f32");
}

} // namespace

TEST_CASE("test vectors from tools/quant_vectors.py, bit for bit") {
  const std::vector<fs::path> files = vectorFiles();
  if (files.empty()) {
    MESSAGE("no test vectors in tests/kernels/vectors (generate them with "
            "`python3 tools/quant_vectors.py tests/kernels/vectors`); skipped");
    return;
  }
  for (const fs::path& p : files) {
    CAPTURE(p.filename().string());
    const SafetensorsFile f = readSafetensors(p);
    const auto it = f.metadata.find("format");
    REQUIRE(it != f.metadata.end());
    if (it->second == "cast")
      checkCastCase(f);
    else
      checkQuantCase(f, formatOf(it->second));
  }
  MESSAGE("compared " << files.size() << " vector files");
}
