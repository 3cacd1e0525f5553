// torch_dist reading: every fixture read into whole tensors and compared bit for bit with
// global.safetensors (what Megatron-Core itself loaded from that directory), and the errors
// for damaged directories.
#include "TestSupport.h"

#include "runtime/mcore/Format.h"
#include "runtime/mcore/TorchDist.h"

#include "llvm/Support/FileSystem.h"

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

TEST_CASE(".metadata: parse then encode gives Megatron-Core's bytes back") {
  for (const char *dir : {"minimax_m3_text/tp1", "minimax_m3_text/tp2_ep2", "deepseek_v3/tp1", "deepseek_v3/tp2_ep2"}) {
    INFO(dir);
    std::vector<uint8_t> bytes = readFile(fixture(std::string(dir) + "/torch_dist/.metadata"));
    auto index = parseDistMetadata(bytes, "x");
    REQUIRE_MESSAGE(index, errorText(index.takeError()));
    CHECK(encodeDistMetadata(*index) == bytes);
  }
}

namespace {

/// A copy of a fixture's torch_dist directory whose .metadata is rewritten by `edit`.
void withEditedMetadata(const ScratchDir &dir, const std::string &from, void (*edit)(TorchDistIndex &)) {
  copyTree(fixture(from), dir / "td");
  auto index = parseDistMetadata(readFile(dir / "td/.metadata"), "x");
  REQUIRE(index);
  edit(*index);
  writeFile(dir / "td/.metadata", encodeDistMetadata(*index));
}

DistEntry &entry(TorchDistIndex &index, const std::string &key) {
  for (DistEntry &e : index.entries)
    if (e.key == key)
      return e;
  FAIL("no " << key);
  return index.entries.front();
}

std::string readError(const std::string &dir, const std::string &key) {
  auto src = TorchDistSource::open(dir);
  REQUIRE_MESSAGE(src, errorText(src.takeError()));
  auto bytes = (*src)->read(*(*src)->find(key));
  return errorText(bytes);
}

} // namespace

TEST_CASE("torch_dist: chunk overlap and gap are named") {
  ScratchDir overlap("td_overlap");
  withEditedMetadata(overlap, "minimax_m3_text/tp2_ep2/torch_dist", [](TorchDistIndex &index) {
    entry(index, "embedding.word_embeddings.weight").chunks[1].box.offsets = {200, 0};
  });
  CHECK(errorText(TorchDistSource::open(overlap / "td")) ==
        overlap / "td/.metadata" +
            ": tensor 'embedding.word_embeddings.weight' [512, 64]: chunk offsets [0, 0] sizes [256, 64] overlaps "
            "chunk offsets [200, 0] sizes [256, 64]");

  ScratchDir gap("td_gap");
  withEditedMetadata(gap, "minimax_m3_text/tp2_ep2/torch_dist", [](TorchDistIndex &index) {
    entry(index, "decoder.layers.1.mlp.experts.experts.linear_fc2.weight").chunks[3].box.sizes = {1, 64, 8};
  });
  CHECK(errorText(TorchDistSource::open(gap / "td")) ==
        gap / "td/.metadata" +
            ": tensor 'decoder.layers.1.mlp.experts.experts.linear_fc2.weight' [4, 64, 32]: no chunk covers the "
            "block at offsets [1, 0, 24] sizes [1, 64, 8]");

  ScratchDir outside("td_outside");
  withEditedMetadata(outside, "deepseek_v3/tp1/torch_dist", [](TorchDistIndex &index) {
    entry(index, "output_layer.weight").chunks[0].box.sizes = {513, 64};
  });
  CHECK(errorText(TorchDistSource::open(outside / "td")) ==
        outside / "td/.metadata" +
            ": tensor 'output_layer.weight' [512, 64]: chunk offsets [0, 0] sizes [513, 64] lies outside the tensor");
}

TEST_CASE("torch_dist: missing, truncated and inconsistent pieces") {
  ScratchDir missing("td_missing");
  copyTree(fixture("deepseek_v3/tp2_ep2/torch_dist"), missing / "td");
  llvm::sys::fs::remove(missing / "td/__3_0.distcp");
  CHECK(errorText(TorchDistSource::open(missing / "td")) ==
        missing / "td/__3_0.distcp" + ": missing; " + missing / "td/.metadata" +
            " stores 'decoder.layers.1.mlp.experts.experts.linear_fc1.weight' in it");

  ScratchDir truncated("td_truncated");
  copyTree(fixture("minimax_m3_text/tp1/torch_dist"), truncated / "td");
  std::vector<uint8_t> data = readFile(truncated / "td/__0_0.distcp");
  data.resize(data.size() - 100);
  writeFile(truncated / "td/__0_0.distcp", data);
  CHECK(errorText(TorchDistSource::open(truncated / "td")) ==
        truncated / "td/__0_0.distcp" +
            ": piece of 'output_layer.weight' at bytes [428666, 495779) runs past the end of the file (495679 "
            "bytes; truncated?)");

  // A piece cut short inside the file: its zip has lost its end records.
  ScratchDir cut("td_cut");
  withEditedMetadata(cut, "minimax_m3_text/tp1/torch_dist",
                     [](TorchDistIndex &index) { entry(index, "output_layer.weight").chunks[0].piece.length -= 10; });
  CHECK(readError(cut / "td", "output_layer.weight") ==
        cut / "td/__0_0.distcp" +
            " bytes [428666, 495769): not a valid zip archive: no end-of-central-directory record (truncated?)");

  // .metadata and the piece disagree on the dtype.
  ScratchDir dtype("td_dtype");
  withEditedMetadata(dtype, "minimax_m3_text/tp1/torch_dist",
                     [](TorchDistIndex &index) { entry(index, "output_layer.weight").dtype = DType::F16; });
  CHECK(readError(dtype / "td", "output_layer.weight") ==
        dtype / "td/__0_0.distcp" +
            " bytes [428666, 495779) ('output_layer.weight' chunk at [0, 0]): piece holds BF16, .metadata says F16");

  // A flipped data byte fails the piece's CRC.
  ScratchDir flipped("td_flipped");
  copyTree(fixture("minimax_m3_text/tp1/torch_dist"), flipped / "td");
  data = readFile(flipped / "td/__0_0.distcp");
  data[428666 + 1000] ^= 0x40;
  writeFile(flipped / "td/__0_0.distcp", data);
  CHECK(readError(flipped / "td", "output_layer.weight")
            .rfind(flipped / "td/__0_0.distcp" + " bytes [428666, 495779): entry 'archive/data/0' is corrupt: CRC-32 ", 0) == 0);
}

TEST_CASE("torch_dist: a damaged or hostile .metadata") {
  ScratchDir corrupt("td_corrupt_metadata");
  copyTree(fixture("minimax_m3_text/tp1/torch_dist"), corrupt / "td");
  std::vector<uint8_t> meta = readFile(corrupt / "td/.metadata");
  meta.resize(1000);
  writeFile(corrupt / "td/.metadata", meta);
  CHECK(errorText(TorchDistSource::open(corrupt / "td")) ==
        corrupt / "td/.metadata" + ": pickle offset 2: frame of 18972 bytes runs past the end");

  const char evilBytes[] = "\x80\x02" "c__builtin__\neval\n(X\x0a\x00\x00\x00" "print(666)tR.";
  std::string evil(evilBytes, sizeof evilBytes - 1);
  writeFile(corrupt / "td/.metadata", std::vector<uint8_t>(evil.begin(), evil.end()));
  CHECK(errorText(TorchDistSource::open(corrupt / "td")) ==
        corrupt / "td/.metadata" +
            ": pickle offset 2: global '__builtin__.eval' is not allowed (only the classes and functions of torch "
            "checkpoints are)");

  std::string notMetadata("\x80\x02]q\x00Na.", 8);
  writeFile(corrupt / "td/.metadata", std::vector<uint8_t>(notMetadata.begin(), notMetadata.end()));
  CHECK(errorText(TorchDistSource::open(corrupt / "td")) ==
        corrupt / "td/.metadata" + ": not a torch.distributed.checkpoint Metadata object: [None]");
}
