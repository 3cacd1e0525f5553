// Real conversions of every fixture: hf -> mcore -> hf gives the hub checkpoint back byte for
// byte as a loadable HF directory; hf -> hf-mem gives transformers' own in-memory state dict;
// hf-mem -> hf gives the hub checkpoint back except the MTP layers transformers does not hold.

#include "E2e.h"

using namespace ckptmap;
using namespace ckptmap::e2e;

namespace {

/// Whether `name` is an MTP tensor of `family`'s hub checkpoint.
bool isMtp(const std::string &family, const std::string &name) {
  if (family == "deepseek_v3")
    return startsWith(name, "model.layers.3.");
  if (family == "minimax_m3")
    return false;
  return startsWith(name, "mtp.");
}

/// `dir` is what HF loaders read: shards with an index when there are several (every tensor
/// listed once, every listed file present, total_size right), config files carried unchanged.
void requireValidHf(const std::string &dir, const std::string &hub) {
  CAPTURE(dir);
  for (const char *carried : {"config.json", "generation_config.json"})
    CHECK_MESSAGE(readFile(dir + "/" + carried) == readFile(hub + "/" + carried), carried << " not carried unchanged");

  std::set<std::string> shards;
  for (const std::string &f : listFiles(dir))
    if (endsWith(f, ".safetensors"))
      shards.insert(f);
  REQUIRE_FALSE(shards.empty());
  auto source = openTensors(dir);
  uint64_t total = 0;
  for (const SourceTensor &t : source->tensors())
    total += t.meta.byteSize();

  if (shards.size() == 1) {
    CHECK(*shards.begin() == "model.safetensors");
    CHECK_FALSE(fs::exists(dir + "/model.safetensors.index.json"));
    return;
  }
  std::string indexPath = dir + "/model.safetensors.index.json";
  REQUIRE_MESSAGE(fs::exists(indexPath), "sharded output without an index");
  json index = readJson(indexPath);
  REQUIRE(index.contains("weight_map"));
  CHECK(index["metadata"]["total_size"].get<uint64_t>() == total);
  const json &map = index["weight_map"];
  CHECK(map.size() == source->tensors().size());
  std::set<std::string> referenced;
  for (const SourceTensor &t : source->tensors()) {
    REQUIRE_MESSAGE(map.contains(t.meta.name), t.meta.name << " missing from the index");
    std::string file = map[t.meta.name].get<std::string>();
    CHECK(file == t.file);
    referenced.insert(file);
  }
  CHECK(referenced == shards);
  const std::string n = std::to_string(shards.size());
  for (const std::string &s : shards) {
    // model-0000i-of-0000n.safetensors
    CHECK_MESSAGE(startsWith(s, "model-"), s);
    CHECK_MESSAGE(endsWith(s, "-of-" + std::string(5 - n.size(), '0') + n + ".safetensors"), s);
  }
}

bool sameBytes(const TensorSource &s, const std::string &a, const std::string &b) {
  auto x = requireValue(s.read(*s.find(a)));
  auto y = requireValue(s.read(*s.find(b)));
  return std::equal(x.bytes().begin(), x.bytes().end(), y.bytes().begin(), y.bytes().end());
}

/// DeepSeek's MTP tensors that duplicate a main one but differ from it, sorted.
std::vector<std::string> differingMtpCopies(const std::string &family) {
  if (family != "deepseek_v3")
    return {};
  auto hub = openTensors(hubDir(family));
  std::vector<std::string> out;
  if (!sameBytes(*hub, "model.layers.3.embed_tokens.weight", "model.embed_tokens.weight"))
    out.push_back("model.layers.3.embed_tokens.weight");
  if (!sameBytes(*hub, "model.layers.3.shared_head.head.weight", "lm_head.weight"))
    out.push_back("model.layers.3.shared_head.head.weight");
  return out;
}

ConvertOptions sharded(ConvertOptions o) {
  o.write.maxShardSize = 200'000;
  return o;
}

} // namespace

TEST_CASE("hf -> mcore -> hf is byte-identical and a valid HF checkpoint") {
  for (const std::string &family : families()) {
    CAPTURE(family);
    TempDir tmp;
    ConvertSummary out = convertOk(hubDir(family), tmp / "mcore", sharded(options(family, "hf", "mcore")));
    // DeepSeek's MTP layer holds its own embedding and head, which MCore shares with the main
    // model; the fixture's copies differ from the main ones, so they are kept aside.
    std::vector<std::string> differing = differingMtpCopies(family);
    CHECK(out.exec.stash == differing);
    CHECK(fs::exists(tmp / "mcore/ckptmap-stash") == !differing.empty());
    CHECK(fs::exists(tmp / "mcore/ckptmap.json"));
    json provenance = readJson(tmp / "mcore/ckptmap.json");
    CHECK(provenance["family"] == family);
    CHECK(provenance["from"] == "hf");
    CHECK(provenance["to"] == "mcore");
    CHECK(tensorsOf(tmp / "mcore").size() == out.plan.outputs.size());

    // The way back names the rulebook by family and no variant: the MCore output records them.
    ConvertOptions back;
    back.bind.from = "mcore";
    back.bind.to = "hf";
    back.rulebook = family;
    back.write.maxShardSize = 200'000;
    if (isVl(family))
      back.hfBase = hubDir(family);
    convertOk(tmp / "mcore", tmp / "hf", back);
    E2E_REQUIRE_SAME(hubDir(family), tmp / "hf");
    CHECK(diffPaths(hubDir(family), tmp / "hf").identical == tensorsOf(hubDir(family)).size());
    requireValidHf(tmp / "hf", hubDir(family));
  }
}

TEST_CASE("the way back of a VL model without --hf-base is the text model alone") {
  for (const std::string family : {"qwen3_5_moe", "minimax_m3"}) {
    CAPTURE(family);
    TempDir tmp;
    convertOk(hubDir(family), tmp / "mcore", options(family, "hf", "mcore"));
    convertOk(tmp / "mcore", tmp / "hf", options(family, "mcore", "hf"));
    DiffResult diff = diffPaths(hubDir(family), tmp / "hf");
    CHECK(diff.differences.empty());
    CHECK(diff.onlyInB.empty());
    CHECK(diff.onlyInA.size() == (family == "qwen3_5_moe" ? 21u : 27u));
    for (const std::string &name : diff.onlyInA)
      CHECK_MESSAGE((startsWith(name, "model.visual.") || startsWith(name, "vision_tower.") ||
                     startsWith(name, "multi_modal_projector.") || startsWith(name, "patch_merge_mlp.")),
                    name);
    requireValidHf(tmp / "hf", hubDir(family));
  }
}

TEST_CASE("hf -> hf-mem equals transformers' in-memory state dict, bit for bit") {
  for (const std::string &family : families()) {
    CAPTURE(family);
    TempDir tmp;
    convertOk(hubDir(family), tmp / "mem", options(family, "hf", "hf-mem"));
    E2E_REQUIRE_SAME(inmemFile(family), tmp / "mem");
    CHECK(diffPaths(inmemFile(family), tmp / "mem").identical == tensorsOf(inmemFile(family)).size());
  }
}

TEST_CASE("hf-mem -> hf gives the hub checkpoint back except the MTP layers, bit for bit") {
  for (const std::string &family : families()) {
    CAPTURE(family);
    TempDir tmp;
    // transformers' own state dict, with the hub config beside it.
    std::string mem = stageSingleFile(tmp, "inmem", inmemFile(family), hubDir(family));
    ConvertOptions o = options(family, "hf-mem", "hf");
    // In memory the HF layouts look the same (fused experts, dense MLPs under mlp.); the
    // fixture was written by save_pretrained.
    if (family == "minimax_m3" || family == "qwen3_5_moe")
      o.bind.layout = "saved";
    o.write.maxShardSize = 200'000;
    convertOk(mem, tmp / "hf", o);

    DiffResult diff = diffPaths(hubDir(family), tmp / "hf");
    CHECK_MESSAGE(diff.differences.empty(), diffText(diff));
    CHECK_MESSAGE(diff.onlyInB.empty(), diffText(diff));
    size_t mtp = 0;
    for (const auto &[name, meta] : tensorsOf(hubDir(family)))
      mtp += isMtp(family, name);
    CHECK(diff.onlyInA.size() == mtp);
    for (const std::string &name : diff.onlyInA)
      CHECK_MESSAGE(isMtp(family, name), name << " lost on hf-mem -> hf");
    CHECK(diff.identical == tensorsOf(hubDir(family)).size() - mtp);
    requireValidHf(tmp / "hf", hubDir(family));

    // The same from an hf-mem checkpoint this tool wrote: the recorded choices replace the options.
    convertOk(hubDir(family), tmp / "mem2", options(family, "hf", "hf-mem"));
    ConvertOptions back = options(family, "hf-mem", "hf");
    convertOk(tmp / "mem2", tmp / "hf2", back);
    DiffResult again = diffPaths(tmp / "hf", tmp / "hf2");
    CHECK_MESSAGE(again.same(), diffText(again));
  }
}

TEST_CASE("hf-mem -> hf of MiniMax-M3 without variants writes the release's spelling") {
  TempDir tmp;
  std::string mem = stageSingleFile(tmp, "inmem", inmemFile("minimax_m3"), hubDir("minimax_m3"));
  convertOk(mem, tmp / "hf", options("minimax_m3", "hf-mem", "hf"));
  auto out = tensorsOf(tmp / "hf");
  CHECK(out.count("language_model.model.layers.0.mlp.gate_proj.weight"));
  CHECK(out.count("language_model.model.layers.0.mlp.up_proj.weight"));
  CHECK(out.count("language_model.model.layers.0.mlp.down_proj.weight"));
  CHECK(out.count("vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight"));
  CHECK_FALSE(out.count("language_model.model.layers.0.block_sparse_moe.gate_proj.weight"));
  // The release's spelling converts to MCore like save_pretrained's does.
  convertOk(tmp / "hf", tmp / "mcore", options("minimax_m3", "hf", "mcore"));
  TempDir ref;
  convertOk(hubDir("minimax_m3"), ref / "mcore", options("minimax_m3", "hf", "mcore"));
  E2E_REQUIRE_SAME(ref / "mcore", tmp / "mcore");
}
