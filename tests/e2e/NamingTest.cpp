// The MCore side of every rulebook against the reference tables (shared/reference/naming.md):
// names and shapes per layer kind, and for MiniMax-M3 and DeepSeek-V3 the names Megatron-Core
// itself gives the same model (tests/fixtures/mcore/*/tp1/global.safetensors).

#include "E2e.h"

using namespace ckptmap;
using namespace ckptmap::e2e;

namespace {

using Tensors = std::map<std::string, TensorMeta>;

/// The MCore tensors hf -> mcore writes for a family (compiled from headers, then checked
/// against the written file).
Tensors mcoreOf(const std::string &family) {
  auto c = compileCheckpoint(hubDir(family), options(family, "hf", "mcore"));
  return tensorsOf(c->plan().outputs);
}

void expectTensor(const Tensors &t, const std::string &name, Shape shape, DType dtype = DType::BF16) {
  auto it = t.find(name);
  REQUIRE_MESSAGE(it != t.end(), "no MCore tensor " << name);
  CHECK_MESSAGE(it->second.shape == shape, name << ": " << formatShape(it->second.shape) << ", expected " << formatShape(shape));
  CHECK_MESSAGE(it->second.dtype == dtype, name << ": " << dtypeName(it->second.dtype).data());
}

void expectAbsent(const Tensors &t, const std::string &name) { CHECK_MESSAGE(!t.count(name), "unexpected " << name); }

size_t countPrefix(const Tensors &t, const std::string &prefix) {
  size_t n = 0;
  for (const auto &[name, meta] : t)
    n += startsWith(name, prefix);
  return n;
}

} // namespace

TEST_CASE("NemotronH MCore names and shapes") {
  // h 64, 4 heads, 2 query groups, head dim 16; mamba: 8 heads of 16, 2 groups, state 16.
  const int64_t h = 64, nh = 4, ng = 2, d = 16;
  Tensors t = mcoreOf("nemotron_h");
  expectTensor(t, "embedding.word_embeddings.weight", {512, h});
  expectTensor(t, "output_layer.weight", {512, h});
  expectTensor(t, "decoder.final_norm.weight", {h});
  expectAbsent(t, "decoder.final_layernorm.weight");

  // mamba (layer 0): in_proj rows = 2*d_inner + 2*groups*state + heads = 256 + 64 + 8.
  expectTensor(t, "decoder.layers.0.mixer.in_proj.weight", {328, h});
  expectTensor(t, "decoder.layers.0.mixer.conv1d.weight", {192, 1, 4});
  expectTensor(t, "decoder.layers.0.mixer.conv1d.bias", {192});
  expectTensor(t, "decoder.layers.0.mixer.A_log", {8});
  expectTensor(t, "decoder.layers.0.mixer.D", {8});
  expectTensor(t, "decoder.layers.0.mixer.dt_bias", {8});
  expectTensor(t, "decoder.layers.0.mixer.norm.weight", {128});
  expectTensor(t, "decoder.layers.0.mixer.out_proj.weight", {h, 128});
  expectTensor(t, "decoder.layers.0.norm.weight", {h});
  CHECK(countPrefix(t, "decoder.layers.0.") == 9);

  // attention (layer 2): [(nh + 2 ng) d, h].
  expectTensor(t, "decoder.layers.2.self_attention.linear_qkv.weight", {(nh + 2 * ng) * d, h});
  expectTensor(t, "decoder.layers.2.self_attention.linear_proj.weight", {h, nh * d});
  expectTensor(t, "decoder.layers.2.input_layernorm.weight", {h});
  CHECK(countPrefix(t, "decoder.layers.2.") == 3);

  // mlp (layer 3): squared ReLU, linear_fc1 is up_proj alone.
  expectTensor(t, "decoder.layers.3.mlp.linear_fc1.weight", {96, h});
  expectTensor(t, "decoder.layers.3.mlp.linear_fc2.weight", {h, 96});
  expectTensor(t, "decoder.layers.3.pre_mlp_layernorm.weight", {h});
  CHECK(countPrefix(t, "decoder.layers.3.") == 3);

  // moe (layers 1 and 5): router, expert bias, 4 non-gated experts, shared expert.
  for (int L : {1, 5}) {
    std::string p = "decoder.layers." + std::to_string(L) + ".";
    expectTensor(t, p + "mlp.router.weight", {4, h});
    expectTensor(t, p + "mlp.router.expert_bias", {4});
    expectTensor(t, p + "pre_mlp_layernorm.weight", {h});
    for (int E = 0; E < 4; ++E) {
      std::string e = p + "mlp.experts.local_experts." + std::to_string(E) + ".";
      expectTensor(t, e + "linear_fc1.weight", {32, h});
      expectTensor(t, e + "linear_fc2.weight", {h, 32});
    }
    expectTensor(t, p + "mlp.shared_experts.linear_fc1.weight", {48, h});
    expectTensor(t, p + "mlp.shared_experts.linear_fc2.weight", {h, 48});
    CHECK(countPrefix(t, p) == 13);
  }

  // MTP: one block of [attention, moe] nested under mtp_model_layer.layers.{i}.
  expectTensor(t, "mtp.layers.0.eh_proj.weight", {h, 2 * h});
  expectTensor(t, "mtp.layers.0.enorm.weight", {h});
  expectTensor(t, "mtp.layers.0.hnorm.weight", {h});
  expectTensor(t, "mtp.layers.0.final_layernorm.weight", {h});
  expectTensor(t, "mtp.layers.0.mtp_model_layer.layers.0.self_attention.linear_qkv.weight", {(nh + 2 * ng) * d, h});
  expectTensor(t, "mtp.layers.0.mtp_model_layer.layers.0.self_attention.linear_proj.weight", {h, h});
  expectTensor(t, "mtp.layers.0.mtp_model_layer.layers.0.input_layernorm.weight", {h});
  expectTensor(t, "mtp.layers.0.mtp_model_layer.layers.1.mlp.router.weight", {4, h});
  expectTensor(t, "mtp.layers.0.mtp_model_layer.layers.1.mlp.experts.local_experts.3.linear_fc1.weight", {32, h});
  expectTensor(t, "mtp.layers.0.mtp_model_layer.layers.1.mlp.shared_experts.linear_fc2.weight", {h, 48});
  CHECK(countPrefix(t, "mtp.") == 4 + 3 + 13);
  CHECK(t.size() == 73);
}

TEST_CASE("Qwen3.5-MoE MCore names and shapes") {
  const int64_t h = 64, nh = 4, ng = 2, d = 16, nk = 2, dk = 16, nv = 4, dv = 16;
  Tensors t = mcoreOf("qwen3_5_moe");
  expectTensor(t, "embedding.word_embeddings.weight", {512, h});
  expectTensor(t, "output_layer.weight", {512, h});
  expectTensor(t, "decoder.final_layernorm.weight", {h});

  // GatedDeltaNet (layers 0-2): in_proj = [qkv; z; b; a].
  for (int L : {0, 1, 2}) {
    std::string p = "decoder.layers." + std::to_string(L) + ".self_attention.";
    expectTensor(t, p + "in_proj.weight", {2 * nk * dk + nv * dv + nv * dv + 2 * nv, h});
    expectTensor(t, p + "conv1d.weight", {2 * nk * dk + nv * dv, 1, 4});
    expectTensor(t, p + "A_log", {nv});
    expectTensor(t, p + "dt_bias", {nv});
    expectTensor(t, p + "out_norm.weight", {dv});
    expectTensor(t, p + "out_proj.weight", {h, nv * dv});
    expectTensor(t, "decoder.layers." + std::to_string(L) + ".input_layernorm.weight", {h});
  }
  // Gated full attention (layer 3): per group its q heads, their gate heads, k, v.
  expectTensor(t, "decoder.layers.3.self_attention.linear_qkv.weight", {(2 * nh + 2 * ng) * d, h});
  expectTensor(t, "decoder.layers.3.self_attention.linear_proj.weight", {h, nh * d});
  expectTensor(t, "decoder.layers.3.self_attention.q_layernorm.weight", {d});
  expectTensor(t, "decoder.layers.3.self_attention.k_layernorm.weight", {d});
  expectTensor(t, "decoder.layers.3.input_layernorm.weight", {h});

  // MoE on every layer: gated experts, shared expert with its gate.
  for (int L = 0; L < 4; ++L) {
    std::string p = "decoder.layers." + std::to_string(L) + ".";
    expectTensor(t, p + "mlp.router.weight", {4, h});
    expectAbsent(t, p + "mlp.router.expert_bias");
    expectTensor(t, p + "pre_mlp_layernorm.weight", {h});
    for (int E = 0; E < 4; ++E) {
      std::string e = p + "mlp.experts.local_experts." + std::to_string(E) + ".";
      expectTensor(t, e + "linear_fc1.weight", {2 * 32, h});
      expectTensor(t, e + "linear_fc2.weight", {h, 32});
    }
    expectTensor(t, p + "mlp.shared_experts.linear_fc1.weight", {2 * 48, h});
    expectTensor(t, p + "mlp.shared_experts.linear_fc2.weight", {h, 48});
    expectTensor(t, p + "mlp.shared_experts.gate_weight", {1, h});
  }

  // MTP: fc -> eh_proj, the layer under mtp_model_layer.
  expectTensor(t, "mtp.layers.0.eh_proj.weight", {h, 2 * h});
  expectTensor(t, "mtp.layers.0.enorm.weight", {h});
  expectTensor(t, "mtp.layers.0.hnorm.weight", {h});
  expectTensor(t, "mtp.layers.0.final_layernorm.weight", {h});
  expectTensor(t, "mtp.layers.0.mtp_model_layer.self_attention.linear_qkv.weight", {(2 * nh + 2 * ng) * d, h});
  expectTensor(t, "mtp.layers.0.mtp_model_layer.mlp.shared_experts.gate_weight", {1, h});
  expectTensor(t, "mtp.layers.0.mtp_model_layer.mlp.experts.local_experts.0.linear_fc1.weight", {64, h});
  for (const auto &[name, meta] : t)
    CHECK_MESSAGE(!startsWith(name, "model.visual"), name);
  CHECK(t.size() == 103);
}

namespace {

float bf16ToFloat(uint16_t bits) {
  uint32_t wide = uint32_t(bits) << 16;
  float f;
  std::memcpy(&f, &wide, 4);
  return f;
}

std::vector<uint16_t> bf16Values(const TensorSource &s, const std::string &name) {
  auto b = requireValue(s.read(*s.find(name)));
  std::vector<uint16_t> out(b.size() / 2);
  std::memcpy(out.data(), b.data(), b.size());
  return out;
}

/// The Qwen hub fixture with every GatedDeltaNet output norm set to `values` (BF16 bits); its
/// own norms are all 1.0, which would not show the affine map at work.
std::string qwenWithNorms(const TempDir &tmp, const std::vector<uint16_t> &values) {
  std::string hub = hubDir("qwen3_5_moe");
  std::vector<HandTensor> tensors;
  for (const auto &[name, meta] : tensorsOf(hub)) {
    HandTensor t{meta, {name}, std::nullopt};
    if (endsWith(name, "linear_attn.norm.weight")) {
      REQUIRE(meta.numel() == int64_t(values.size()));
      std::vector<uint8_t> bytes(values.size() * 2);
      std::memcpy(bytes.data(), values.data(), bytes.size());
      t = HandTensor{meta, {}, bytes};
    }
    tensors.push_back(t);
  }
  std::string dir = tmp / "hub";
  writeByHand(hub, dir, tensors, {"config.json", "generation_config.json"}, hub);
  return dir;
}

} // namespace

TEST_CASE("Qwen3.5-MoE GatedDeltaNet norm is zero-centred in MCore and comes back exactly") {
  // 16 BF16 values spread over [0.5, 2), where x - 1 is exact (Sterbenz): 0x3F00 = 0.5 ... 0x3FF0 = 1.875.
  std::vector<uint16_t> values;
  for (uint16_t i = 0; i < 16; ++i)
    values.push_back(uint16_t(0x3F00 + 0x10 * i));
  TempDir tmp;
  std::string hub = qwenWithNorms(tmp, values);
  convertOk(hub, tmp / "mcore", options("qwen3_5_moe", "hf", "mcore"));
  auto mc = openTensors(tmp / "mcore");
  for (int L : {0, 1, 2}) {
    std::vector<uint16_t> out = bf16Values(*mc, "decoder.layers." + std::to_string(L) + ".self_attention.out_norm.weight");
    REQUIRE(out.size() == values.size());
    for (size_t i = 0; i < values.size(); ++i)
      CHECK(bf16ToFloat(out[i]) == bf16ToFloat(values[i]) - 1.0f);
  }
  ConvertOptions back = options("qwen3_5_moe", "mcore", "hf");
  back.hfBase = hub;
  convertOk(tmp / "mcore", tmp / "hf", back);
  E2E_REQUIRE_SAME(hub, tmp / "hf");
}

TEST_CASE("Qwen3.5-MoE GatedDeltaNet norm: check states the affine map may round, and it does outside [0.5, 2]") {
  auto c = compileCheckpoint(hubDir("qwen3_5_moe"), options("qwen3_5_moe", "hf", "mcore"));
  RoundTrip trip = roundTrip(*c);
  REQUIRE(trip.lossy.size() == 2);
  CHECK(trip.lossy[0].find("affine (hf -> mcore), 3 steps") != std::string::npos);
  CHECK(trip.lossy[1].find("affine (mcore -> hf), 3 steps") != std::string::npos);

  // 258 - 1 = 257 needs 9 significant bits; BF16 has 8: it rounds (to even) to 256, and the
  // way back gives 256 + 1 = 257, rounded to 256 again.
  std::vector<uint16_t> values(16, 0x3F80); // 1.0
  values[5] = 0x4381;                       // 258.0
  TempDir tmp;
  std::string hub = qwenWithNorms(tmp, values);
  convertOk(hub, tmp / "mcore", options("qwen3_5_moe", "hf", "mcore"));
  ConvertOptions back = options("qwen3_5_moe", "mcore", "hf");
  back.hfBase = hub;
  convertOk(tmp / "mcore", tmp / "hf", back);
  DiffResult diff = diffPaths(hub, tmp / "hf");
  REQUIRE(diff.differences.size() == 3);
  for (const TensorDiff &d : diff.differences) {
    CHECK(endsWith(d.name, "linear_attn.norm.weight"));
    CHECK(d.differingElements == 1);
    CHECK(d.firstDifference == 5);
  }
  auto out = openTensors(tmp / "hf");
  CHECK(bf16ToFloat(bf16Values(*out, "model.language_model.layers.0.linear_attn.norm.weight")[5]) == 256.0f);
}

TEST_CASE("DeepSeek-V3 MCore names and shapes") {
  const int64_t h = 64;
  Tensors t = mcoreOf("deepseek_v3");
  // MLA with q_lora 32, kv_lora 16, rope 8, 4 heads of (16 nope + 8 rope), v 16.
  for (int L = 0; L < 3; ++L) {
    std::string p = "decoder.layers." + std::to_string(L) + ".";
    expectTensor(t, p + "self_attention.linear_q_down_proj.weight", {32, h});
    expectTensor(t, p + "self_attention.q_layernorm.weight", {32});
    expectTensor(t, p + "self_attention.linear_q_up_proj.weight", {4 * 24, 32});
    expectTensor(t, p + "self_attention.linear_kv_down_proj.weight", {16 + 8, h});
    expectTensor(t, p + "self_attention.kv_layernorm.weight", {16});
    expectTensor(t, p + "self_attention.linear_kv_up_proj.weight", {4 * (16 + 16), 16});
    expectTensor(t, p + "self_attention.linear_proj.weight", {h, 4 * 16});
    expectTensor(t, p + "input_layernorm.weight", {h});
    expectTensor(t, p + "pre_mlp_layernorm.weight", {h});
    expectAbsent(t, p + "self_attention.linear_q_proj.weight");
  }
  expectTensor(t, "decoder.layers.0.mlp.linear_fc1.weight", {2 * 96, h});
  expectTensor(t, "decoder.layers.0.mlp.linear_fc2.weight", {h, 96});
  expectTensor(t, "decoder.layers.1.mlp.router.expert_bias", {4});
  expectTensor(t, "decoder.layers.2.mlp.experts.local_experts.3.linear_fc1.weight", {64, h});
  expectTensor(t, "decoder.layers.2.mlp.shared_experts.linear_fc1.weight", {64, h});
  // MTP: the shared embedding and head are not written.
  expectTensor(t, "mtp.layers.0.eh_proj.weight", {h, 2 * h});
  expectTensor(t, "mtp.layers.0.final_layernorm.weight", {h});
  expectTensor(t, "mtp.layers.0.mtp_model_layer.self_attention.linear_q_down_proj.weight", {32, h});
  for (const auto &[name, meta] : t)
    CHECK_MESSAGE((name.find("embed_tokens") == std::string::npos && name.find("shared_head") == std::string::npos), name);
}

TEST_CASE("MiniMax-M3 MCore names and shapes") {
  const int64_t h = 64;
  Tensors t = mcoreOf("minimax_m3");
  expectTensor(t, "decoder.layers.0.self_attention.linear_qkv.weight", {(4 + 2 * 2) * 16, h});
  expectTensor(t, "decoder.layers.0.self_attention.q_layernorm.weight", {16});
  expectTensor(t, "decoder.layers.0.mlp.linear_fc1.weight", {2 * 96, h}); // dense
  expectTensor(t, "decoder.layers.1.mlp.router.weight", {4, h});         // MoE
  expectTensor(t, "decoder.layers.1.mlp.router.expert_bias", {4});
  expectTensor(t, "decoder.layers.1.mlp.experts.local_experts.0.linear_fc1.weight", {2 * 32, h});
  expectTensor(t, "decoder.layers.1.mlp.shared_experts.linear_fc1.weight", {2 * 32, h});
  // The sparse layer's lightning indexer, under keys Megatron ignores.
  expectTensor(t, "decoder.layers.1.self_attention.indexer.q_proj.weight", {32, h});
  expectTensor(t, "decoder.layers.1.self_attention.indexer.k_proj.weight", {16, h});
  expectTensor(t, "decoder.layers.1.self_attention.indexer.q_norm.weight", {16});
  expectTensor(t, "decoder.layers.1.self_attention.indexer.k_norm.weight", {16});
  expectAbsent(t, "decoder.layers.0.self_attention.indexer.q_proj.weight");
  expectAbsent(t, "decoder.layers.2.self_attention.indexer.q_proj.weight");
}

TEST_CASE("MCore output matches the names Megatron-Core gives the same model") {
  struct Case {
    std::string family, mcoreFixture;
    bool compareDtypes;
  };
  for (const Case &k : {Case{"deepseek_v3", "deepseek_v3", true}, Case{"minimax_m3", "minimax_m3_text", false}}) {
    CAPTURE(k.family);
    TempDir tmp;
    convertOk(hubDir(k.family), tmp / "mcore", options(k.family, "hf", "mcore"));
    Tensors ours = tensorsOf(tmp / "mcore");
    Tensors megatron = tensorsOf(fixture("mcore/" + k.mcoreFixture + "/tp1/global.safetensors"));
    for (const auto &[name, meta] : megatron) {
      auto it = ours.find(name);
      REQUIRE_MESSAGE(it != ours.end(), "Megatron-Core has " << name << ", the conversion does not");
      CHECK_MESSAGE(it->second.shape == meta.shape, name);
      if (!k.compareDtypes)
        continue;
      // Megatron-Core keeps norms and the router bias in FP32; the hub checkpoint holds them in
      // BF16 and the conversion does not change dtypes. Everything else is BF16 on both sides.
      if (meta.dtype == DType::F32)
        CHECK_MESSAGE((endsWith(name, "norm.weight") || endsWith(name, "expert_bias")), name);
      else
        CHECK_MESSAGE(it->second.dtype == meta.dtype, name);
    }
    for (const auto &[name, meta] : ours)
      if (!megatron.count(name)) {
        // MiniMax only: Megatron-Core has no lightning indexer.
        CHECK_MESSAGE(k.family == "minimax_m3", name);
        CHECK_MESSAGE(startsWith(name, "decoder.layers.1.self_attention.indexer."), name);
      }
    CHECK(ours.size() == megatron.size() + (k.family == "minimax_m3" ? 4 : 0));
  }
}

TEST_CASE("Megatron-Core's own tensors convert to HF names and shapes with --hf-config") {
  // TP1 global state dicts written by Megatron-Core (local spec, FP32 norms).
  struct Case {
    std::string family, mcoreFixture;
  };
  for (const Case &k : {Case{"deepseek_v3", "deepseek_v3"}, Case{"minimax_m3", "minimax_m3_text"}}) {
    CAPTURE(k.family);
    TempDir tmp;
    ConvertOptions o = options(k.family, "mcore", "hf");
    o.hfConfig = fixture("mcore/" + k.mcoreFixture + "/hf_config/config.json");
    if (k.family == "minimax_m3")
      o.bind.variants["dense_layout"] = "saved"; // the spelling of the hub fixture
    ConvertSummary s = convertOk(fixture("mcore/" + k.mcoreFixture + "/tp1/global.safetensors"), tmp / "hf", o);
    Tensors hf = tensorsOf(tmp / "hf");
    Tensors hub = tensorsOf(hubDir(k.family));
    for (auto it = hub.begin(); it != hub.end();) {
      const std::string &n = it->first;
      bool vision = startsWith(n, "vision_tower.") || startsWith(n, "multi_modal_projector.") || startsWith(n, "patch_merge_mlp.");
      // Megatron's MiniMax model is full attention everywhere: no indexer on layer 1.
      bool indexer = n.find(".self_attn.index_") != std::string::npos;
      it = (vision || indexer) ? hub.erase(it) : std::next(it);
    }
    CHECK(hf.size() == hub.size());
    for (const auto &[name, meta] : hub) {
      auto it = hf.find(name);
      REQUIRE_MESSAGE(it != hf.end(), "missing " << name);
      CHECK_MESSAGE(it->second.shape == meta.shape, name);
    }
    // DeepSeek's MTP embedding and head are filled from the main ones.
    if (k.family == "deepseek_v3") {
      auto out = openTensors(tmp / "hf");
      auto a = requireValue(out->read(*out->find("model.layers.3.embed_tokens.weight")));
      auto b = requireValue(out->read(*out->find("model.embed_tokens.weight")));
      CHECK(std::equal(a.bytes().begin(), a.bytes().end(), b.bytes().begin(), b.bytes().end()));
      auto c = requireValue(out->read(*out->find("model.layers.3.shared_head.head.weight")));
      auto d = requireValue(out->read(*out->find("lm_head.weight")));
      CHECK(std::equal(c.bytes().begin(), c.bytes().end(), d.bytes().begin(), d.bytes().end()));
    }
  }
}

namespace {

/// Rows [first, first + count) of a 2-D tensor's bytes.
std::vector<uint8_t> rows(const TensorSource &s, const std::string &name, int64_t first, int64_t count) {
  const SourceTensor *t = s.find(name);
  REQUIRE_MESSAGE(t != nullptr, name);
  REQUIRE(t->meta.shape.size() == 2);
  REQUIRE(first + count <= t->meta.shape[0]);
  auto b = requireValue(s.read(*t));
  size_t row = size_t(t->meta.shape[1]) * dtypeSize(t->meta.dtype);
  return std::vector<uint8_t>(b.data() + first * row, b.data() + (first + count) * row);
}

std::vector<uint8_t> all(const TensorSource &s, const std::string &name) {
  auto b = requireValue(s.read(*s.find(name)));
  return std::vector<uint8_t>(b.bytes().begin(), b.bytes().end());
}

void append(std::vector<uint8_t> &to, const std::vector<uint8_t> &from) { to.insert(to.end(), from.begin(), from.end()); }

/// MCore's grouped QKV from HF q/k/v (per group: its q heads, [their gate heads,] its k head,
/// its v head), built row by row. With `gated`, HF q holds per head d query rows then d gate rows.
std::vector<uint8_t> expectedQkv(const TensorSource &hf, const std::string &p, int64_t nh, int64_t ng, int64_t d,
                                 bool gated) {
  std::vector<uint8_t> out;
  const int64_t perGroup = nh / ng;
  for (int64_t g = 0; g < ng; ++g) {
    for (int64_t h = g * perGroup; h < (g + 1) * perGroup; ++h)
      append(out, rows(hf, p + "q_proj.weight", gated ? h * 2 * d : h * d, d));
    if (gated)
      for (int64_t h = g * perGroup; h < (g + 1) * perGroup; ++h)
        append(out, rows(hf, p + "q_proj.weight", h * 2 * d + d, d));
    append(out, rows(hf, p + "k_proj.weight", g * d, d));
    append(out, rows(hf, p + "v_proj.weight", g * d, d));
  }
  return out;
}

} // namespace

TEST_CASE("MCore tensor layouts, byte for byte: grouped QKV, gated QKV, [gate; up], GatedDeltaNet in_proj") {
  TempDir tmp;
  SUBCASE("NemotronH: QKV per group, squared-ReLU fc1 is up_proj") {
    convertOk(hubDir("nemotron_h"), tmp / "mcore", options("nemotron_h", "hf", "mcore"));
    auto hf = openTensors(hubDir("nemotron_h"));
    auto mc = openTensors(tmp / "mcore");
    CHECK(all(*mc, "decoder.layers.2.self_attention.linear_qkv.weight") ==
          expectedQkv(*hf, "backbone.layers.2.mixer.", 4, 2, 16, false));
    CHECK(all(*mc, "mtp.layers.0.mtp_model_layer.layers.0.self_attention.linear_qkv.weight") ==
          expectedQkv(*hf, "mtp.layers.0.mixer.", 4, 2, 16, false));
    CHECK(all(*mc, "decoder.layers.5.mlp.experts.local_experts.2.linear_fc1.weight") ==
          all(*hf, "backbone.layers.5.mixer.experts.2.up_proj.weight"));
    CHECK(all(*mc, "mtp.layers.0.mtp_model_layer.layers.1.mlp.experts.local_experts.3.linear_fc2.weight") ==
          all(*hf, "mtp.layers.1.mixer.experts.3.down_proj.weight"));
  }
  SUBCASE("Qwen3.5-MoE: gated QKV, in_proj = [qkv; z; b; a], fc1 = [gate; up]") {
    convertOk(hubDir("qwen3_5_moe"), tmp / "mcore", options("qwen3_5_moe", "hf", "mcore"));
    auto hf = openTensors(hubDir("qwen3_5_moe"));
    auto mc = openTensors(tmp / "mcore");
    const std::string lm = "model.language_model.layers.";
    CHECK(all(*mc, "decoder.layers.3.self_attention.linear_qkv.weight") ==
          expectedQkv(*hf, lm + "3.self_attn.", 4, 2, 16, true));
    CHECK(all(*mc, "mtp.layers.0.mtp_model_layer.self_attention.linear_qkv.weight") ==
          expectedQkv(*hf, "mtp.layers.0.self_attn.", 4, 2, 16, true));
    std::vector<uint8_t> inProj;
    for (const char *part : {"in_proj_qkv", "in_proj_z", "in_proj_b", "in_proj_a"})
      append(inProj, all(*hf, lm + "1.linear_attn." + part + ".weight"));
    CHECK(all(*mc, "decoder.layers.1.self_attention.in_proj.weight") == inProj);
    std::vector<uint8_t> fc1 = all(*hf, lm + "2.mlp.experts.3.gate_proj.weight");
    append(fc1, all(*hf, lm + "2.mlp.experts.3.up_proj.weight"));
    CHECK(all(*mc, "decoder.layers.2.mlp.experts.local_experts.3.linear_fc1.weight") == fc1);
    std::vector<uint8_t> shared = all(*hf, lm + "0.mlp.shared_expert.gate_proj.weight");
    append(shared, all(*hf, lm + "0.mlp.shared_expert.up_proj.weight"));
    CHECK(all(*mc, "decoder.layers.0.mlp.shared_experts.linear_fc1.weight") == shared);
    CHECK(all(*mc, "mtp.layers.0.eh_proj.weight") == all(*hf, "mtp.fc.weight"));
  }
  SUBCASE("MiniMax-M3: QKV per group, expert fc1 = [w1; w3], dense fc1 = [gate; up]") {
    convertOk(hubDir("minimax_m3"), tmp / "mcore", options("minimax_m3", "hf", "mcore"));
    auto hf = openTensors(hubDir("minimax_m3"));
    auto mc = openTensors(tmp / "mcore");
    const std::string lm = "language_model.model.layers.";
    CHECK(all(*mc, "decoder.layers.1.self_attention.linear_qkv.weight") ==
          expectedQkv(*hf, lm + "1.self_attn.", 4, 2, 16, false));
    std::vector<uint8_t> fc1 = all(*hf, lm + "2.block_sparse_moe.experts.1.w1.weight");
    append(fc1, all(*hf, lm + "2.block_sparse_moe.experts.1.w3.weight"));
    CHECK(all(*mc, "decoder.layers.2.mlp.experts.local_experts.1.linear_fc1.weight") == fc1);
    CHECK(all(*mc, "decoder.layers.2.mlp.experts.local_experts.1.linear_fc2.weight") ==
          all(*hf, lm + "2.block_sparse_moe.experts.1.w2.weight"));
    std::vector<uint8_t> dense = all(*hf, lm + "0.block_sparse_moe.gate_proj.weight");
    append(dense, all(*hf, lm + "0.block_sparse_moe.up_proj.weight"));
    CHECK(all(*mc, "decoder.layers.0.mlp.linear_fc1.weight") == dense);
  }
  SUBCASE("DeepSeek-V3: MLA renames, dense and expert fc1 = [gate; up]") {
    convertOk(hubDir("deepseek_v3"), tmp / "mcore", options("deepseek_v3", "hf", "mcore"));
    auto hf = openTensors(hubDir("deepseek_v3"));
    auto mc = openTensors(tmp / "mcore");
    CHECK(all(*mc, "decoder.layers.1.self_attention.linear_kv_down_proj.weight") ==
          all(*hf, "model.layers.1.self_attn.kv_a_proj_with_mqa.weight"));
    CHECK(all(*mc, "decoder.layers.1.self_attention.linear_q_up_proj.weight") ==
          all(*hf, "model.layers.1.self_attn.q_b_proj.weight"));
    std::vector<uint8_t> dense = all(*hf, "model.layers.0.mlp.gate_proj.weight");
    append(dense, all(*hf, "model.layers.0.mlp.up_proj.weight"));
    CHECK(all(*mc, "decoder.layers.0.mlp.linear_fc1.weight") == dense);
    std::vector<uint8_t> fc1 = all(*hf, "model.layers.3.mlp.experts.0.gate_proj.weight");
    append(fc1, all(*hf, "model.layers.3.mlp.experts.0.up_proj.weight"));
    CHECK(all(*mc, "mtp.layers.0.mtp_model_layer.mlp.experts.local_experts.0.linear_fc1.weight") == fc1);
    CHECK(all(*mc, "mtp.layers.0.final_layernorm.weight") == all(*hf, "model.layers.3.shared_head.norm.weight"));
  }
}

TEST_CASE("stacked experts in MCore are the per-expert tensors, one after another") {
  TempDir tmp;
  ConvertOptions o = options("deepseek_v3", "hf", "mcore");
  o.bind.variants["experts"] = "stacked";
  convertOk(hubDir("deepseek_v3"), tmp / "mcore", o);
  auto hf = openTensors(hubDir("deepseek_v3"));
  auto mc = openTensors(tmp / "mcore");
  std::vector<uint8_t> fc1, fc2;
  for (int e = 0; e < 4; ++e) {
    std::string p = "model.layers.2.mlp.experts." + std::to_string(e) + ".";
    append(fc1, all(*hf, p + "gate_proj.weight"));
    append(fc1, all(*hf, p + "up_proj.weight"));
    append(fc2, all(*hf, p + "down_proj.weight"));
  }
  CHECK(all(*mc, "decoder.layers.2.mlp.experts.experts.linear_fc1.weight") == fc1);
  CHECK(all(*mc, "decoder.layers.2.mlp.experts.experts.linear_fc2.weight") == fc2);
}
