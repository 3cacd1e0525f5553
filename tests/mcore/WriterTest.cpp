// torch_dist writing: the fixtures rewritten byte for byte as Megatron-Core wrote them,
// round trips, determinism, defaults, and atomic failure.
#include "TestSupport.h"

#include "runtime/mcore/Format.h"
#include "runtime/mcore/Legacy.h"
#include "runtime/mcore/TorchDist.h"
#include "runtime/mcore/TorchDistWriter.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <algorithm>

using namespace ckptmap;
using namespace ckptmap::mcore;
using namespace ckptmap::mcore::test;

namespace {

std::vector<std::string> filesIn(const std::string &dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(dir, ec), end; it != end && !ec; it.increment(ec))
    out.push_back(llvm::sys::path::filename(it->path()).str());
  std::sort(out.begin(), out.end());
  return out;
}

void reproduce(const std::string &model, const std::string &layout, int ranks) {
  INFO(model << " " << layout);
  const std::string from = fixture(model + "/" + layout + "/torch_dist");
  auto src = TorchDistSource::open(from);
  REQUIRE(src);
  auto plan = reproducingPlan(**src);
  REQUIRE_MESSAGE(plan, errorText(plan.takeError()));
  ScratchDir out("reproduce_" + model + "_" + layout);
  TorchDistWriteOptions options;
  options.ranks = ranks;
  options.checkpointId = (*src)->index().checkpointId;
  options.saveId = (*src)->index().saveId;
  auto writer = TorchDistWriter::create(out / "td", *plan, options);
  REQUIRE_MESSAGE(writer, errorText(writer.takeError()));
  for (const DistEntry &e : (*src)->index().entries) {
    if (!e.isTensor)
      continue;
    auto bytes = (*src)->read(*(*src)->find(e.key));
    REQUIRE(bytes);
    REQUIRE_MESSAGE(!(*writer)->write(e.key, bytes->bytes()), e.key);
  }
  llvm::Error done = (*writer)->finish();
  REQUIRE_MESSAGE(!done, errorText(std::move(done)));
  CHECK(filesIn(out / "td") == filesIn(from));
  for (const std::string &f : filesIn(from)) {
    INFO(f);
    CHECK(readFile(out / ("td/" + f)) == readFile(from + "/" + f));
  }
}

} // namespace

TEST_CASE("the writer reproduces Megatron-Core's torch_dist files byte for byte") {
  for (const char *model : {"minimax_m3_text", "deepseek_v3"}) {
    reproduce(model, "tp1", 1);
    reproduce(model, "tp2_ep2", 4);
  }
}

TEST_CASE("torch_dist round trip: one chunk per tensor, bytes entries kept, deterministic") {
  for (const char *model : {"minimax_m3_text", "deepseek_v3"}) {
    INFO(model);
    auto src = TorchDistSource::open(fixture(std::string(model) + "/tp2_ep2/torch_dist"));
    REQUIRE(src);
    ScratchDir out(std::string("roundtrip_") + model);
    llvm::Error err = writeTorchDist(**src, out / "a");
    REQUIRE_MESSAGE(!err, errorText(std::move(err)));
    auto back = TorchDistSource::open(out / "a");
    REQUIRE_MESSAGE(back, errorText(back.takeError()));
    auto want = readAll(**src), got = readAll(**back);
    CHECK(got.size() == want.size());
    for (const auto &[name, t] : want) {
      REQUIRE(got.count(name));
      CHECK_MESSAGE(got[name].bytes == t.bytes, name);
      CHECK(got[name].shape == t.shape);
      CHECK(got[name].dtype == t.dtype);
    }
    for (const DistEntry &e : (*back)->index().entries)
      if (e.isTensor)
        CHECK(e.chunks.size() == 1);
    // every bytes entry reproduced as it was
    auto objects = (*src)->objects();
    CHECK((*back)->objects().size() == objects.size());
    for (const DistEntry *e : objects) {
      const DistEntry *copy = nullptr;
      for (const DistEntry *b : (*back)->objects())
        if (b->key == e->key)
          copy = b;
      REQUIRE_MESSAGE(copy, e->key);
      CHECK(*(*back)->readObjectArchive(*copy) == *(*src)->readObjectArchive(*e));
    }
    // same input, same bytes
    err = writeTorchDist(**src, out / "b");
    REQUIRE(!err);
    for (const std::string &f : filesIn(out / "a"))
      CHECK_MESSAGE(readFile(out / ("a/" + f)) == readFile(out / ("b/" + f)), f);
  }
}

TEST_CASE("writing from in-memory names adds Megatron's default extra state and common state") {
  auto src = LegacySource::open(fixture("minimax_m3_text/tp1/legacy"));
  REQUIRE(src);
  ScratchDir out("defaults");
  TorchDistWriteOptions options;
  options.iteration = 7;
  options.ranks = 2;
  options.commonState = {{"ckptmap", {{"hf_layout", "hub"}, {"hf_config", "{\"model_type\": \"minimax_m3\"}"}}}};
  llvm::Error err = writeTorchDist(**src, out / "ckpt", options);
  REQUIRE_MESSAGE(!err, errorText(std::move(err)));
  CHECK(readFile(out / "ckpt/latest_checkpointed_iteration.txt") == std::vector<uint8_t>{'7'});
  CHECK(filesIn(out / "ckpt/iter_0000007") ==
        std::vector<std::string>{".metadata", "__0_0.distcp", "__1_0.distcp", "metadata.json"});
  auto detected = detectFormat(out / "ckpt");
  REQUIRE(detected);
  CHECK(detected->format == CheckpointFormat::TorchDist);
  CHECK(detected->path == out / "ckpt/iter_0000007");
  auto back = TorchDistSource::open(out / "ckpt");
  REQUIRE_MESSAGE(back, errorText(back.takeError()));
  auto want = readAll(**src), got = readAll(**back);
  CHECK(got.size() == want.size());
  for (const auto &[name, t] : want)
    CHECK_MESSAGE(got[name].bytes == t.bytes, name);
  std::map<std::string, std::string> objects;
  for (const DistEntry *e : (*back)->objects()) {
    auto value = (*back)->decodeObject(*e);
    REQUIRE(value);
    objects[e->key] = pyRepr((*value)->root());
  }
  CHECK(objects["decoder.layers.0.self_attention.linear_qkv._extra_state/shard_0_1"] == "[None]");
  CHECK(objects["decoder.layers.1.mlp.experts.local_experts.3.linear_fc2._extra_state/shard_0_1"] == "[None]");
  CHECK(objects.count("output_layer._extra_state/shard_0_1") == 0);
  CHECK(objects.count("decoder.layers.1.mlp.router._extra_state/shard_0_1") == 0);
  CHECK(objects["common_state/shard_0_1"] ==
        "[{'ckptmap': {'hf_config': '{\"model_type\": \"minimax_m3\"}', 'hf_layout': 'hub'}}]");
  // linear_qkv/proj x3, dense fc1/fc2, shared fc1/fc2 x2, experts fc1/fc2 x4 x2, common_state
  CHECK(objects.size() == 6 + 2 + 4 + 16 + 1);
}

TEST_CASE("a failed write leaves nothing behind") {
  ScratchDir out("atomic");
  std::vector<DistWriteEntry> plan{DistWriteEntry::tensor("a.weight", DType::BF16, {2, 2}),
                                   DistWriteEntry::tensor("b.weight", DType::F32, {3})};
  {
    auto writer = TorchDistWriter::create(out / "ckpt", plan);
    REQUIRE(writer);
    std::vector<uint8_t> a(8, 1);
    REQUIRE(!(*writer)->write("a.weight", a));
    CHECK(errorText((*writer)->write("a.weight", a)) == out / "ckpt" + ": tensor 'a.weight' written twice");
    CHECK(errorText((*writer)->write("b.weight", a)) ==
          out / "ckpt" + ": tensor 'b.weight' F32 [3] needs 12 bytes, got 8");
    CHECK(errorText((*writer)->finish()) == out / "ckpt" + ": 1 tensor(s) never written, first 'b.weight'");
  }
  CHECK(filesIn(out.path()).empty());
  // the destination must not exist
  llvm::sys::fs::create_directory(out / "taken");
  auto writer = TorchDistWriter::create(out / "taken", plan);
  CHECK(errorText(writer) == out / "taken" + ": already exists; use --force to replace it");
}

TEST_CASE("chunked writes tile the tensor") {
  ScratchDir out("chunked");
  DistWriteEntry e = DistWriteEntry::tensor("x.weight", DType::I16, {4, 6});
  e.chunks = {Box{{0, 0}, {4, 2}}, Box{{0, 2}, {4, 4}}};
  e.chunkRanks = {1, 0};
  TorchDistWriteOptions options;
  options.ranks = 2;
  auto writer = TorchDistWriter::create(out / "td", {e}, options);
  REQUIRE(writer);
  std::vector<uint8_t> bytes(48);
  for (size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = uint8_t(i * 7 + 3);
  REQUIRE(!(*writer)->write("x.weight", bytes));
  REQUIRE(!(*writer)->finish());
  auto back = TorchDistSource::open(out / "td");
  REQUIRE_MESSAGE(back, errorText(back.takeError()));
  auto got = readAll(**back);
  CHECK(got["x.weight"].bytes == bytes);
  CHECK((*back)->index().entries[0].chunks[0].piece.file == "__1_0.distcp");

  DistWriteEntry bad = DistWriteEntry::tensor("y.weight", DType::I16, {4, 6});
  bad.chunks = {Box{{0, 0}, {4, 3}}, Box{{0, 2}, {4, 4}}};
  auto refused = TorchDistWriter::create(out / "td2", {bad});
  CHECK(errorText(refused) == out / "td2" +
                                  ": tensor 'y.weight' [4, 6]: chunk offsets [0, 0] sizes [4, 3] overlaps chunk "
                                  "offsets [0, 2] sizes [4, 4]");
}
