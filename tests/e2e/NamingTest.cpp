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

TEST_CASE("Qwen3.5-MoE GatedDeltaNet norm is zero-centred in MCore") {
  TempDir tmp;
  convertOk(hubDir("qwen3_5_moe"), tmp / "mcore", options("qwen3_5_moe", "hf", "mcore"));
  auto hf = requireValue(openSafetensors(hubDir("qwen3_5_moe")));
  auto mc = requireValue(openSafetensors(tmp / "mcore"));
  auto bf16 = [](const TensorBytes &b, size_t i) {
    uint32_t bits = uint32_t(b.data()[2 * i]) | uint32_t(b.data()[2 * i + 1]) << 8;
    bits <<= 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  };
  auto a = requireValue(hf->read(*hf->find("model.language_model.layers.0.linear_attn.norm.weight")));
  auto b = requireValue(mc->read(*mc->find("decoder.layers.0.self_attention.out_norm.weight")));
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size() / 2; ++i)
    CHECK(bf16(b, i) == bf16(a, i) - 1.0f);
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
      auto out = requireValue(openSafetensors(tmp / "hf"));
      auto a = requireValue(out->read(*out->find("model.layers.3.embed_tokens.weight")));
      auto b = requireValue(out->read(*out->find("model.embed_tokens.weight")));
      CHECK(std::equal(a.bytes().begin(), a.bytes().end(), b.bytes().begin(), b.bytes().end()));
      auto c = requireValue(out->read(*out->find("model.layers.3.shared_head.head.weight")));
      auto d = requireValue(out->read(*out->find("lm_head.weight")));
      CHECK(std::equal(c.bytes().begin(), c.bytes().end(), d.bytes().begin(), d.bytes().end()));
    }
  }
}
