// The built command line on one fixture: run, check and diff, and their exit codes.

#include "E2e.h"

#include "kernels/Cuda.h"

#include <csignal>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace ckptmap;
using namespace ckptmap::e2e;

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

  // diff exits 1 when the checkpoints differ, 2 when it cannot compare them.
  CHECK(runCli("diff " + q(hub) + " " + q(tmp / "mcore"), log) == 1);
  CHECK(runCli("diff --headers-only " + q(inmemFile(family)) + " " + q(hub), log) == 1);
  CHECK(runCli("diff " + q(hub) + " " + q(tmp / "absent"), log) == 2);
  CHECK(readFile(log) == "ckptmap: error: '" + tmp / "absent" + "' does not exist\n");
  CHECK(runCli("diff " + q(hub), log) == 2);

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

TEST_CASE("command line: every command answers --help with its usage and options") {
  REQUIRE_MESSAGE(fs::exists(ckptmapBinary()), "build the ckptmap binary first");
  TempDir tmp;
  const std::string log = tmp / "log";
  CHECK(runCli("--help", log) == 0);
  std::string overview = readFile(log);
  const std::vector<std::string> commands = {"inspect", "diff",     "check",   "compile", "run",
                                             "quantize", "dequantize", "explain", "ops"};
  for (const std::string &command : commands) {
    INFO(command);
    CHECK(overview.find("\n  " + command + " ") != std::string::npos);
    CHECK(runCli(command + " --help", log) == 0);
    std::string help = readFile(log);
    CHECK(help.rfind("usage: ckptmap " + command + " ", 0) == 0);
    CHECK(help.find("  -h, --help") != std::string::npos);
  }
  // The compiling commands list the rulebook options.
  for (const char *command : {"check", "compile", "run", "explain"}) {
    INFO(command);
    CHECK(runCli(std::string(command) + " --help", log) == 0);
    std::string help = readFile(log);
    for (const char *option : {"--from CONV", "--to CONV", "-D, --define NAME=VALUE", "--variant CHOICE=NAME"})
      CHECK(help.find(option) != std::string::npos);
  }
  CHECK(runCli("chekc --help", log) == 2);
  CHECK(readFile(log) == "ckptmap: unknown command 'chekc'; did you mean 'check'?\nrun 'ckptmap --help' for the list of commands\n");
}

TEST_CASE("command line: compile -o writes a plan that run --plan executes") {
  REQUIRE_MESSAGE(fs::exists(ckptmapBinary()), "build the ckptmap binary first");
  TempDir tmp;
  const std::string hub = hubDir("qwen3_5_moe");
  const std::string log = tmp / "log";
  CHECK(runCli("compile -q --from hf --to mcore " + q(hub) + " -o " + q(tmp / "plan.json"), log) == 0);
  CHECK(readFile(log) == "");
  json plan = readJson(tmp / "plan.json");
  CHECK(plan["version"] == 1);
  CHECK(plan["from"] == "hf");
  CHECK(plan["to"] == "mcore");
  CHECK(plan["family"] == "qwen3_5_moe");
  CHECK_FALSE(fs::exists(tmp / "plan.json.tmp"));

  // The plan gives what compiling anew gives, byte for byte, with a JSON summary.
  CHECK(runCli("run --json --plan " + q(tmp / "plan.json") + " " + q(hub) + " " + q(tmp / "from-plan"), log) == 0);
  json summary = readJson(log);
  CHECK(summary["output"] == tmp / "from-plan");
  CHECK(summary["outputs"]["tensors"] == plan["outputs"].size());
  CHECK(summary["bytes_written"].get<uint64_t>() > 0);
  CHECK(summary["from"] == "hf");
  CHECK(runCli("run -q --from hf --to mcore " + q(hub) + " " + q(tmp / "direct"), log) == 0);
  CHECK(runCli("diff " + q(tmp / "from-plan") + " " + q(tmp / "direct"), log) == 0);

  // A plan is checked against the input it runs on.
  CHECK(runCli("run -q --plan " + q(tmp / "plan.json") + " " + q(hubDir("deepseek_v3")) + " " + q(tmp / "wrong"), log) == 1);
  CHECK(readFile(log).find("ckptmap: error: the plan reads '") == 0);
  CHECK_FALSE(fs::exists(tmp / "wrong"));
}

TEST_CASE("command line: inspect --json") {
  REQUIRE_MESSAGE(fs::exists(ckptmapBinary()), "build the ckptmap binary first");
  TempDir tmp;
  const std::string log = tmp / "log";
  CHECK(runCli("inspect --json " + q(hubDir("qwen3_5_moe")), log) == 0);
  json j = readJson(log);
  CHECK(j["count"] == 162);
  CHECK(j["tensors"].size() == 162);
  bool found = false;
  for (const json &t : j["tensors"])
    if (t["name"] == "lm_head.weight") {
      found = true;
      CHECK(t["dtype"] == "BF16");
      CHECK(t["shape"] == json::array({512, 64}));
      CHECK(t["bytes"] == 512 * 64 * 2);
    }
  CHECK(found);
}

TEST_CASE("command line: explain shows both ways, whole rules and the tensors they make") {
  REQUIRE_MESSAGE(fs::exists(ckptmapBinary()), "build the ckptmap binary first");
  TempDir tmp;
  const std::string hub = hubDir("qwen3_5_moe");
  const std::string log = tmp / "log";
  CHECK(runCli("explain --from hf --to mcore " + q(hub) + " model.language_model.layers.3.self_attn.q_proj.weight", log) == 0);
  std::string out = readFile(log);
  // The rule spans three lines; all of them are shown.
  CHECK(out.find("    | \"self_attention.linear_qkv.weight\" =\n"
                 "    |     qkv(\"{attn_hf}q_proj.weight\", \"{attn_hf}k_proj.weight\", \"{attn_hf}v_proj.weight\",\n"
                 "    |         heads: heads, groups: groups, gate: attn_gate)\n") != std::string::npos);
  CHECK(out.find("hf -> mcore: qkv\n") == 0);
  CHECK(out.find("  -> decoder.layers.3.self_attention.linear_qkv.weight  BF16 [192, 64]\n") != std::string::npos);
  // The way back splits the fused tensor into the three it came from.
  size_t back = out.find("mcore -> hf: split_qkv\n");
  REQUIRE(back != std::string::npos);
  for (const char *result : {"  -> model.language_model.layers.3.self_attn.q_proj.weight  BF16 [128, 64]\n",
                             "  -> model.language_model.layers.3.self_attn.k_proj.weight  BF16 [32, 64]\n",
                             "  -> model.language_model.layers.3.self_attn.v_proj.weight  BF16 [32, 64]\n"})
    CHECK(out.find(result, back) != std::string::npos);

  // A dropped tensor: why, and how the way back restores it.
  CHECK(runCli("explain --from hf --to mcore " + q(hub) + " model.visual.blocks.0.attn.qkv.weight", log) == 0);
  CHECK(readFile(log) ==
        "hf -> mcore: dropped: MCore holds the text model only; the vision tower comes from --hf-base\n"
        "  rule " + rulebookFile("qwen3_5_moe") + ":130:3\n"
        "    | drop hf \"model.visual.{*rest}\" because \"MCore holds the text model only; the vision tower comes from --hf-base\"\n"
        "    |   restore from base\n"
        "mcore -> hf: copy from --hf-base\n"
        "  rule " + rulebookFile("qwen3_5_moe") + ":130:3\n"
        "    | drop hf \"model.visual.{*rest}\" because \"MCore holds the text model only; the vision tower comes from --hf-base\"\n"
        "    |   restore from base\n"
        "    %0 = load 'model.visual.blocks.0.attn.qkv.weight' from --hf-base    : BF16 [96, 32]\n"
        "    store 'model.visual.blocks.0.attn.qkv.weight' %0\n"
        "  -> model.visual.blocks.0.attn.qkv.weight  BF16 [96, 32]\n");

  // A name the checkpoint does not have.
  CHECK(runCli("explain --from hf --to mcore " + q(hub) + " model.language_model.layers.3.self_attn.q_prj.weight", log) == 1);
  CHECK(readFile(log) == "ckptmap: error: 'model.language_model.layers.3.self_attn.q_prj.weight' is not a tensor of " + hub +
                             "; did you mean 'model.language_model.layers.3.self_attn.q_proj.weight'?\n");
}

TEST_CASE("command line: check --json reports failures as JSON too") {
  REQUIRE_MESSAGE(fs::exists(ckptmapBinary()), "build the ckptmap binary first");
  TempDir tmp;
  const std::string hub = hubDir("qwen3_5_moe");
  const std::string out = tmp / "out", err = tmp / "err";
  auto check = [&](const std::string &args) {
    std::string command = "'" + ckptmapBinary() + "' check --json " + args + " >'" + out + "' 2>'" + err + "'";
    int status = std::system(command.c_str());
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
  };
  // A misspelt --variant is an error, not ignored.
  CHECK(check("--from hf --to mcore --variant nroms=fused " + q(hub)) == 1);
  json j = readJson(out);
  CHECK(j["ok"] == false);
  REQUIRE(j["diagnostics"].size() == 1);
  CHECK(j["diagnostics"][0]["severity"] == "error");
  CHECK(j["diagnostics"][0]["message"] == "--variant nroms=fused: rulebook 'qwen3_5_moe' has no choice 'nroms'");
  CHECK(j["diagnostics"][0]["notes"][0]["message"] == "did you mean 'norms'?");
  CHECK(readFile(err).find("error: --variant nroms=fused") != std::string::npos);
  // An input that does not open.
  CHECK(check("--from hf --to mcore " + q(tmp / "missing")) == 1);
  j = readJson(out);
  CHECK(j["ok"] == false);
  CHECK(j["error"].get<std::string>().find(tmp / "missing") != std::string::npos);
  // Success has the same shape, with the plan's summary.
  CHECK(check("--from hf --to mcore " + q(hub)) == 0);
  j = readJson(out);
  CHECK(j["ok"] == true);
  CHECK(j["diagnostics"].is_array());
}

TEST_CASE("command line: the rulebook of docs/authoring.md converts its toy family there and back") {
  REQUIRE_MESSAGE(fs::exists(ckptmapBinary()), "build the ckptmap binary first");
  TempDir tmp;
  const std::string rules = q(sourceDir() + "/docs/examples/toy_llama.rules");
  const std::string toy = hubDir("toy_llama");
  const std::string log = tmp / "log";
  CHECK(runCli("check " + rules + " --from hf --to mcore " + q(toy), log) == 0);
  CHECK(readFile(log).find("  by rule: 'model.rotary_emb.inv_freq' comes back from --hf-base") != std::string::npos);
  CHECK(runCli("run -q " + rules + " --from hf --to mcore " + q(toy) + " " + q(tmp / "mcore"), log) == 0);
  // The MTP layer HF numbers 2 is MCore's MTP layer 0.
  CHECK(runCli("inspect " + q(tmp / "mcore"), log) == 0);
  CHECK(readFile(log).find("mtp.layers.0.eh_proj.weight ") != std::string::npos);
  CHECK(runCli("run -q " + rules + " " + q(tmp / "mcore") + " " + q(tmp / "hf") + " --hf-base " + q(toy), log) == 0);
  CHECK(runCli("diff " + q(toy) + " " + q(tmp / "hf"), log) == 0);
}

TEST_CASE("command line: a reader that stops early is no error") {
  REQUIRE_MESSAGE(fs::exists(ckptmapBinary()), "build the ckptmap binary first");
  TempDir tmp;
  // stdout is a pipe whose reader is gone before the first write, as `| head` leaves it once
  // it has read enough; SIGPIPE has its default action, as in a shell.
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  ::close(fds[0]);
  const std::string err = tmp / "stderr";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  std::string binary = ckptmapBinary(), command = "inspect", ckpt = hubDir("deepseek_v3");
  char *argv[] = {binary.data(), command.data(), ckpt.data(), nullptr};
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, binary.c_str(), &actions, &attr, argv, environ) == 0);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(fds[1]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK_FALSE(WIFSIGNALED(status));
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(readFile(err) == "");
}

TEST_CASE("command line: the summary of a run that keeps every name") {
  TempDir tmp;
  const std::string log = tmp / "log";
  // Quantizing merges the steps of parts quantized together (q/k/v, gate/up); the summary still
  // counts rule instances, and names no rulebook.
  REQUIRE(runCli("quantize --no-progress --format fp8 " + q(hubDir("deepseek_v3")) + " " + q(tmp / "q"), log) == 0);
  std::string text = readFile(log);
  CHECK(startsWith(text, "hf, every name kept: 99 tensors read, 99 written ("));
  CHECK(text.find("\n  steps: same name 99\n  quantization: 68 weights quantized, 0 dequantized, 0 renamed; 8 "
                  "matrices left unquantized\n") != std::string::npos);
}
