// Quantized formats of published checkpoints beyond what `ckptmap quantize` writes by
// default, through Megatron-Core's torch_dist and back: compressed-tensors NVFP4, FP8 blocks
// with BF16 scales, and ModelOpt's MIXED_PRECISION (NVFP4 and FP8 modules in one checkpoint);
// and --dequantize from each.
#include "E2e.h"

#include "compiler/quant/Grouping.h"
#include "kernels/Quant.h"

#include <cstring>

using namespace ckptmap;
using namespace ckptmap::e2e;

namespace {

/// hf -> mcore (torch_dist) -> hf; REQUIREs the way back to equal `q`, tensors and configs.
void requireRoundTrip(const std::string &family, const std::string &q) {
  ConvertOptions to = options(family, "hf", "mcore");
  to.mcoreFormat.clear(); // torch_dist
  convertOk(q, q + "-mcore", to);
  ConvertOptions back = options(family, "mcore", "hf");
  if (isVl(family))
    back.hfBase = q;
  convertOk(q + "-mcore", q + "-back", back);
  E2E_REQUIRE_SAME(q, q + "-back");
  for (const char *file : {"config.json", "hf_quant_config.json"})
    if (fs::exists(q + "/" + file))
      CHECK_MESSAGE(readFile(q + "/" + file) == readFile(q + "-back/" + file), file);
}

/// Dequantizes `q` keeping every name; returns the output directory.
std::string dequantized(const std::string &q) {
  ConvertOptions o;
  o.identity = true;
  o.bind.from = o.bind.to = "hf";
  o.quant.dequantize = true;
  convertOk(q, q + "-bf16", o);
  return q + "-bf16";
}

/// Every tensor of a checkpoint is plain and its config claims no quantization.
void requirePlain(const std::string &dir, const std::string &hub) {
  auto out = openTensors(dir);
  for (const TensorMeta &t : groupQuantized(OpenedCheckpoint::metasOf(*out)))
    CHECK_MESSAGE(!t.quant.quantized(), t.name);
  CHECK(tensorsOf(dir).size() == tensorsOf(hub).size());
  CHECK_FALSE(readJson(dir + "/config.json").contains("quantization_config"));
  CHECK_FALSE(fs::exists(dir + "/hf_quant_config.json"));
}

} // namespace

TEST_CASE("compressed-tensors NVFP4 goes hf -> torch_dist -> hf byte for byte, and dequantizes") {
  TempDir tmp;
  for (const std::string &family : families()) {
    CAPTURE(family);
    const std::string q = tmp / family;
    quantizeInto(hubDir(family), q, QuantKind::Nvfp4, QuantNaming::CompressedTensors);
    REQUIRE(readJson(q + "/config.json")["quantization_config"]["format"] == "nvfp4-pack-quantized");
    requireRoundTrip(family, q);
    // The numbers ModelOpt's naming holds, the global scale inverted: dequantizing either
    // gives the same BF16 wherever that inverse is exact.
    const std::string modelopt = tmp / (family + "-modelopt");
    quantizeInto(hubDir(family), modelopt, QuantKind::Nvfp4);
    const std::string a = dequantized(q), b = dequantized(modelopt);
    requirePlain(a, hubDir(family));
    auto da = openTensors(a), db = openTensors(b), mo = openTensors(modelopt);
    size_t exact = 0;
    for (const SourceTensor &t : da->tensors()) {
      CAPTURE(t.meta.name);
      const std::string module = t.meta.name.substr(0, t.meta.name.rfind('.') + 1);
      if (const SourceTensor *g = mo->find(module + "weight_scale_2")) {
        float ws2;
        std::memcpy(&ws2, bytesOf(*mo, g->meta.name).data(), 4);
        if (!globalScaleRoundTrips(ws2))
          continue;
        ++exact;
      }
      CHECK(bytesOf(*da, t.meta.name) == bytesOf(*db, t.meta.name));
    }
    CHECK(exact > 0);
  }
}

TEST_CASE("FP8 blocks with BF16 scales (as some releases store them) round-trip and dequantize") {
  TempDir tmp;
  const std::string family = "deepseek_v3", f32 = tmp / "f32", bf16 = tmp / "bf16";
  quantizeInto(hubDir(family), f32, QuantKind::Fp8Block);
  // The same checkpoint with every weight_scale_inv cut to BF16 (its upper half).
  auto source = openTensors(f32);
  std::vector<HandTensor> tensors;
  size_t scales = 0;
  for (const SourceTensor &t : source->tensors()) {
    HandTensor h{t.meta, {t.meta.name}, std::nullopt};
    if (endsWith(t.meta.name, ".weight_scale_inv")) {
      std::vector<uint8_t> in = bytesOf(*source, t.meta.name), out;
      for (size_t i = 0; i < in.size(); i += 4)
        out.insert(out.end(), {in[i + 2], in[i + 3]});
      h = HandTensor{TensorMeta{t.meta.name, DType::BF16, t.meta.shape}, {}, out};
      ++scales;
    }
    tensors.push_back(std::move(h));
  }
  REQUIRE(scales > 0);
  writeByHand(f32, bf16, tensors, {"config.json", "generation_config.json"}, f32);
  auto grouped = groupQuantized(OpenedCheckpoint::metasOf(*openTensors(bf16)));
  size_t blocks = 0;
  for (const TensorMeta &t : grouped)
    if (t.quant.kind == QuantKind::Fp8Block) {
      CHECK(t.quant.scaleDType == DType::BF16);
      ++blocks;
    }
  CHECK(blocks == scales);
  requireRoundTrip(family, bf16);
  requirePlain(dequantized(bf16), hubDir(family));
}

TEST_CASE("ModelOpt MIXED_PRECISION: NVFP4 and FP8 modules in one checkpoint round-trip and dequantize") {
  TempDir tmp;
  // As the Nemotron NVFP4 releases: experts NVFP4, every other linear FP8 per tensor.
  const std::string family = "nemotron_h", nvfp4 = tmp / "nvfp4", fp8 = tmp / "fp8", mixed = tmp / "mixed";
  quantizeInto(hubDir(family), nvfp4, QuantKind::Nvfp4);
  quantizeInto(hubDir(family), fp8, QuantKind::Fp8Tensor);
  auto a = openTensors(nvfp4), b = openTensors(fp8);
  std::vector<TensorMeta> metas;
  std::vector<std::pair<const TensorSource *, std::string>> from;
  json layers = json::object();
  for (const TensorMeta &t : groupQuantized(OpenedCheckpoint::metasOf(*a))) {
    const bool expert = t.name.find(".experts.") != std::string::npos;
    const TensorSource *src = expert || !t.quant.quantized() ? a.get() : b.get();
    for (const TensorMeta &logical : groupQuantized(OpenedCheckpoint::metasOf(*src)))
      if (logical.name == t.name) {
        for (const TensorMeta &part : expandQuantized(logical)) {
          metas.push_back(part);
          from.emplace_back(src, part.name);
        }
        if (logical.quant.quantized())
          layers[t.name.substr(0, t.name.size() - strlen(".weight"))] =
              expert ? json{{"quant_algo", "NVFP4"}, {"group_size", 16}} : json{{"quant_algo", "FP8"}};
      }
  }
  REQUIRE(layers.size() > 2);
  WriteOptions w;
  w.outDir = mixed;
  w.maxShardSize = 200'000;
  auto writer = requireValue(CheckpointWriter::create(metas, w));
  for (size_t i = 0; i < metas.size(); ++i)
    requireOk(writer->write(i, bytesOf(*from[i].first, from[i].second)));
  json config = readJson(hubDir(family) + "/config.json");
  writer->addFile("config.json", config.dump(2) + "\n");
  json hfQuant{{"producer", {{"name", "modelopt"}}},
               {"quantization", {{"quant_algo", "MIXED_PRECISION"}, {"kv_cache_quant_algo", nullptr},
                                 {"quantized_layers", layers}}}};
  writer->addFile("hf_quant_config.json", hfQuant.dump(4) + "\n");
  requireOk(writer->finish());

  size_t kinds[2] = {0, 0};
  for (const TensorMeta &t : groupQuantized(OpenedCheckpoint::metasOf(*openTensors(mixed))))
    if (t.quant.quantized())
      ++kinds[t.quant.kind == QuantKind::Nvfp4 ? 0 : 1];
  CHECK(kinds[0] > 0);
  CHECK(kinds[1] > 0);
  requireRoundTrip(family, mixed);

  // Dequantized, each module is what dequantizing its own format gives.
  const std::string all = dequantized(mixed), fromNvfp4 = dequantized(nvfp4), fromFp8 = dequantized(fp8);
  requirePlain(all, hubDir(family));
  auto got = openTensors(all), x = openTensors(fromNvfp4), y = openTensors(fromFp8);
  for (const SourceTensor &t : got->tensors()) {
    CAPTURE(t.meta.name);
    const bool expert = t.meta.name.find(".experts.") != std::string::npos;
    CHECK(bytesOf(*got, t.meta.name) == bytesOf(expert ? *x : *y, t.meta.name));
  }
}

TEST_CASE("--dequantize from every format gives plain BF16 weights and a config that claims no quantization") {
  TempDir tmp;
  for (QuantKind kind : {QuantKind::Nvfp4, QuantKind::Fp8Tensor, QuantKind::Fp8Block, QuantKind::Mxfp8}) {
    CAPTURE(quantKindName(kind).str());
    const std::string q = tmp / quantKindName(kind).str();
    quantizeInto(hubDir("deepseek_v3"), q, kind);
    const std::string out = dequantized(q);
    requirePlain(out, hubDir("deepseek_v3"));
    // Shapes and dtypes are the unquantized model's.
    auto want = tensorsOf(hubDir("deepseek_v3")), got = tensorsOf(out);
    for (const auto &[name, t] : want) {
      CAPTURE(name);
      REQUIRE(got.count(name));
      CHECK(got.at(name).shape == t.shape);
      CHECK(got.at(name).dtype == t.dtype);
    }
  }
}

TEST_CASE("MXFP8 scales are E8M0 exponents: 2^-127 is a scale, the NaN code is refused") {
  TempDir tmp;
  const std::string q = tmp / "mxfp8";
  quantizeInto(hubDir("deepseek_v3"), q, QuantKind::Mxfp8);
  auto in = openTensors(q);
  const std::string target = "model.layers.0.mlp.down_proj.weight_scale_inv";
  REQUIRE(in->find(target) != nullptr);
  for (uint8_t code : {uint8_t(0x00), uint8_t(0xFF)}) {
    CAPTURE(int(code));
    std::vector<HandTensor> tensors;
    for (const SourceTensor &t : in->tensors()) {
      HandTensor h{t.meta, {t.meta.name}, std::nullopt};
      if (t.meta.name == target) {
        std::vector<uint8_t> bytes = bytesOf(*in, target);
        bytes[0] = code;
        h = {t.meta, {}, bytes};
      }
      tensors.push_back(h);
    }
    const std::string edited = tmp / ("code-" + std::to_string(code));
    writeByHand(q, edited, tensors, {"config.json"}, q);
    ConvertOptions o = quantizeOptions(QuantKind::None);
    o.quant.dequantize = true;
    SourceManager sources;
    DiagnosticEngine diags(sources);
    auto result = convert(edited, tmp / ("out-" + std::to_string(code)), o, sources, diags);
    if (code == 0x00) {
      CHECK_MESSAGE(bool(result), (result ? "" : llvm::toString(result.takeError())));
    } else {
      REQUIRE_FALSE(result);
      CHECK(llvm::toString(result.takeError()) ==
            "'" + target + "': element 0 (row 0, col 0) is nan; a quantization scale must be finite and positive "
                           "(same name, identity)");
    }
  }
}

TEST_CASE("FP8 KV-cache scales (k_proj.k_scale, v_proj.v_scale) go hf -> torch_dist -> hf byte for byte; --dequantize drops them") {
  TempDir tmp;
  for (const std::string family : {"nemotron_h", "qwen3_5_moe", "minimax_m3"}) {
    CAPTURE(family);
    const std::string fp8 = tmp / (family + "-fp8"), kv = tmp / (family + "-kv");
    quantizeInto(hubDir(family), fp8, QuantKind::Fp8Tensor);
    // Every decoder attention layer gains the two scalars a calibrated FP8 KV cache needs.
    auto source = openTensors(fp8);
    std::vector<HandTensor> tensors;
    size_t attentions = 0;
    for (const SourceTensor &t : source->tensors()) {
      tensors.push_back(HandTensor{t.meta, {t.meta.name}, std::nullopt});
      if (!endsWith(t.meta.name, ".k_proj.weight") || startsWith(t.meta.name, "vision_tower."))
        continue;
      const std::string attn = t.meta.name.substr(0, t.meta.name.size() - strlen("k_proj.weight"));
      ++attentions;
      for (const char *kind : {"k", "v"}) {
        const float value = 0.015625f * static_cast<float>(attentions) + (*kind == 'k' ? 0.0f : 0.001f);
        std::vector<uint8_t> bytes(4);
        std::memcpy(bytes.data(), &value, 4);
        tensors.push_back(HandTensor{TensorMeta{attn + kind + "_proj." + kind + "_scale", DType::F32, {}}, {}, bytes});
      }
    }
    REQUIRE(attentions > 0);
    std::vector<std::string> files;
    for (const auto &e : fs::directory_iterator(fp8))
      if (e.path().extension() != ".safetensors" && e.path().filename() != "model.safetensors.index.json")
        files.push_back(e.path().filename().string());
    writeByHand(fp8, kv, tensors, files, fp8);
    json config = readJson(kv + "/config.json"), hfQuant = readJson(kv + "/hf_quant_config.json");
    config["quantization_config"]["kv_cache_quant_algo"] = "FP8";
    writeFile(kv + "/config.json", config.dump(2) + "\n");
    // As ModelOpt writes it: keys in its own order, indented by 4.
    nlohmann::ordered_json modelopt;
    modelopt["producer"] = hfQuant["producer"];
    modelopt["quantization"]["quant_algo"] = "FP8";
    modelopt["quantization"]["kv_cache_quant_algo"] = "FP8";
    modelopt["quantization"]["exclude_modules"] = hfQuant["quantization"]["exclude_modules"];
    writeFile(kv + "/hf_quant_config.json", modelopt.dump(4) + "\n");

    requireRoundTrip(family, kv);
    const std::string log = tmp / (family + "-inspect.log");
    REQUIRE(runCli("inspect " + q(kv), log) == 0);
    const std::string text = readFile(log);
    CHECK_MESSAGE(text.find("  format fp8 kv-cache scales: " + std::to_string(2 * attentions) + " tensors, e.g. '") !=
                      std::string::npos,
                  text);
    // MCore holds them beside the attention's core_attention, unchanged.
    size_t mcoreScales = 0;
    auto mcore = openTensors(kv + "-mcore");
    for (const SourceTensor &t : mcore->tensors())
      if (t.meta.name.find(".self_attention.core_attention.") != std::string::npos) {
        CHECK(t.meta.dtype == DType::F32);
        CHECK(t.meta.shape.empty());
        ++mcoreScales;
      }
    CHECK(mcoreScales == 2 * attentions);
    // Dequantized, the output declares no quantization, so the KV-cache scales are dropped.
    requirePlain(dequantized(kv), hubDir(family));
  }
}
