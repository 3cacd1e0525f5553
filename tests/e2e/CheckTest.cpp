// `check` on every shipped rulebook against its fixture, from headers alone: every tensor
// mapped both ways, the exact number of tensors read, written and dropped, and the way back
// restoring every name, dtype and shape except what a rule states.

#include "E2e.h"

using namespace ckptmap;
using namespace ckptmap::e2e;

namespace {

/// What one direction of one family is expected to compile to.
struct Expected {
  size_t hubTensors;  ///< tensors of the source checkpoint
  size_t read;        ///< plan.inputs: tensors the plan loads
  size_t written;     ///< plan.outputs
  size_t dropped;     ///< plan.drops
  size_t gaps;        ///< way back: source tensors not restored by rule (base or lost)
  size_t fromBase;    ///< of those, restored from --hf-base
  std::string dropReason;
};

// hf -> mcore. Counts derived from the fixtures' layer lists:
// - nemotron_h: 77 tensors; the two attention layers (layer 2, MTP layer 0) fuse q/k/v: 77 - 2*2.
// - qwen3_5_moe: 141 text + 21 vision tensors (dropped, from --hf-base). 3 GatedDeltaNet layers fuse
//   4 projections (-9), 2 gated attention layers (layer 3, MTP) fuse q/k/v (-4), 5 MoE layers fuse
//   4 experts' gate/up (-20) and the shared expert's (-5): 141 - 38 = 103.
// - deepseek_v3: 99 tensors; the MTP layer's embed_tokens and shared_head.head are dropped (read to
//   compare with the main ones); dense layer 0 fuses gate/up (-1), 3 MoE layers (1, 2, MTP) fuse
//   4 experts and the shared expert (-15): 99 - 2 - 16 = 81.
// - minimax_m3: 68 text + 27 vision/projector tensors (dropped). 3 attention layers fuse q/k/v
//   (-6), the dense layer gate/up (-1), 2 MoE layers 4 experts + shared (-10): 68 - 17 = 51.
Expected toMcore(const std::string &family) {
  if (family == "nemotron_h")
    return {77, 77, 73, 0, 0, 0, ""};
  if (family == "qwen3_5_moe")
    return {162, 141, 103, 21, 21, 21, "MCore holds the text model only; the vision tower comes from --hf-base"};
  if (family == "deepseek_v3")
    return {99, 99, 81, 2, 0, 0, "MCore's MTP layers share the main"};
  return {95, 68, 51, 27, 27, 27, "MCore holds the text model only"};
}

// hf -> hf-mem: MTP layers dropped; MoE experts stacked into two 3-D tensors per layer.
// - nemotron_h: 22 MTP tensors; 2 MoE layers turn 8 expert tensors into 2: 55 - 12 = 43.
// - qwen3_5_moe: 29 MTP tensors; 4 MoE layers turn 12 expert tensors into 2: 133 - 40 = 93.
// - deepseek_v3: 32 tensors of model.layers.3; 2 MoE layers: 67 - 20 = 47.
// - minimax_m3: nothing dropped; the dense layer's gate/up fused (-1), 2 MoE layers stack 12
//   expert tensors into 2 and fuse the shared expert's gate/up (-11 each): 95 - 23 = 72.
Expected toMem(const std::string &family) {
  if (family == "nemotron_h")
    return {77, 55, 43, 22, 22, 0, "transformers does not model the MTP layers"};
  if (family == "qwen3_5_moe")
    return {162, 133, 93, 29, 29, 0, "transformers does not model the MTP layer"};
  if (family == "deepseek_v3")
    return {99, 67, 47, 32, 32, 0, "transformers does not model the MTP layers"};
  return {95, 95, 72, 0, 0, 0, ""};
}

size_t countBaseLoads(const Plan &plan) {
  size_t n = 0;
  for (const Step &s : plan.steps)
    for (const Instr &i : s.instrs)
      if (i.op == InstrOp::Load && i.source == LoadSource::Base)
        ++n;
  return n;
}

void checkDirection(const std::string &family, const std::string &to, const Expected &e) {
  CAPTURE(family);
  CAPTURE(to);
  auto c = compileCheckpoint(hubDir(family), options(family, "hf", to));
  CHECK(c->diags.errorCount() == 0);
  CHECK_MESSAGE(c->diags.warningCount() == 0, c->errors());
  const Plan &plan = c->plan();
  CHECK(plan.family == family);
  CHECK(plan.from == "hf");
  CHECK(plan.to == to);
  CHECK(c->compiled.inputs.source.size() == e.hubTensors);
  CHECK(plan.inputs.size() == e.read);
  CHECK(plan.outputs.size() == e.written);
  CHECK(plan.drops.size() == e.dropped);
  for (const PlanDrop &d : plan.drops)
    CHECK_MESSAGE(d.reason.find(e.dropReason) != std::string::npos, d.tensor << ": " << d.reason);

  // Every source tensor is read or dropped, exactly once.
  std::set<std::string> covered;
  for (const TensorMeta &t : plan.inputs)
    covered.insert(t.name);
  for (const PlanDrop &d : plan.drops)
    covered.insert(d.tensor);
  CHECK(covered.size() == e.hubTensors);
  // Every output is produced exactly once.
  std::set<std::string> outs;
  for (const TensorMeta &t : plan.outputs)
    CHECK_MESSAGE(outs.insert(t.name).second, "produced twice: " << t.name);

  RoundTrip trip = roundTrip(*c);
  CHECK_MESSAGE(trip.mismatches.empty(), joinLines(trip.mismatches));
  CHECK(trip.restored == e.hubTensors - e.gaps);
  CHECK(trip.statedGaps.size() == e.gaps);
  size_t baseGaps = 0;
  for (const std::string &g : trip.statedGaps)
    if (g.find("comes back from --hf-base") != std::string::npos)
      ++baseGaps;
  CHECK(baseGaps == e.fromBase);
  CHECK(countBaseLoads(*trip.reverse) == e.fromBase);
  // The way back reads exactly what the way out wrote.
  CHECK(trip.reverse->inputs.size() + trip.reverse->drops.size() == plan.outputs.size());
}

} // namespace

TEST_CASE("check hf <-> mcore: every tensor mapped both ways, exact counts") {
  for (const std::string &family : families())
    checkDirection(family, "mcore", toMcore(family));
}

TEST_CASE("check hf <-> hf-mem: every tensor mapped both ways, MTP stated as dropped") {
  for (const std::string &family : families())
    checkDirection(family, "hf-mem", toMem(family));
}

TEST_CASE("check hf-mem -> hf from transformers' own in-memory state dict") {
  // inmem.safetensors tensor counts are the hf -> hf-mem outputs above.
  const std::map<std::string, std::pair<size_t, size_t>> counts = {
      {"nemotron_h", {43, 55}}, {"qwen3_5_moe", {93, 133}}, {"deepseek_v3", {47, 67}}, {"minimax_m3", {72, 95}}};
  for (const std::string &family : families()) {
    CAPTURE(family);
    ConvertOptions o = options(family, "hf-mem", "hf");
    o.hfConfig = hubDir(family) + "/config.json";
    if (family == "qwen3_5_moe")
      o.bind.layout = "saved"; // the counts are of the save_pretrained layout
    auto c = compileCheckpoint(inmemFile(family), o);
    const Plan &plan = c->plan();
    CHECK(plan.inputs.size() == counts.at(family).first);
    CHECK(plan.outputs.size() == counts.at(family).second);
    CHECK(plan.drops.empty());
    // The MTP layers are stated as not produced (a gap), never silently missing.
    if (family == "minimax_m3") {
      CHECK(plan.gaps.empty());
    } else {
      REQUIRE(plan.gaps.size() == 1);
      CHECK(plan.gaps[0].pattern == (family == "deepseek_v3" ? "model.layers.3.{*rest}" : "mtp.{*rest}"));
      CHECK_FALSE(plan.gaps[0].fromBase);
    }
    RoundTrip trip = roundTrip(*c);
    CHECK_MESSAGE(trip.mismatches.empty(), joinLines(trip.mismatches));
    CHECK(trip.restored == counts.at(family).first);
  }
}

TEST_CASE("check mcore -> hf of a VL model: the vision tower is a stated gap that --hf-base fills") {
  for (const std::string family : {"qwen3_5_moe", "minimax_m3"}) {
    CAPTURE(family);
    TempDir tmp;
    convertOk(hubDir(family), tmp / "mcore", options(family, "hf", "mcore"));
    std::set<std::string> vision;
    for (const auto &[name, meta] : tensorsOf(hubDir(family)))
      if (startsWith(name, "model.visual.") || startsWith(name, "vision_tower.") ||
          startsWith(name, "multi_modal_projector.") || startsWith(name, "patch_merge_mlp."))
        vision.insert(name);
    REQUIRE(vision.size() == toMcore(family).fromBase);

    // Without --hf-base: the plan says which patterns it does not produce, and why.
    {
      ConvertOptions o = options(family, "mcore", "hf");
      auto c = compileCheckpoint(tmp / "mcore", o);
      REQUIRE_FALSE(c->plan().gaps.empty());
      for (const PlanGap &g : c->plan().gaps) {
        CHECK(g.fromBase);
        CHECK(g.reason.find("--hf-base") != std::string::npos);
      }
      for (const TensorMeta &t : c->plan().outputs)
        CHECK_MESSAGE(!vision.count(t.name), t.name);
    }
    // With it: the same tensors come back, loaded from the base.
    {
      ConvertOptions o = options(family, "mcore", "hf");
      o.hfBase = hubDir(family);
      auto c = compileCheckpoint(tmp / "mcore", o);
      CHECK(c->plan().gaps.empty());
      CHECK(countBaseLoads(c->plan()) == vision.size());
      std::set<std::string> outs;
      for (const TensorMeta &t : c->plan().outputs)
        outs.insert(t.name);
      for (const std::string &v : vision)
        CHECK_MESSAGE(outs.count(v), v);
    }
  }
}
