// The built command line on one fixture: run, check and diff, and their exit codes.

#include "E2e.h"

#include "kernels/Cuda.h"

#include <sys/wait.h>

using namespace ckptmap;
using namespace ckptmap::e2e;

namespace {

/// Runs the ckptmap binary with `args` (shell words), output to `log`; its exit code.
int runCli(const std::string &args, const std::string &log) {
  std::string command = "'" + ckptmapBinary() + "' " + args + " >'" + log + "' 2>&1";
  int status = std::system(command.c_str());
  REQUIRE(status != -1);
  REQUIRE(WIFEXITED(status));
  return WEXITSTATUS(status);
}

std::string q(const std::string &path) { return "'" + path + "'"; }

} // namespace

TEST_CASE("command line: run, check and diff exit codes") {
  REQUIRE_MESSAGE(fs::exists(ckptmapBinary()), "build the ckptmap binary first");
  TempDir tmp;
  const std::string family = "qwen3_5_moe";
  const std::string hub = hubDir(family);
  const std::string log = tmp / "log";

  // check: the rulebook is found by the config's model_type.
  CHECK(runCli("check --from hf --to mcore " + q(hub), log) == 0);
  CHECK(readFile(log).find("ok\n") != std::string::npos);
  CHECK(runCli("check --json " + family + " --from hf --to hf-mem " + q(hub), log) == 0);
  json j = readJson(log);
  CHECK(j["ok"] == true);
  CHECK(j["round_trip"]["mismatches"].empty());
  CHECK(j["outputs"]["tensors"] == 93);

  // run there and back; the way back takes direction and rulebook from ckptmap.json.
  CHECK(runCli("run -q --from hf --to mcore " + q(hub) + " " + q(tmp / "mcore"), log) == 0);
  CHECK(runCli("run -q " + q(tmp / "mcore") + " " + q(tmp / "hf") + " --hf-base " + q(hub), log) == 0);
  CHECK(runCli("diff " + q(hub) + " " + q(tmp / "hf"), log) == 0);
  CHECK(runCli("check " + q(tmp / "mcore") + " --hf-base " + q(hub), log) == 0);

  // diff exits 1 when the checkpoints differ.
  CHECK(runCli("diff " + q(hub) + " " + q(tmp / "mcore"), log) == 1);
  CHECK(runCli("diff --headers-only " + q(inmemFile(family)) + " " + q(hub), log) == 1);

  // run refuses an existing output, and fails without --from/--to on a plain HF checkpoint.
  CHECK(runCli("run -q --from hf --to mcore " + q(hub) + " " + q(tmp / "mcore"), log) == 1);
  CHECK(runCli("run -q " + q(hub) + " " + q(tmp / "other"), log) == 1);
  CHECK(readFile(log).find("--from and --to are required") != std::string::npos);
  CHECK_FALSE(fs::exists(tmp / "other"));

  // check fails (exit 1) on a config that disagrees with the tensors.
  fs::create_directories(tmp / "bad");
  for (const std::string &f : listFiles(hub))
    if (f != "config.json")
      fs::create_symlink(hub + "/" + f, tmp / ("bad/" + f));
  json config = readJson(hub + "/config.json");
  config["text_config"]["num_key_value_heads"] = 1;
  writeFile(tmp / "bad/config.json", config.dump(2));
  CHECK(runCli("check --from hf --to mcore " + q(tmp / "bad"), log) == 1);
  CHECK(runCli("run -q --from hf --to mcore " + q(tmp / "bad") + " " + q(tmp / "bad-out"), log) == 1);
  CHECK_FALSE(fs::exists(tmp / "bad-out"));
}

TEST_CASE("command line: --device, and dequantize in place") {
  REQUIRE_MESSAGE(fs::exists(ckptmapBinary()), "build the ckptmap binary first");
  TempDir tmp;
  const std::string log = tmp / "log";
  const std::string fp8 = hubDir("deepseek_v3_fp8");

  // dequantize keeps every name, drops the scales and the quantization config.
  REQUIRE(runCli("dequantize -q " + q(fp8) + " " + q(tmp / "bf16"), log) == 0);
  const auto in = tensorsOf(fp8), out = tensorsOf(tmp / "bf16");
  size_t weights = 0;
  for (const auto &[name, meta] : in) {
    if (endsWith(name, ".weight_scale_inv")) {
      CHECK(out.count(name) == 0);
      const auto w = out.find(name.substr(0, name.size() - 10));
      REQUIRE(w != out.end());
      CHECK(w->second.dtype == DType::BF16);
      CHECK(w->second.shape == in.at(w->first).shape);
      ++weights;
    } else if (!out.count(name + "_scale_inv")) {
      CHECK(out.count(name) == 1);
    }
  }
  CHECK(weights == 48);
  CHECK(readJson(tmp / "bf16/config.json").count("quantization_config") == 0);

  // --device auto runs on the CPU when there is no GPU, with the CPU's bytes.
  REQUIRE(runCli("dequantize -q --device auto " + q(fp8) + " " + q(tmp / "auto"), log) == 0);
  CHECK(diffPaths(tmp / "bf16", tmp / "auto").same());
  REQUIRE(runCli("dequantize --json --device cpu " + q(fp8) + " " + q(tmp / "cpu"), log) == 0);
  CHECK(readJson(log)["device"]["backend"] == "cpu");

  // --device cuda never silently means the CPU.
  if (!cuda::cudaAvailable()) {
    CHECK(runCli("dequantize -q --device cuda " + q(fp8) + " " + q(tmp / "cuda"), log) == 1);
#ifdef CKPTMAP_HAVE_CUDA
    CHECK(readFile(log) == "ckptmap: error: --device cuda: no CUDA device\n");
#else
    CHECK(readFile(log) == "ckptmap: error: --device cuda: ckptmap was built without CUDA\n");
#endif
    CHECK_FALSE(fs::exists(tmp / "cuda"));
  }
  CHECK(runCli("dequantize -q --device tpu " + q(fp8) + " " + q(tmp / "tpu"), log) == 1);
  CHECK(readFile(log) == "ckptmap: error: --device expects cpu, cuda or auto, got 'tpu'\n");
}
