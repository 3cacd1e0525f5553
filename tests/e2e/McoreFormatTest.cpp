// Megatron-Core's own formats through the command line: checkpoints Megatron-Core wrote
// (torch_dist and legacy, TP1 and TP2/EP2) convert to HF exactly as the state dict it loaded
// (global.safetensors) does; HF -> torch_dist -> HF is byte-identical; ckptmap writes the keys
// Megatron-Core writes; damaged inputs fail with their exact error and leave nothing behind.
#include "E2e.h"

#include "runtime/mcore/TorchDist.h"

using namespace ckptmap;
using namespace ckptmap::e2e;

namespace {

std::string mcoreFixture(const std::string &model, const std::string &rest) {
  return fixture("mcore/" + model + "/" + rest);
}
std::string hfConfigOf(const std::string &model) { return mcoreFixture(model, "hf_config/config.json"); }

const std::vector<std::string> &mcoreModels() {
  static const std::vector<std::string> models = {"minimax_m3_text", "deepseek_v3"};
  return models;
}

/// Every tensor of a checkpoint with its bytes, by name.
std::map<std::string, std::pair<TensorMeta, std::vector<uint8_t>>> contentsOf(const std::string &path) {
  auto source = openTensors(path);
  std::map<std::string, std::pair<TensorMeta, std::vector<uint8_t>>> out;
  for (const SourceTensor &t : source->tensors())
    out[t.meta.name] = {t.meta, bytesOf(*source, t.meta.name)};
  return out;
}

/// The files of two directories, byte for byte (hidden ones included).
void requireSameFiles(const std::string &a, const std::string &b) {
  std::set<std::string> names;
  for (const auto &dir : {a, b})
    for (const auto &entry : fs::directory_iterator(dir))
      if (entry.is_regular_file())
        names.insert(entry.path().filename().string());
  for (const std::string &n : names) {
    CAPTURE(n);
    REQUIRE(fs::exists(a + "/" + n));
    REQUIRE(fs::exists(b + "/" + n));
    CHECK(readFile(a + "/" + n) == readFile(b + "/" + n));
  }
}

} // namespace

TEST_CASE("torch_dist and legacy checkpoints of Megatron-Core convert to HF as the state dict it loaded") {
  REQUIRE_MESSAGE(fs::exists(ckptmapBinary()), "build the ckptmap binary first");
  TempDir tmp;
  const std::string log = tmp / "log";
  for (const std::string &model : mcoreModels())
    for (const char *parallel : {"tp1", "tp2_ep2"}) {
      CAPTURE(model);
      CAPTURE(parallel);
      const std::string base = model + "-" + parallel;
      // What Megatron-Core held in memory, named as the local spec names it.
      REQUIRE(runCli("run -q --from mcore --to hf " + q(mcoreFixture(model, std::string(parallel) + "/global.safetensors")) +
                         " " + q(tmp / (base + "-reference")) + " --hf-config " + q(hfConfigOf(model)),
                     log) == 0);
      for (const char *format : {"torch_dist", "legacy"}) {
        CAPTURE(format);
        const std::string out = tmp / (base + "-" + format);
        // The format is detected, and so is the direction's start: Megatron holds MCore names.
        REQUIRE_MESSAGE(runCli("run --no-progress --to hf " + q(mcoreFixture(model, std::string(parallel) + "/" + format)) +
                                   " " + q(out) + " --hf-config " + q(hfConfigOf(model)),
                               log) == 0,
                        readFile(log));
        std::string summary = readFile(log);
        CHECK(summary.find("mcore -> hf with ") == 0);
        // Legacy files hold each linear's extra state (None), which no HF tensor holds.
        CHECK((summary.find("  not converted: ") != std::string::npos) == (std::string(format) == "legacy"));
        E2E_REQUIRE_SAME(tmp / (base + "-reference"), out);
        CHECK(readFile(out + "/config.json") == readFile(hfConfigOf(model)));
      }
    }
}

TEST_CASE("hf -> torch_dist -> hf is byte-identical, with and without Megatron's iteration layout") {
  for (const std::string &family : families()) {
    CAPTURE(family);
    TempDir tmp;
    ConvertOptions to = options(family, "hf", "mcore");
    to.mcoreFormat.clear(); // the default: torch_dist
    convertOk(hubDir(family), tmp / "mcore", to);
    for (const char *f : {"metadata.json", ".metadata", "__0_0.distcp", "config.json", "ckptmap.json"})
      CHECK_MESSAGE(fs::exists(tmp / "mcore/" + f), f);
    CHECK(readFile(tmp / "mcore/metadata.json") == "{\"sharded_backend\": \"torch_dist\", \"sharded_backend_version\": 1}");
    to.iteration = 7;
    convertOk(hubDir(family), tmp / "saved", to);
    CHECK(readFile(tmp / "saved/latest_checkpointed_iteration.txt") == "7");
    requireSameFiles(tmp / "mcore", tmp / "saved/iter_0000007");

    for (const std::string &in : {tmp / "mcore", tmp / "saved"}) {
      CAPTURE(in);
      // The way back needs no options: direction, rulebook and variants travel in ckptmap.json.
      ConvertOptions back;
      back.write.maxShardSize = 200'000;
      if (isVl(family))
        back.hfBase = hubDir(family);
      const std::string out = in + "-hf";
      auto opened = requireValue(openCheckpoint(in));
      REQUIRE(opened.provenance);
      back.bind.from = opened.provenance->to;
      back.bind.to = opened.provenance->from;
      back.rulebook = opened.provenance->family;
      convertOk(in, out, back);
      E2E_REQUIRE_SAME(hubDir(family), out);
      for (const char *carried : {"config.json", "generation_config.json"})
        CHECK(readFile(out + "/" + carried) == readFile(hubDir(family) + "/" + carried));
    }
  }
}

TEST_CASE("ckptmap writes the torch_dist keys Megatron-Core writes") {
  REQUIRE_MESSAGE(fs::exists(ckptmapBinary()), "build the ckptmap binary first");
  for (const std::string &model : mcoreModels()) {
    CAPTURE(model);
    TempDir tmp;
    const std::string log = tmp / "log";
    const std::string megatron = mcoreFixture(model, "tp2_ep2/torch_dist");
    REQUIRE(runCli("run -q --to hf " + q(megatron) + " " + q(tmp / "hf") + " --hf-config " + q(hfConfigOf(model)),
                   log) == 0);
    // Without the record of where it came from, the spelling comes from the rulebook's
    // mcore_layout torch_dist alone.
    fs::remove(tmp / "hf/ckptmap.json");
    REQUIRE_MESSAGE(runCli("run -q --from hf --to mcore " + q(tmp / "hf") + " " + q(tmp / "td"), log) == 0, readFile(log));
    auto want = contentsOf(megatron), got = contentsOf(tmp / "td");
    CHECK(got.size() == want.size());
    for (const auto &[name, tensor] : want) {
      CAPTURE(name);
      auto it = got.find(name);
      REQUIRE(it != got.end());
      CHECK(it->second.first.dtype == tensor.first.dtype);
      CHECK(it->second.first.shape == tensor.first.shape);
      CHECK(it->second.second == tensor.second);
    }
    // And the bytes entries Megatron-Core expects: every linear's _extra_state, common_state.
    auto keys = [](const std::string &dir) {
      auto source = requireValue(mcore::TorchDistSource::open(dir));
      std::set<std::string> out;
      for (const mcore::DistEntry *e : source->objects())
        out.insert(e->key);
      return out;
    };
    CHECK(keys(tmp / "td") == keys(megatron));
  }
}

TEST_CASE("Megatron formats on the command line: damaged inputs and misplaced options") {
  REQUIRE_MESSAGE(fs::exists(ckptmapBinary()), "build the ckptmap binary first");
  TempDir tmp;
  const std::string log = tmp / "log";
  const std::string model = "minimax_m3_text";
  const std::string td = mcoreFixture(model, "tp2_ep2/torch_dist"), legacy = mcoreFixture(model, "tp2_ep2/legacy");
  auto copyOf = [&](const std::string &from, const std::string &name) {
    fs::copy(from, tmp / name, fs::copy_options::recursive);
    return tmp / name;
  };
  auto fails = [&](const std::string &input, const std::string &expected) {
    CAPTURE(input);
    const std::string out = tmp / "out";
    CHECK(runCli("run -q --to hf " + q(input) + " " + q(out) + " --hf-config " + q(hfConfigOf(model)), log) == 1);
    CHECK(readFile(log) == "ckptmap: error: " + expected + "\n");
    CHECK_FALSE(fs::exists(out));
  };

  std::string truncated = copyOf(td, "truncated");
  fs::resize_file(truncated + "/__1_0.distcp", 10000);
  fails(truncated, truncated + "/__1_0.distcp: piece of 'embedding.word_embeddings.weight' at bytes [0, 34345) runs "
                               "past the end of the file (10000 bytes; truncated?)");

  std::string missing = copyOf(td, "missing");
  fs::remove(missing + "/__1_0.distcp");
  fails(missing, missing + "/__1_0.distcp: missing; " + missing +
                     "/.metadata stores 'embedding.word_embeddings.weight' in it");

  std::string corrupt = copyOf(td, "corrupt");
  fs::resize_file(corrupt + "/.metadata", 300);
  fails(corrupt, corrupt + "/.metadata: pickle offset 2: frame of 25455 bytes runs past the end");

  // A global outside the allow-list is refused, never imported.
  std::string foreign = copyOf(td, "foreign");
  std::string meta = readFile(foreign + "/.metadata");
  const std::string module = "torch.distributed.checkpoint.metadata";
  meta.replace(meta.find(module), module.size(), "subprocess" + std::string(module.size() - 10, '_'));
  writeFile(foreign + "/.metadata", meta);
  fails(foreign, foreign + "/.metadata: pickle offset 62: global 'subprocess___________________________.Metadata' is "
                           "not allowed (only the classes and functions of torch checkpoints are)");

  std::string rankless = copyOf(legacy, "rankless");
  fs::remove_all(rankless + "/iter_0000007/mp_rank_01_001");
  fails(rankless, rankless + "/iter_0000007/mp_rank_01_001: rank directory missing (tensor_model_parallel_size 2, "
                             "pipeline_model_parallel_size 1, expert_model_parallel_size 2, from " +
                      rankless + "/iter_0000007/mp_rank_00_000/model_optim_rng.pt)");

  // No config: the Megatron checkpoint says nothing of the HF model.
  CHECK(runCli("run -q --to hf " + q(td) + " " + q(tmp / "out"), log) == 1);
  CHECK(readFile(log) == "ckptmap: error: no rulebook given, and no config.json whose model_type would name one; pass "
                         "RULEBOOK and --hf-config PATH\n");

  // Options of an MCore output.
  const std::string hub = hubDir("deepseek_v3");
  CHECK(runCli("run -q --from hf --to mcore --mcore-format npz " + q(hub) + " " + q(tmp / "out"), log) == 1);
  CHECK(readFile(log) == "ckptmap: error: --mcore-format expects torch_dist or safetensors, got 'npz'\n");
  CHECK(runCli("run -q --from mcore --to hf --mcore-format torch_dist " + q(td) + " " + q(tmp / "out") +
                   " --hf-config " + q(hfConfigOf(model)),
               log) == 1);
  CHECK(readFile(log) == "ckptmap: error: --mcore-format applies to an MCore output (--to mcore)\n");
  CHECK(runCli("run -q --from hf --to mcore --mcore-format safetensors --iteration 3 " + q(hub) + " " + q(tmp / "out"),
               log) == 1);
  CHECK(readFile(log) == "ckptmap: error: --iteration applies to a torch_dist output, not --mcore-format safetensors\n");
  CHECK_FALSE(fs::exists(tmp / "out"));
}
