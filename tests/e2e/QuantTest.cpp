// Quantized checkpoints end to end: `ckptmap quantize` on every family and format, quantized
// weights carried through every rule of hf <-> mcore and hf <-> hf-mem, dequantization, the
// naming switch between ModelOpt and compressed-tensors, and joins whose scales differ.
#include "E2e.h"

#include "compiler/quant/Grouping.h"
#include "kernels/Quant.h"

namespace ckptmap::e2e {

namespace {

struct Format {
  const char *name;
  QuantKind kind;
};
const Format kFormats[] = {{"nvfp4", QuantKind::Nvfp4},
                           {"fp8", QuantKind::Fp8Tensor},
                           {"fp8-block", QuantKind::Fp8Block},
                           {"mxfp8", QuantKind::Mxfp8}};

QuantFormat kernelFormat(QuantKind k) {
  switch (k) {
  case QuantKind::Nvfp4: return QuantFormat::Nvfp4;
  case QuantKind::Fp8Tensor: return QuantFormat::Fp8Tensor;
  case QuantKind::Fp8Block: return QuantFormat::Fp8Block;
  default: return QuantFormat::Mxfp8;
  }
}

} // namespace

TEST_CASE("quantize: the eligible weights of every family, in every format, as the kernels quantize them") {
  TempDir tmp;
  for (const std::string &family : families())
    for (const Format &f : kFormats) {
      CAPTURE(family);
      CAPTURE(std::string(f.name));
      std::string out = tmp / (family + "-" + f.name);
      ConvertSummary summary = quantizeInto(hubDir(family), out, f.kind);
      auto in = openTensors(hubDir(family));
      auto q = openTensors(out);
      auto outMetas = tensorsOf(*q);
      size_t quantized = 0;
      // Parts engines fuse (q/k/v, gate/up) share the largest of their per-tensor scales.
      std::map<std::string, float> sharedScale;
      if (f.kind == QuantKind::Nvfp4 || f.kind == QuantKind::Fp8Tensor)
        for (const SourceTensor &t : in->tensors()) {
          std::string key = fusedGroupKey(t.meta.name);
          auto o = outMetas.find(t.meta.name);
          if (key.empty() || o == outMetas.end() || o->second.dtype == t.meta.dtype)
            continue;
          QuantShapes sh;
          REQUIRE(quantShapes(kernelFormat(f.kind), size_t(t.meta.shape[0]), size_t(t.meta.shape[1]), sh));
          std::vector<uint8_t> d(sh.dataBytes()), sc(sh.scaleBytes());
          float g = 0;
          QuantOut alone{kernelFormat(f.kind), d.data(), sc.data(), DType::F32, nullptr};
          if (f.kind == QuantKind::Fp8Tensor)
            alone.scale = &g;
          else
            alone.globalScale = &g;
          std::vector<uint8_t> src = bytesOf(*in, t.meta.name);
          REQUIRE(cpu::quantize(t.meta.dtype, src.data(), size_t(t.meta.shape[0]), size_t(t.meta.shape[1]), alone));
          sharedScale[key] = std::max(sharedScale[key], g);
        }
      for (const SourceTensor &t : in->tensors()) {
        const TensorMeta &m = t.meta;
        auto plain = outMetas.find(m.name);
        REQUIRE(plain != outMetas.end());
        if (plain->second.dtype == m.dtype) {
          // Left as it is: excluded by name, or not a matrix the format can hold.
          CHECK(bytesOf(*in, m.name) == bytesOf(*q, m.name));
          bool matrix = m.shape.size() == 2 && endsWith(m.name, ".weight");
          bool fits = f.kind == QuantKind::Fp8Tensor || f.kind == QuantKind::Fp8Block ||
                      (matrix && m.shape[1] % (f.kind == QuantKind::Nvfp4 ? 16 : 32) == 0);
          if (matrix && fits)
            CHECK_MESSAGE(excludedByDefault(m.name), m.name << " was left unquantized");
          continue;
        }
        REQUIRE(m.shape.size() == 2);
        ++quantized;
        CHECK_FALSE(excludedByDefault(m.name));
        // The parts hold exactly what the reference quantizer makes of the input.
        QuantShapes shapes;
        REQUIRE(quantShapes(kernelFormat(f.kind), size_t(m.shape[0]), size_t(m.shape[1]), shapes));
        std::vector<uint8_t> data(shapes.dataBytes()), scale(shapes.scaleBytes());
        float global = 0;
        QuantOut qo{kernelFormat(f.kind), data.data(), scale.data(), DType::F32, nullptr};
        if (f.kind == QuantKind::Fp8Tensor)
          qo.scale = &global;
        if (f.kind == QuantKind::Nvfp4)
          qo.globalScale = &global;
        std::vector<uint8_t> src = bytesOf(*in, m.name);
        QuantOptions shared;
        if (auto it = sharedScale.find(fusedGroupKey(m.name)); it != sharedScale.end())
          shared.globalScale = it->second;
        REQUIRE(cpu::quantize(m.dtype, src.data(), size_t(m.shape[0]), size_t(m.shape[1]), qo, shared));
        std::string module = m.name.substr(0, m.name.size() - strlen("weight"));
        CHECK(bytesOf(*q, m.name) == data);
        std::vector<uint8_t> globalBytes(sizeof(float));
        std::memcpy(globalBytes.data(), &global, sizeof(float));
        switch (f.kind) {
        case QuantKind::Nvfp4:
          CHECK(bytesOf(*q, module + "weight_scale") == scale);
          CHECK(bytesOf(*q, module + "weight_scale_2") == globalBytes);
          break;
        case QuantKind::Fp8Tensor:
          CHECK(bytesOf(*q, module + "weight_scale") == globalBytes);
          break;
        default:
          CHECK(bytesOf(*q, module + "weight_scale_inv") == scale);
        }
      }
      CHECK(quantized == summary.quant.quantized);
      CHECK(quantized > 0);
      // The declaration inference engines read.
      json config = readJson(out + "/config.json");
      REQUIRE(config.contains("quantization_config"));
      const json &qc = config["quantization_config"];
      if (f.kind == QuantKind::Nvfp4 || f.kind == QuantKind::Fp8Tensor) {
        CHECK(qc["quant_method"] == "modelopt");
        CHECK(qc["quant_algo"] == (f.kind == QuantKind::Nvfp4 ? "NVFP4" : "FP8"));
        json hf = readJson(out + "/hf_quant_config.json");
        CHECK(hf["producer"]["name"] == "modelopt"); // vLLM loads the file from no other producer
        CHECK(hf["quantization"]["quant_algo"] == qc["quant_algo"]);
        CHECK(hf["quantization"]["exclude_modules"] == json(summary.quant.excludedModules));
      } else {
        CHECK(qc["quant_method"] == "fp8");
        CHECK(qc["weight_block_size"] == (f.kind == QuantKind::Fp8Block ? json{128, 128} : json{1, 32}));
        CHECK_FALSE(fs::exists(out + "/hf_quant_config.json"));
      }
    }
}

TEST_CASE("quantized checkpoints go hf -> mcore -> hf byte for byte, in every format") {
  TempDir tmp;
  for (const std::string &family : families())
    for (const Format &f : kFormats) {
      CAPTURE(family);
      CAPTURE(std::string(f.name));
      std::string q = tmp / (family + "-" + f.name), mcore = q + "-mcore", back = q + "-back";
      quantizeInto(hubDir(family), q, f.kind);
      if (f.kind == QuantKind::Fp8Block && family != "deepseek_v3") {
        // The fixtures' heads are 16 rows: interleaving them into MCore's grouped QKV layout
        // would cut 128x128 scale blocks, which only requantizing could do.
        SourceManager sources;
        DiagnosticEngine diags(sources);
        auto refused = convert(q, mcore, options(family, "hf", "mcore"), sources, diags);
        REQUIRE_FALSE(refused);
        llvm::consumeError(refused.takeError());
        CHECK(diags.render().find("FP8 block weights can be regrouped by heads only when a head is a multiple of 128 rows "
                                  "(head_dim 16)") != std::string::npos);
        CHECK_FALSE(fs::exists(mcore));
        continue;
      }
      convertOk(q, mcore, options(family, "hf", "mcore"));
      ConvertOptions o = options(family, "mcore", "hf");
      if (isVl(family))
        o.hfBase = q; // the vision tower MCore does not hold
      convertOk(mcore, back, o);
      DiffResult diff = diffPaths(q, back);
      CHECK_MESSAGE(diff.same(), diffText(diff));
      for (const char *file : {"config.json", "hf_quant_config.json"})
        if (fs::exists(q + "/" + file))
          CHECK(readFile(q + "/" + file) == readFile(back + "/" + file));
    }
}

TEST_CASE("FP8 block grids of fused parts keep one grid per part when the rows are not a multiple of 128") {
  // DeepSeek's FP8 fixture: gate and up are [I, H] with I < 128, so linear_fc1's grid holds
  // two block rows, one per half, where a grid of the fused matrix would hold one.
  TempDir tmp;
  std::string hub = fixture("hf/deepseek_v3_fp8/hub"), mcore = tmp / "mcore", back = tmp / "back";
  convertOk(hub, mcore, options("deepseek_v3", "hf", "mcore"));
  auto m = tensorsOf(mcore);
  auto h = tensorsOf(hub);
  const TensorMeta &gate = h.at("model.layers.0.mlp.gate_proj.weight");
  const TensorMeta &fc1 = m.at("decoder.layers.0.mlp.linear_fc1.weight");
  REQUIRE(gate.shape[0] % 128 != 0);
  CHECK(fc1.shape[0] == 2 * gate.shape[0]);
  int64_t halfRows = (gate.shape[0] + 127) / 128;
  CHECK(m.at("decoder.layers.0.mlp.linear_fc1.weight_scale_inv").shape ==
        Shape{2 * halfRows, h.at("model.layers.0.mlp.gate_proj.weight_scale_inv").shape[1]});
  convertOk(mcore, back, options("deepseek_v3", "mcore", "hf"));
  DiffResult diff = diffPaths(hub, back);
  CHECK_MESSAGE(diff.same(), diffText(diff));
}

TEST_CASE("--dequantize turns the DeepSeek FP8 release into BF16 and drops its quantization config") {
  TempDir tmp;
  std::string hub = fixture("hf/deepseek_v3_fp8/hub"), out = tmp / "bf16";
  ConvertOptions o = options("deepseek_v3", "hf", "hf");
  o.quant.dequantize = true;
  // hf -> hf through the rulebook is not a direction it states: dequantize by keeping names.
  o.identity = true;
  ConvertSummary summary = convertOk(hub, out, o);
  auto in = openTensors(hub);
  auto deq = openTensors(out);
  size_t dequantized = 0;
  for (const TensorMeta &t : groupQuantized(OpenedCheckpoint::metasOf(*in))) {
    const SourceTensor *d = deq->find(t.name);
    REQUIRE(d != nullptr);
    if (!t.quant.quantized()) {
      CHECK(bytesOf(*in, t.name) == bytesOf(*deq, t.name));
      continue;
    }
    ++dequantized;
    CHECK(d->meta.dtype == DType::BF16);
    CHECK(d->meta.shape == t.shape);
    CHECK(deq->find(t.name + "_scale_inv") == nullptr);
    // value = fp8 * scale_inv[i/128][j/128], rounded once to BF16.
    std::vector<uint8_t> w = bytesOf(*in, t.name), s = bytesOf(*in, t.name + "_scale_inv"), out16 = bytesOf(*deq, t.name);
    int64_t rows = t.shape[0], cols = t.shape[1], scaleCols = (cols + 127) / 128;
    for (int64_t i = 0; i < rows; i += 37)
      for (int64_t j = 0; j < cols; j += 11) {
        float scale;
        std::memcpy(&scale, s.data() + size_t((i / 128) * scaleCols + j / 128) * 4, 4);
        float expect = fp::e4m3ToF32(w[size_t(i * cols + j)]) * scale;
        uint16_t got;
        std::memcpy(&got, out16.data() + size_t(i * cols + j) * 2, 2);
        CHECK(got == fp::f32ToBf16(expect));
      }
  }
  CHECK(dequantized == summary.quant.dequantized);
  CHECK(dequantized > 0);
  json config = readJson(out + "/config.json");
  CHECK_FALSE(config.contains("quantization_config"));
  CHECK(readJson(hub + "/config.json").contains("quantization_config"));
}

TEST_CASE("--quant-format switches NVFP4 between ModelOpt and compressed-tensors, keeping packed bytes") {
  TempDir tmp;
  std::string modelopt = tmp / "modelopt", ct = tmp / "ct", back = tmp / "back";
  quantizeInto(hubDir("nemotron_h"), modelopt, QuantKind::Nvfp4);
  ConvertOptions o;
  o.identity = true;
  o.bind.from = o.bind.to = "hf";
  o.quant.naming = QuantNaming::CompressedTensors;
  ConvertSummary toCt = convertOk(modelopt, ct, o);
  auto a = openTensors(modelopt);
  auto b = openTensors(ct);
  size_t renamed = 0;
  for (const TensorMeta &t : groupQuantized(OpenedCheckpoint::metasOf(*a))) {
    if (!t.quant.quantized())
      continue;
    ++renamed;
    std::string module = t.name.substr(0, t.name.size() - strlen("weight"));
    CHECK(bytesOf(*a, t.name) == bytesOf(*b, module + "weight_packed"));
    CHECK(bytesOf(*a, module + "weight_scale") == bytesOf(*b, module + "weight_scale"));
    const SourceTensor *g = b->find(module + "weight_global_scale");
    REQUIRE(g != nullptr);
    CHECK(g->meta.shape == Shape{1});
    float ws2, inv;
    std::memcpy(&ws2, bytesOf(*a, module + "weight_scale_2").data(), 4);
    std::memcpy(&inv, bytesOf(*b, module + "weight_global_scale").data(), 4);
    CHECK(inv == 1.0f / ws2);
  }
  CHECK(renamed > 0);
  CHECK(readJson(ct + "/config.json")["quantization_config"]["format"] == "nvfp4-pack-quantized");
  CHECK_FALSE(fs::exists(ct + "/hf_quant_config.json"));

  // And back: the packed bytes and block scales again; a global scale changes only where its
  // inverse does not invert back (reported by the run).
  o.quant.naming = QuantNaming::ModelOpt;
  convertOk(ct, back, o);
  auto c = openTensors(back);
  size_t inexact = 0;
  for (const TensorMeta &t : groupQuantized(OpenedCheckpoint::metasOf(*a))) {
    if (!t.quant.quantized())
      continue;
    std::string module = t.name.substr(0, t.name.size() - strlen("weight"));
    CHECK(bytesOf(*a, t.name) == bytesOf(*c, t.name));
    float x, y;
    std::memcpy(&x, bytesOf(*a, module + "weight_scale_2").data(), 4);
    std::memcpy(&y, bytesOf(*c, module + "weight_scale_2").data(), 4);
    if (x != y) {
      ++inexact;
      CHECK_FALSE(globalScaleRoundTrips(x));
    }
  }
  // The run that inverted them said which would not come back.
  CHECK(toCt.exec.lossy.size() >= inexact);
}

TEST_CASE("MiniMax-M3 quantized: stacked hf-mem experts and per-expert hf convert into each other byte for byte") {
  TempDir tmp;
  std::string single = stageSingleFile(tmp, "hub-single", inmemFile("minimax_m3"), hubDir("minimax_m3"));
  std::string q = tmp / "q", mem = tmp / "mem", back = tmp / "back";
  quantizeInto(hubDir("minimax_m3"), q, QuantKind::Nvfp4);
  convertOk(q, mem, options("minimax_m3", "hf", "hf-mem"));
  auto m = tensorsOf(mem);
  // A stacked expert projection carries one global scale per expert.
  bool sawStacked = false;
  for (const auto &[name, meta] : m)
    if (endsWith(name, "experts.gate_up_proj") && meta.dtype == DType::U8) {
      sawStacked = true;
      REQUIRE(m.count(name + "_weight_scale_2"));
      CHECK(m.at(name + "_weight_scale_2").shape == Shape{meta.shape[0]});
    }
  CHECK(sawStacked);
  convertOk(mem, back, options("minimax_m3", "hf-mem", "hf"));
  DiffResult diff = diffPaths(q, back);
  CHECK_MESSAGE(diff.same(), diffText(diff));
  (void)single;
}

TEST_CASE("joining quantized parts whose global scales differ: refused, or requantized when the rule says so") {
  TempDir tmp;
  // Two NVFP4 halves with different weight_scale_2, fused by a one-rule rulebook.
  std::string in = tmp / "in";
  {
    std::vector<TensorMeta> metas = {{"a.weight", DType::F32, {4, 32}, {}}, {"b.weight", DType::F32, {4, 32}, {}}};
    std::vector<uint8_t> a(4 * 32 * 4), b(a.size());
    for (size_t i = 0; i < 128; ++i) {
      float x = float(int(i % 13) - 6) * 0.25f, y = x * 3.0f;
      std::memcpy(a.data() + i * 4, &x, 4);
      std::memcpy(b.data() + i * 4, &y, 4);
    }
    WriteOptions w;
    w.outDir = tmp / "plain";
    auto writer = requireValue(CheckpointWriter::create(metas, w));
    requireOk(writer->write(0, a));
    requireOk(writer->write(1, b));
    writer->addFile("config.json", "{\"model_type\": \"toy\"}\n");
    requireOk(writer->finish());
    quantizeInto(tmp / "plain", in, QuantKind::Nvfp4);
  }
  auto rulebook = [&](const std::string &args) {
    std::string path = tmp / ("toy" + std::to_string(args.size()) + ".rules");
    writeFile(path, "rulebook toy {\n  model_types \"toy\"\n}\n"
                    "mapping mcore <-> hf {\n  \"ab.weight\" = concat(0, \"a.weight\", \"b.weight\"" + args + ")\n}\n");
    return path;
  };
  ConvertOptions o;
  o.bind.from = "hf";
  o.bind.to = "mcore";
  o.rulebook = rulebook("");
  SourceManager sources;
  DiagnosticEngine diags(sources);
  auto refused = convert(in, tmp / "refused", o, sources, diags);
  REQUIRE_FALSE(refused);
  CHECK(llvm::toString(refused.takeError()).find("per-tensor scales differ") != std::string::npos);
  CHECK_FALSE(fs::exists(tmp / "refused"));

  o.rulebook = rulebook(", requantize: true");
  ConvertSummary summary = convertOk(in, tmp / "requantized", o);
  REQUIRE(summary.exec.lossy.size() == 1);
  CHECK(summary.exec.lossy[0].find("requantized") != std::string::npos);
  auto out = openTensors(tmp / "requantized");
  float ws2, wa, wb;
  std::memcpy(&ws2, bytesOf(*out, "ab.weight_scale_2").data(), 4);
  auto q = openTensors(in);
  std::memcpy(&wa, bytesOf(*q, "a.weight_scale_2").data(), 4);
  std::memcpy(&wb, bytesOf(*q, "b.weight_scale_2").data(), 4);
  CHECK(ws2 == std::max(wa, wb));
  CHECK(tensorsOf(tmp / "requantized").at("ab.weight").shape == Shape{8, 16});
}

TEST_CASE("the quantize op of a rulebook stores what ckptmap quantize stores, and its inverse dequantizes") {
  TempDir tmp;
  const std::string toy = hubDir("toy_llama");
  const std::string rules = tmp / "toy_q.rules";
  writeFile(rules, R"(rulebook toy_q { model_types "toy_llama" }
mapping mcore <-> hf {
  for L in 0 .. 3 {
    "decoder.layers.{L}.mlp.linear_fc2.weight" = quantize(nvfp4, "model.layers.{L}.mlp.down_proj.weight")
  }
  keep "{*name}"
}
)");
  ConvertOptions o;
  o.rulebook = rules;
  o.bind.from = "hf";
  o.bind.to = "mcore";
  convertOk(toy, tmp / "mcore", o);
  convertOk(toy, tmp / "reference", quantizeOptions(QuantKind::Nvfp4));
  auto mcore = openTensors(tmp / "mcore");
  auto reference = openTensors(tmp / "reference");
  for (int L = 0; L < 3; ++L) {
    std::string ours = "decoder.layers." + std::to_string(L) + ".mlp.linear_fc2.";
    std::string theirs = "model.layers." + std::to_string(L) + ".mlp.down_proj.";
    for (const char *part : {"weight", "weight_scale", "weight_scale_2"}) {
      INFO(ours << part);
      CHECK(bytesOf(*mcore, ours + part) == bytesOf(*reference, theirs + part));
    }
  }
  // The way back dequantizes, as --dequantize does the reference.
  o.bind.from = "mcore";
  o.bind.to = "hf";
  convertOk(tmp / "mcore", tmp / "back", o);
  ConvertOptions dequantize;
  dequantize.identity = true;
  dequantize.bind.from = dequantize.bind.to = "hf";
  dequantize.quant.dequantize = true;
  convertOk(tmp / "reference", tmp / "reference-back", dequantize);
  auto back = openTensors(tmp / "back");
  auto referenceBack = openTensors(tmp / "reference-back");
  for (int L = 0; L < 3; ++L) {
    std::string name = "model.layers." + std::to_string(L) + ".mlp.down_proj.weight";
    INFO(name);
    CHECK(back->find(name)->meta.dtype == DType::BF16);
    CHECK(bytesOf(*back, name) == bytesOf(*referenceBack, name));
  }
  // Everything else comes back as it was.
  CHECK(bytesOf(*back, "model.layers.0.self_attn.q_proj.weight") ==
        bytesOf(*openTensors(toy), "model.layers.0.self_attn.q_proj.weight"));
}

} // namespace ckptmap::e2e
