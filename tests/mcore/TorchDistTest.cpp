// torch_dist reading: every fixture read into whole tensors and compared bit for bit with
// global.safetensors (what Megatron-Core itself loaded from that directory), and the errors
// for damaged directories.
#include "TestSupport.h"

#include "runtime/mcore/Format.h"
#include "runtime/mcore/TorchDist.h"

using namespace ckptmap;
using namespace ckptmap::mcore;
using namespace ckptmap::mcore::test;

namespace {

void compareWithGlobal(const std::string &model, const std::string &layout) {
  INFO(model << " " << layout);
  auto src = TorchDistSource::open(fixture(model + "/" + layout + "/torch_dist"));
  REQUIRE_MESSAGE(src, errorText(src.takeError()));
  std::map<std::string, StTensor> got;
  for (auto &[key, t] : readAll(**src))
    for (auto &[name, mem] : testOnlyDistToInMemory(key, t))
      REQUIRE_MESSAGE(got.emplace(name, std::move(mem)).second, name);
  auto expected = readSafetensors(fixture(model + "/" + layout + "/global.safetensors"));
  CHECK(got.size() == expected.size());
  for (const auto &[name, want] : expected) {
    auto it = got.find(name);
    REQUIRE_MESSAGE(it != got.end(), "missing " << name);
    CHECK_MESSAGE(it->second.dtype == want.dtype, name);
    CHECK_MESSAGE(it->second.shape == want.shape, name);
    CHECK_MESSAGE(it->second.bytes == want.bytes, name);
  }
}

} // namespace

TEST_CASE("torch_dist fixtures read bit-exactly as Megatron-Core loads them") {
  for (const char *model : {"minimax_m3_text", "deepseek_v3"})
    for (const char *layout : {"tp1", "tp2_ep2"})
      compareWithGlobal(model, layout);
}

TEST_CASE("torch_dist lists its bytes entries apart from the tensors") {
  auto src = TorchDistSource::open(fixture("minimax_m3_text/tp2_ep2/torch_dist"));
  REQUIRE(src);
  auto objects = (*src)->objects();
  // 3 layers x (qkv, proj) + layer 0 (fc1, fc2) + 2 MoE layers x (4 x expert fc1/fc2 shards +
  // shared fc1/fc2) + common_state
  CHECK(objects.size() == 6 + 2 + 2 * (8 + 2) + 1);
  for (const DistEntry *e : objects) {
    CHECK((*src)->find(e->key) == nullptr);
    auto value = (*src)->decodeObject(*e);
    REQUIRE_MESSAGE(value, errorText(value.takeError()));
    if (e->key == "common_state/shard_0_1")
      CHECK(pyRepr((*value)->root()) == "[{}]");
    else
      CHECK(pyRepr((*value)->root()) == "[None]");
  }
  const SourceTensor *fc1 = (*src)->find("decoder.layers.1.mlp.experts.experts.linear_fc1.weight");
  REQUIRE(fc1);
  CHECK(fc1->meta.shape == Shape{4, 64, 64});
  CHECK(fc1->meta.dtype == DType::BF16);
}

TEST_CASE("format detection") {
  auto td = detectFormat(fixture("deepseek_v3/tp1/torch_dist"));
  REQUIRE(td);
  CHECK(td->format == CheckpointFormat::TorchDist);
  auto legacy = detectFormat(fixture("deepseek_v3/tp2_ep2/legacy"));
  REQUIRE(legacy);
  CHECK(legacy->format == CheckpointFormat::Legacy);
  auto iter = detectFormat(fixture("deepseek_v3/tp2_ep2/legacy/iter_0000007"));
  REQUIRE(iter);
  CHECK(iter->format == CheckpointFormat::Legacy);
  auto st = detectFormat(fixture("deepseek_v3/tp1/global.safetensors"));
  REQUIRE(st);
  CHECK(st->format == CheckpointFormat::Safetensors);
  auto none = detectFormat(fixture("deepseek_v3/hf_config"));
  CHECK(errorText(none) == fixture("deepseek_v3/hf_config") +
                               ": not a checkpoint: no metadata.json (torch_dist), "
                               "latest_checkpointed_iteration.txt or mp_rank_* (legacy), or *.safetensors");
}
