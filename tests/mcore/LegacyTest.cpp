// Legacy per-rank checkpoints: merged into whole tensors equal to global.safetensors, each
// rank's file equal to that rank's in-memory state dict, and the errors for broken layouts.
#include "SyntheticLegacy.h"
#include "TestSupport.h"

#include "runtime/mcore/Legacy.h"

#include "llvm/Support/FileSystem.h"

#include <algorithm>
#include <cstdio>

using namespace ckptmap;
using namespace ckptmap::mcore;
using namespace ckptmap::mcore::test;

namespace {

void compareTensors(const std::map<std::string, StTensor> &got, const std::map<std::string, StTensor> &expected) {
  CHECK(got.size() == expected.size());
  for (const auto &[name, want] : expected) {
    auto it = got.find(name);
    REQUIRE_MESSAGE(it != got.end(), "missing " << name);
    CHECK_MESSAGE(it->second.dtype == want.dtype, name);
    CHECK_MESSAGE(it->second.shape == want.shape, name);
    CHECK_MESSAGE(it->second.bytes == want.bytes, name);
  }
}

std::string rankDir(int r) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "mp_rank_%02d_%03d", r % 2, r / 2);
  return buf;
}

} // namespace

TEST_CASE("legacy fixtures merge into the tensors Megatron-Core holds") {
  for (const char *model : {"minimax_m3_text", "deepseek_v3"})
    for (const char *layout : {"tp1", "tp2_ep2"}) {
      INFO(model << " " << layout);
      auto src = LegacySource::open(fixture(std::string(model) + "/" + layout + "/legacy"));
      REQUIRE_MESSAGE(src, errorText(src.takeError()));
      compareTensors(readAll(**src), readSafetensors(fixture(std::string(model) + "/" + layout + "/global.safetensors")));
      const bool tp2 = std::string(layout) == "tp2_ep2";
      CHECK((*src)->layout().tensorParallel == (tp2 ? 2 : 1));
      CHECK((*src)->layout().expertParallel == (tp2 ? 2 : 1));
      CHECK((*src)->layout().pipelineParallel == 1);
    }
}

TEST_CASE("legacy tp2_ep2 rank files hold each rank's in-memory state dict") {
  for (const char *model : {"minimax_m3_text", "deepseek_v3"})
    for (int r = 0; r < 4; ++r) {
      INFO(model << " rank " << r);
      std::string base = fixture(std::string(model) + "/tp2_ep2/");
      auto file = LegacyRankFile::open(base + "legacy/iter_0000007/" + rankDir(r) + "/model_optim_rng.pt");
      REQUIRE_MESSAGE(file, errorText(file.takeError()));
      compareTensors(readAll(**file), readSafetensors(base + "ranks/rank" + std::to_string(r) + ".safetensors"));
      CHECK((*file)->iteration() == 7);
      CHECK((*file)->args().tensorParallel == 2);
    }
}

TEST_CASE("legacy reports what it does not convert") {
  auto src = LegacySource::open(fixture("minimax_m3_text/tp2_ep2/legacy"));
  REQUIRE(src);
  auto skipped = (*src)->skipped();
  // every linear's _extra_state (None), with global layer and expert numbers
  CHECK(std::find(skipped.begin(), skipped.end(), "decoder.layers.2.mlp.experts.local_experts.3.linear_fc2._extra_state (None)") !=
        skipped.end());
  CHECK(std::find(skipped.begin(), skipped.end(), "output_layer._extra_state (None)") != skipped.end());
  for (const std::string &s : skipped)
    CHECK_MESSAGE(llvm::StringRef(s).endswith("._extra_state (None)"), s);
}

TEST_CASE("legacy: a missing rank directory is named") {
  ScratchDir dir("legacy_missing_rank");
  copyTree(fixture("minimax_m3_text/tp2_ep2/legacy"), dir.path());
  llvm::sys::fs::remove_directories(dir / "iter_0000007/mp_rank_01_001");
  auto src = LegacySource::open(dir.path());
  CHECK(errorText(src) == dir / "iter_0000007/mp_rank_01_001" +
                              ": rank directory missing (tensor_model_parallel_size 2, pipeline_model_parallel_size 1, "
                              "expert_model_parallel_size 2, from " +
                              dir / "iter_0000007/mp_rank_00_000/model_optim_rng.pt" + ")");
}

TEST_CASE("legacy: a tracker naming a missing iteration") {
  ScratchDir dir("legacy_bad_tracker");
  copyTree(fixture("minimax_m3_text/tp1/legacy"), dir.path());
  writeFile(dir / "latest_checkpointed_iteration.txt", {'8'});
  auto src = LegacySource::open(dir.path());
  CHECK(errorText(src) == dir / "latest_checkpointed_iteration.txt" + ": names iteration 8, but " +
                              dir / "iter_0000008" + " is missing");
}

TEST_CASE("legacy: tensor, pipeline and expert parallel shards merge back (experts distinct per rank)") {
  for (const char *model : {"minimax_m3_text", "deepseek_v3"}) {
    INFO(model);
    auto global = readSafetensors(fixture(std::string(model) + "/tp1/global.safetensors"));
    // the experts differ, so a wrong expert numbering would show
    CHECK(global["decoder.layers.1.mlp.experts.local_experts.0.linear_fc1.weight"].bytes !=
          global["decoder.layers.1.mlp.experts.local_experts.2.linear_fc1.weight"].bytes);
    ScratchDir dir(std::string("synthetic_") + model);
    SyntheticLayout layout;
    layout.stageLayers = {2, 1};
    writeSyntheticLegacy(dir.path(), global, layout);
    auto src = LegacySource::open(dir.path());
    REQUIRE_MESSAGE(src, errorText(src.takeError()));
    CHECK((*src)->layout().stageLayers == std::vector<int64_t>{2, 1});
    CHECK((*src)->layout().pipelineParallel == 2);
    compareTensors(readAll(**src), global);
    CHECK(std::vector<std::string>((*src)->skipped().begin(), (*src)->skipped().end()) ==
          std::vector<std::string>{"optimizer"});
  }
}

TEST_CASE("legacy: disagreements between ranks, args and shapes are explained") {
  auto global = readSafetensors(fixture("minimax_m3_text/tp1/global.safetensors"));
  {
    ScratchDir dir("synthetic_replica");
    SyntheticLayout layout;
    layout.stageLayers = {2, 1};
    layout.tweak = [](int t, int p, int e, std::map<std::string, StTensor> &model) {
      if (t == 1 && p == 1 && e == 1)
        model["decoder.layers.0.mlp.router.weight"].bytes[0] ^= 1;
    };
    writeSyntheticLegacy(dir.path(), global, layout);
    auto src = LegacySource::open(dir.path());
    REQUIRE(src);
    auto bytes = (*src)->read(*(*src)->find("decoder.layers.2.mlp.router.weight"));
    CHECK(errorText(bytes) == dir / "iter_0000007/mp_rank_01_001_001/model_optim_rng.pt" +
                                  ": 'decoder.layers.0.mlp.router.weight' differs from "
                                  "'decoder.layers.0.mlp.router.weight' in " +
                                  dir / "iter_0000007/mp_rank_00_001_000/model_optim_rng.pt" +
                                  ", though both are copies of one shard of 'decoder.layers.2.mlp.router.weight'");
  }
  {
    ScratchDir dir("synthetic_experts");
    SyntheticLayout layout;
    layout.stageLayers = {2, 1};
    layout.argsNumExperts = 6;
    writeSyntheticLegacy(dir.path(), global, layout);
    CHECK(errorText(LegacySource::open(dir.path())) ==
          dir / "iter_0000007/mp_rank_00_000_000/model_optim_rng.pt" +
              ": decoder.layers.1.mlp.experts holds 2 local experts, 4 in all with expert_model_parallel_size 2, but "
              "args.num_experts is 6");
  }
  {
    ScratchDir dir("synthetic_layers");
    SyntheticLayout layout;
    layout.stageLayers = {1, 1};
    layout.argsNumLayers = 3;
    auto two = global;
    for (auto it = two.begin(); it != two.end();)
      it = it->first.rfind("decoder.layers.2.", 0) == 0 ? two.erase(it) : std::next(it);
    writeSyntheticLegacy(dir.path(), two, layout);
    CHECK(errorText(LegacySource::open(dir.path())) ==
          dir / "iter_0000007" +
              ": the pipeline stages hold 1 + 1 = 2 decoder layers, but args.num_layers is 3 (from " +
              dir / "iter_0000007/mp_rank_00_000_000/model_optim_rng.pt" + ")");
  }
  {
    ScratchDir dir("synthetic_swiglu");
    SyntheticLayout layout;
    layout.stageLayers = {2, 1};
    layout.swigluValue = false;
    writeSyntheticLegacy(dir.path(), global, layout);
    CHECK(errorText(LegacySource::open(dir.path())) ==
          dir / "iter_0000007/mp_rank_00_000_000/model_optim_rng.pt" +
              ": 'decoder.layers.0.mlp.linear_fc1.weight' has 96 rows for 48 columns of "
              "'decoder.layers.0.mlp.linear_fc2.weight', so it is gated, but args.swiglu is False");
  }
}
