// Quantized weights along the paths the family round trips do not take: FP8-block -> NVFP4 in
// one pass, --exclude, joins and cuts along columns, FP8 and FP8-block experts stacked and
// unstacked, FP8-block QKV regrouping with 128-row heads, requantized joins of bundles with
// activation scales, exclusion lists across conventions, and invalid scales.
#include "E2e.h"

#include "compiler/quant/Grouping.h"
#include "kernels/Float.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/SHA256.h"

namespace ckptmap::e2e {

namespace {

/// One plain matrix of a toy checkpoint: deterministic values in [-amax, amax], amax reached.
struct ToyTensor {
  std::string name;
  int64_t rows, cols;
  float amax = 1.0f;
};

/// Writes a BF16 checkpoint of `tensors` with a config.json naming model_type "toy".
void writeToy(const std::string &dir, const std::vector<ToyTensor> &tensors) {
  std::vector<TensorMeta> metas;
  for (const ToyTensor &t : tensors)
    metas.push_back({t.name, DType::BF16, {t.rows, t.cols}, {}});
  WriteOptions w;
  w.outDir = dir;
  auto writer = requireValue(CheckpointWriter::create(metas, w));
  uint32_t state = 12345;
  for (size_t i = 0; i < tensors.size(); ++i) {
    std::vector<uint8_t> bytes(size_t(tensors[i].rows * tensors[i].cols) * 2);
    for (size_t k = 0; k < bytes.size() / 2; ++k) {
      state = state * 1664525u + 1013904223u;
      float x = k == 0 ? tensors[i].amax : tensors[i].amax * (float(state >> 8) / float(1 << 24) * 2.0f - 1.0f);
      uint16_t b = fp::f32ToBf16(x);
      std::memcpy(bytes.data() + 2 * k, &b, 2);
    }
    requireOk(writer->write(i, bytes));
  }
  writer->addFile("config.json", "{\"model_type\": \"toy\"}\n");
  requireOk(writer->finish());
}

/// A one-mapping rulebook for the toy checkpoints.
std::string writeToyRules(const TempDir &tmp, const std::string &name, const std::string &mapping) {
  std::string path = tmp / (name + ".rules");
  writeFile(path, "rulebook toy {\n  model_types \"toy\"\n}\nmapping mcore <-> hf {\n" + mapping + "}\n");
  return path;
}

ConvertOptions toyOptions(const std::string &rules, const std::string &from, const std::string &to) {
  ConvertOptions o;
  o.rulebook = rules;
  o.bind.from = from;
  o.bind.to = to;
  return o;
}

/// The error of a conversion expected to fail, with the compile's diagnostics after it; and
/// that it left no output.
std::string convertError(const std::string &in, const std::string &out, const ConvertOptions &o) {
  SourceManager sources;
  DiagnosticEngine diags(sources);
  auto result = convert(in, out, o, sources, diags);
  REQUIRE_MESSAGE(!result, "expected the conversion to fail");
  CHECK_FALSE(fs::exists(out));
  std::string text = llvm::toString(result.takeError());
  return diags.hasErrors() ? text + "\n" + diags.render() : text;
}

const std::string kNoPlan = "the rulebook does not compile for this checkpoint (see the errors above)\n";

float floatOf(const std::vector<uint8_t> &bytes, size_t i = 0) {
  float x;
  std::memcpy(&x, bytes.data() + 4 * i, 4);
  return x;
}

} // namespace

TEST_CASE("FP8-block -> NVFP4 in one pass equals dequantizing to BF16, then quantizing") {
  TempDir tmp;
  std::string hub = fixture("hf/deepseek_v3_fp8/hub"), direct = tmp / "direct", bf16 = tmp / "bf16",
              twoStep = tmp / "two-step";
  ConvertSummary one = quantizeInto(hub, direct, QuantKind::Nvfp4);
  ConvertOptions deq = quantizeOptions(QuantKind::None);
  deq.quant.dequantize = true;
  convertOk(hub, bf16, deq);
  quantizeInto(bf16, twoStep, QuantKind::Nvfp4);
  E2E_REQUIRE_SAME(direct, twoStep);
  for (const char *file : {"config.json", "hf_quant_config.json"})
    CHECK(readFile(direct + "/" + file) == readFile(twoStep + "/" + file));

  // Every FP8-block weight became an NVFP4 bundle; none of the old scales is left.
  auto in = openTensors(hub);
  auto out = tensorsOf(direct);
  size_t fp8 = 0;
  for (const TensorMeta &t : groupQuantized(OpenedCheckpoint::metasOf(*in)))
    if (t.quant.kind == QuantKind::Fp8Block) {
      ++fp8;
      CHECK(out.at(t.name).dtype == DType::U8);
      CHECK(out.at(t.name).shape == Shape{t.shape[0], t.shape[1] / 2});
      CHECK(out.count(t.name + "_scale_inv") == 0);
      CHECK(out.at(t.name + "_scale").shape == Shape{t.shape[0], t.shape[1] / 16});
    }
  CHECK(fp8 > 0);
  CHECK(one.quant.dequantized == fp8);
  CHECK(one.quant.quantized == fp8);
  json config = readJson(direct + "/config.json");
  CHECK(config["quantization_config"]["quant_algo"] == "NVFP4");
  CHECK_FALSE(config["quantization_config"].contains("weight_block_size"));
}

TEST_CASE("--exclude leaves matching tensors and modules unquantized and lists them") {
  TempDir tmp;
  std::string hub = hubDir("deepseek_v3"), out = tmp / "q";
  ConvertOptions o = quantizeOptions(QuantKind::Fp8Tensor);
  // A module pattern and a tensor-name pattern.
  o.quant.exclude = {"model.layers.1.mlp.experts.*", "*.self_attn.o_proj.weight"};
  ConvertSummary summary = convertOk(hub, out, o);
  auto in = openTensors(hub);
  auto q = openTensors(out);
  size_t kept = 0, quantized = 0;
  for (const SourceTensor &t : in->tensors()) {
    const std::string &name = t.meta.name;
    bool userExcluded = startsWith(name, "model.layers.1.mlp.experts.") || endsWith(name, ".self_attn.o_proj.weight");
    const SourceTensor *o2 = q->find(name);
    REQUIRE(o2 != nullptr);
    if (userExcluded && endsWith(name, ".weight")) {
      ++kept;
      CHECK(o2->meta.dtype == t.meta.dtype);
      CHECK(bytesOf(*in, name) == bytesOf(*q, name));
      CHECK(llvm::is_contained(summary.quant.excludedModules, name.substr(0, name.size() - strlen(".weight"))));
    } else if (o2->meta.dtype == DType::F8_E4M3) {
      ++quantized;
    }
  }
  CHECK(kept > 4);
  CHECK(quantized > 0);
  CHECK(readJson(out + "/hf_quant_config.json")["quantization"]["exclude_modules"] == json(summary.quant.excludedModules));

  o.quant.exclude = {"model.[layers"};
  CHECK(convertError(hub, tmp / "bad", o) == "--exclude 'model.[layers': invalid glob pattern: model.[layers");
}

TEST_CASE("quantized weights join and split along columns on block boundaries only") {
  TempDir tmp;
  // Equal amax, so NVFP4 gives both halves the same weight_scale_2 and the join keeps bits.
  writeToy(tmp / "plain", {{"a.weight", 4, 16}, {"b.weight", 4, 32}});
  std::string q = tmp / "q";
  quantizeInto(tmp / "plain", q, QuantKind::Nvfp4);
  std::string rules = writeToyRules(tmp, "cols", "  \"ab.weight\" = concat(1, \"a.weight\" : 16, \"b.weight\")\n");
  convertOk(q, tmp / "mcore", toyOptions(rules, "hf", "mcore"));
  auto m = tensorsOf(tmp / "mcore");
  CHECK(m.at("ab.weight").shape == Shape{4, 24});
  CHECK(m.at("ab.weight_scale").shape == Shape{4, 3});
  convertOk(tmp / "mcore", tmp / "back", toyOptions(rules, "mcore", "hf"));
  E2E_REQUIRE_SAME(q, tmp / "back");

  // Cutting 8 columns off a 16-column NVFP4 block.
  std::string eight = writeToyRules(tmp, "eight", "  \"ab.weight\" = concat(1, \"a.weight\" : 8, \"b.weight\")\n");
  CHECK(convertError(tmp / "mcore", tmp / "cut", toyOptions(eight, "mcore", "hf")) ==
        kNoPlan + eight + ":5:17: error: split: cutting nvfp4 columns must keep blocks of 16 whole; a part of 8 "
                          "columns does not (from 'ab.weight')\n"
                          "    5 |   \"ab.weight\" = concat(1, \"a.weight\" : 8, \"b.weight\")\n"
                          "      |                 ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\n"
                          "1 error generated.\n");

  // FP8 blocks are 128 columns wide: 64-column parts cannot sit side by side in one grid.
  writeToy(tmp / "plain64", {{"a.weight", 4, 64}, {"b.weight", 4, 64}});
  quantizeInto(tmp / "plain64", tmp / "q64", QuantKind::Fp8Block);
  std::string side = writeToyRules(tmp, "side", "  \"ab.weight\" = concat(1, \"a.weight\", \"b.weight\")\n");
  CHECK(convertError(tmp / "q64", tmp / "join", toyOptions(side, "hf", "mcore")) ==
        kNoPlan + side + ":5:17: error: concat: joining fp8-block parts along their columns needs each part's "
                         "columns to be a multiple of 128, not 64 (from 'a.weight', 'b.weight')\n"
                         "    5 |   \"ab.weight\" = concat(1, \"a.weight\", \"b.weight\")\n"
                         "      |                 ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\n"
                         "1 error generated.\n");

  // Cutting FP8 block rows inside a 128-row block.
  writeToy(tmp / "plain256", {{"ab.weight", 256, 128}});
  quantizeInto(tmp / "plain256", tmp / "q256", QuantKind::Fp8Block);
  std::string rows = writeToyRules(tmp, "rows", "  \"ab.weight\" = concat(0, \"a.weight\" : 100, \"b.weight\")\n");
  CHECK(convertError(tmp / "q256", tmp / "rows", toyOptions(rows, "mcore", "hf")) ==
        kNoPlan + rows + ":5:17: error: split: cutting 100 rows of a 256-row FP8 block group splits a 128x128 "
                         "scale block (from 'ab.weight')\n"
                         "    5 |   \"ab.weight\" = concat(0, \"a.weight\" : 100, \"b.weight\")\n"
                         "      |                 ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\n"
                         "1 error generated.\n");
}

TEST_CASE("FP8-block QKV regrouping: 128-row heads keep their blocks, smaller heads are refused") {
  TempDir tmp;
  std::string rules = writeToyRules(
      tmp, "qkv", "  \"qkv.weight\" = qkv(\"q.weight\", \"k.weight\", \"v.weight\", heads: 4, groups: 2)\n");
  writeToy(tmp / "plain", {{"q.weight", 4 * 128, 64}, {"k.weight", 2 * 128, 64}, {"v.weight", 2 * 128, 64}});
  std::string q = tmp / "q";
  quantizeInto(tmp / "plain", q, QuantKind::Fp8Block);
  convertOk(q, tmp / "mcore", toyOptions(rules, "hf", "mcore"));
  auto m = tensorsOf(tmp / "mcore");
  CHECK(m.at("qkv.weight").shape == Shape{8 * 128, 64});
  CHECK(m.at("qkv.weight_scale_inv").shape == Shape{8, 1});
  // MCore's grouped layout: group 0 holds q heads 0, 1, then k head 0, then v head 0.
  auto qs = openTensors(q);
  auto ms = openTensors(tmp / "mcore");
  std::vector<uint8_t> fused = bytesOf(*ms, "qkv.weight"), qw = bytesOf(*qs, "q.weight"), kw = bytesOf(*qs, "k.weight");
  size_t head = 128 * 64;
  CHECK(std::equal(fused.begin() + 1 * head, fused.begin() + 2 * head, qw.begin() + 1 * head));
  CHECK(std::equal(fused.begin() + 2 * head, fused.begin() + 3 * head, kw.begin()));
  std::vector<uint8_t> fusedScale = bytesOf(*ms, "qkv.weight_scale_inv"), vScale = bytesOf(*qs, "v.weight_scale_inv");
  CHECK(floatOf(fusedScale, 3) == floatOf(vScale, 0));
  convertOk(tmp / "mcore", tmp / "back", toyOptions(rules, "mcore", "hf"));
  E2E_REQUIRE_SAME(q, tmp / "back");

  writeToy(tmp / "plain64", {{"q.weight", 4 * 64, 64}, {"k.weight", 2 * 64, 64}, {"v.weight", 2 * 64, 64}});
  quantizeInto(tmp / "plain64", tmp / "q64", QuantKind::Fp8Block);
  CHECK(convertError(tmp / "q64", tmp / "refused", toyOptions(rules, "hf", "mcore")) ==
        kNoPlan + rules + ":5:18: error: qkv_fuse: FP8 block weights can be regrouped by heads only when a head is a "
                          "multiple of 128 rows (head_dim 64) (from 'q.weight', 'k.weight', 'v.weight')\n"
                          "    5 |   \"qkv.weight\" = qkv(\"q.weight\", \"k.weight\", \"v.weight\", heads: 4, groups: 2)\n"
                          "      |                  ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\n"
                          "1 error generated.\n");
}

TEST_CASE("FP8 and FP8-block experts stack into hf-mem and unstack back, byte for byte") {
  TempDir tmp;
  for (const std::string &family : {std::string("minimax_m3"), std::string("qwen3_5_moe")})
    for (QuantKind kind : {QuantKind::Fp8Tensor, QuantKind::Fp8Block}) {
      CAPTURE(family);
      CAPTURE(quantKindName(kind).str());
      std::string q = tmp / (family + quantKindName(kind).str()), mem = q + "-mem", back = q + "-back";
      quantizeInto(hubDir(family), q, kind);
      convertOk(q, mem, options(family, "hf", "hf-mem"));
      auto m = tensorsOf(mem);
      size_t stacked = 0;
      for (const auto &[name, meta] : m) {
        if (!endsWith(name, "experts.gate_up_proj") && !endsWith(name, "experts.down_proj"))
          continue;
        if (meta.dtype != DType::F8_E4M3)
          continue;
        ++stacked;
        int64_t experts = meta.shape[0];
        if (kind == QuantKind::Fp8Tensor) {
          // One per-tensor scale per expert.
          REQUIRE(m.count(name + "_weight_scale"));
          CHECK(m.at(name + "_weight_scale").shape == Shape{experts});
        } else {
          // Each expert keeps its own 128x128 grid; gate and up keep one each, their rows being
          // no multiple of 128.
          REQUIRE(m.count(name + "_weight_scale_inv"));
          const Shape &grid = m.at(name + "_weight_scale_inv").shape;
          bool gateUp = endsWith(name, "gate_up_proj");
          REQUIRE(grid.size() == 3);
          CHECK(grid[0] == experts);
          CHECK(grid[1] == (gateUp ? 2 * ((meta.shape[1] / 2 + 127) / 128) : (meta.shape[1] + 127) / 128));
          CHECK(grid[2] == (meta.shape[2] + 127) / 128);
        }
      }
      CHECK(stacked > 0);
      convertOk(mem, back, options(family, "hf-mem", "hf"));
      // Every tensor back as it was, but for the MTP layer transformers does not hold in memory.
      auto a = openTensors(q);
      auto b = openTensors(back);
      for (const SourceTensor &t : a->tensors()) {
        CAPTURE(t.meta.name);
        if (startsWith(t.meta.name, "mtp.") && family == "qwen3_5_moe")
          CHECK(b->find(t.meta.name) == nullptr);
        else
          CHECK(bytesOf(*a, t.meta.name) == bytesOf(*b, t.meta.name));
      }
      CHECK(b->tensors().size() <= a->tensors().size());
    }
}

TEST_CASE("a requantized join keeps the largest of its parts' activation scales, and says so") {
  TempDir tmp;
  writeToy(tmp / "plain", {{"a.weight", 4, 32, 1.0f}, {"b.weight", 4, 32, 3.0f}});
  quantizeInto(tmp / "plain", tmp / "q", QuantKind::Nvfp4);
  // Calibrated activation scales, as a ModelOpt export carries them.
  std::vector<HandTensor> tensors;
  for (const TensorMeta &t : OpenedCheckpoint::metasOf(*openTensors(tmp / "q")))
    tensors.push_back({t, {t.name}, std::nullopt});
  for (auto [name, scale] : {std::pair{"a.input_scale", 0.5f}, {"b.input_scale", 2.0f}}) {
    std::vector<uint8_t> bytes(4);
    std::memcpy(bytes.data(), &scale, 4);
    tensors.push_back({{name, DType::F32, {}, {}}, {}, bytes});
  }
  writeByHand(tmp / "q", tmp / "in", tensors, {"config.json", "hf_quant_config.json"}, tmp / "q");
  std::string rules =
      writeToyRules(tmp, "rows", "  \"ab.weight\" = concat(0, \"a.weight\", \"b.weight\", requantize: true)\n");
  ConvertSummary summary = convertOk(tmp / "in", tmp / "out", toyOptions(rules, "hf", "mcore"));
  auto out = openTensors(tmp / "out");
  CHECK(floatOf(bytesOf(*out, "ab.input_scale")) == 2.0f);
  REQUIRE(summary.exec.lossy.size() == 1);
  CHECK(summary.exec.lossy[0] == "requantized concat (" + rules + ":5:3): its parts' scales differed; input_scale is "
                                 "the largest of theirs");
}

TEST_CASE("exclusion lists follow the convention: quantized into MCore, converted back to HF") {
  TempDir tmp;
  std::string hub = hubDir("deepseek_v3"), mcore = tmp / "mcore", back = tmp / "back", inPlace = tmp / "in-place";
  ConvertOptions o = options("deepseek_v3", "hf", "mcore");
  o.quant.quantize.kind = QuantKind::Nvfp4;
  ConvertSummary toMcore = convertOk(hub, mcore, o);
  json mcoreList = readJson(mcore + "/hf_quant_config.json")["quantization"]["exclude_modules"];
  CHECK(mcoreList == json(toMcore.quant.excludedModules));
  CHECK(llvm::is_contained(toMcore.quant.excludedModules, "output_layer"));
  convertOk(mcore, back, options("deepseek_v3", "mcore", "hf"));

  // The list now names HF modules: those quantizing the HF checkpoint in place leaves out, but
  // for the MTP layer's copies of the embedding and head, which MCore does not hold.
  ConvertSummary hf = quantizeInto(hub, inPlace, QuantKind::Nvfp4);
  std::vector<std::string> expected;
  for (const std::string &m : hf.quant.excludedModules)
    if (!llvm::any_of(toMcore.plan.drops, [&](const PlanDrop &d) { return d.tensor == m + ".weight"; }))
      expected.push_back(m);
  CHECK(expected.size() + 2 == hf.quant.excludedModules.size());
  for (const char *file : {"hf_quant_config.json", "config.json"}) {
    CAPTURE(file);
    json j = readJson(back + "/" + file);
    const json &list = std::string(file) == "config.json" ? j["quantization_config"]["exclude_modules"]
                                                          : j["quantization"]["exclude_modules"];
    std::vector<std::string> names = list.get<std::vector<std::string>>();
    std::sort(names.begin(), names.end());
    std::sort(expected.begin(), expected.end());
    CHECK(names == expected);
  }
}

TEST_CASE("NaN, infinite, zero or negative scales: dequantizing names the tensor and writes nothing") {
  TempDir tmp;
  std::string hub = fixture("hf/deepseek_v3_fp8/hub");
  auto in = openTensors(hub);
  const std::string target = "model.layers.0.mlp.down_proj.weight_scale_inv";
  for (auto [bad, text] : {std::pair{std::nanf(""), "nan"}, {INFINITY, "inf"}, {0.0f, "0"}, {-0.5f, "-0.5"}}) {
    CAPTURE(text);
    std::vector<HandTensor> tensors;
    for (const SourceTensor &t : in->tensors()) {
      HandTensor h{t.meta, {t.meta.name}, std::nullopt};
      if (t.meta.name == target) {
        std::vector<uint8_t> bytes = bytesOf(*in, target);
        std::memcpy(bytes.data(), &bad, 4);
        h = {t.meta, {}, bytes};
      }
      tensors.push_back(h);
    }
    std::string broken = tmp / ("broken-" + std::string(text));
    writeByHand(hub, broken, tensors, {"config.json"}, hub);
    ConvertOptions o = quantizeOptions(QuantKind::None);
    o.quant.dequantize = true;
    CHECK(convertError(broken, tmp / "out", o) == "'" + target + "': element 0 (row 0, col 0) is " + text +
                                                       "; a quantization scale must be finite and positive "
                                                       "(same name, identity)");
  }
}

TEST_CASE("the DeepSeek FP8 fixture dequantized equals torch's dequantization, element for element") {
  // Written by tools/quant_vectors.py --dequantize-hub from torch's float8 and bfloat16 casts.
  std::string vectors = sourceDir() + "/tests/e2e/vectors/deepseek_v3_fp8_bf16.json";
  REQUIRE_MESSAGE(fs::exists(vectors), "missing " << vectors << "; make it on a machine with torch: python3 "
                                                  << "tools/quant_vectors.py --dequantize-hub "
                                                  << "tests/fixtures/hf/deepseek_v3_fp8/hub " << vectors);
  json reference = readJson(vectors);
  REQUIRE(reference["float8"] == "native");
  TempDir tmp;
  std::string hub = fixture("hf/deepseek_v3_fp8/hub"), out = tmp / "bf16";
  ConvertOptions o = quantizeOptions(QuantKind::None);
  o.quant.dequantize = true;
  ConvertSummary summary = convertOk(hub, out, o);
  auto deq = openTensors(out);
  CHECK(reference["tensors"].size() == summary.quant.dequantized);
  for (const auto &[name, expected] : reference["tensors"].items()) {
    CAPTURE(name);
    const SourceTensor *t = deq->find(name);
    REQUIRE(t != nullptr);
    CHECK(dtypeName(t->meta.dtype) == expected["dtype"].get<std::string>());
    CHECK(json(std::vector<int64_t>(t->meta.shape.begin(), t->meta.shape.end())) == expected["shape"]);
    std::vector<uint8_t> bytes = bytesOf(*deq, name);
    CHECK(llvm::toHex(llvm::SHA256::hash(bytes), /*LowerCase=*/true) == expected["sha256"].get<std::string>());
  }
}

} // namespace ckptmap::e2e
