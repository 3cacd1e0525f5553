// A catalogue of bad inputs, each run through the built command line: the exact error it
// prints, a nonzero exit, and nothing left behind (no output directory, no temporary one).
// Then runs cut short by a signal or a full disk, and a rerun after them.
#include "E2e.h"

#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <functional>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace ckptmap::e2e {

namespace {

/// How a run of the command line ended.
struct CliRun {
  int status = -1; ///< the exit code, or 128 + the signal that ended it
  std::string err;
};

/// How the child runs.
struct ChildLimits {
  rlim_t fileSize = 0;  ///< > 0: RLIMIT_FSIZE, as `ulimit -f` sets it
  bool nobody = false;  ///< as user nobody, when the tests run as root
};

/// Starts ckptmap with `args` (no shell), stdout to `dir`/stdout, stderr to `dir`/stderr.
pid_t startCli(const std::vector<std::string> &args, const std::string &dir, ChildLimits limits = {}) {
  std::string binary = ckptmapBinary(), out = dir + "/stdout", err = dir + "/stderr";
  std::vector<char *> argv{binary.data()};
  for (const std::string &a : args)
    argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (o < 0 || e < 0 || ::dup2(o, 1) < 0 || ::dup2(e, 2) < 0)
      ::_exit(125);
    if (limits.fileSize) {
      struct rlimit limit {limits.fileSize, limits.fileSize};
      ::setrlimit(RLIMIT_FSIZE, &limit);
    }
    if (limits.nobody && ::geteuid() == 0 && ::setuid(65534) != 0)
      ::_exit(125);
    // A test started in the background inherits ignored SIGINT/SIGHUP: give the run the
    // dispositions a terminal would.
    for (int signo : {SIGINT, SIGTERM, SIGHUP})
      ::signal(signo, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(binary.c_str(), argv.data());
    ::_exit(126);
  }
  return pid;
}

CliRun finishCli(pid_t pid, const std::string &dir) {
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CliRun run;
  run.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  run.err = readFile(dir + "/stderr");
  return run;
}

CliRun runCli(const std::vector<std::string> &args, const std::string &dir, ChildLimits limits = {}) {
  return finishCli(startCli(args, dir, limits), dir);
}

/// Entries of `dir` that a writer of `target` leaves while it works (".OUT.ckptmap-tmp.PID").
std::vector<std::string> tempDirsOf(const std::string &target) {
  std::vector<std::string> out;
  std::string prefix = "." + fs::path(target).filename().string() + ".ckptmap-tmp.";
  for (const auto &e : fs::directory_iterator(fs::path(target).parent_path()))
    if (startsWith(e.path().filename().string(), prefix))
      out.push_back(e.path().string());
  return out;
}

/// A safetensors file's header and data section, to edit.
struct Shard {
  json header;
  std::string data;

  static Shard read(const std::string &path) {
    std::string bytes = readFile(path);
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    return Shard{json::parse(bytes.substr(8, n)), bytes.substr(8 + n)};
  }
  std::string bytes(const std::string &headerText) const {
    uint64_t n = headerText.size();
    return std::string(reinterpret_cast<const char *>(&n), 8) + headerText + data;
  }
  std::string bytes() const { return bytes(header.dump()); }
};

/// One bad input: `make` builds it in the case's directory and returns the command line's
/// arguments; `expected` is what stderr must say, `{W}` standing for the case's directory.
struct BadInput {
  std::string what;
  std::function<std::vector<std::string>(const std::string &w)> make;
  std::string expected;
  int status = 1;
  bool outputExisted = false; ///< `make` made {W}/out (with a file "marker"), which must stay
  bool asNobody = false;      ///< run as user nobody when the tests run as root, who writes anywhere
};

const std::string kShard4 = "model-00004-of-00004.safetensors";

/// The DeepSeek-V3 hub fixture in `dir` as links to its files, so a case can replace one.
std::string stageHub(const std::string &dir, const std::string &family = "deepseek_v3") {
  std::string in = dir + "/in";
  fs::create_directories(in);
  for (const std::string &f : listFiles(hubDir(family)))
    fs::create_symlink(hubDir(family) + "/" + f, in + "/" + f);
  return in;
}

void replace(const std::string &path, const std::string &bytes) {
  fs::remove(path);
  writeFile(path, bytes);
}

/// Overwrites bytes of one tensor of a staged hub (its shard becomes a file of its own).
void patchTensor(const std::string &hub, const std::string &tensor, size_t offset, const std::string &bytes) {
  json index = readJson(hub + "/model.safetensors.index.json");
  std::string path = hub + "/" + index["weight_map"][tensor].get<std::string>();
  std::string file = readFile(path);
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  json header = json::parse(file.substr(8, n));
  size_t at = 8 + n + header[tensor]["data_offsets"][0].get<size_t>() + offset;
  REQUIRE(at + bytes.size() <= 8 + n + header[tensor]["data_offsets"][1].get<size_t>());
  file.replace(at, bytes.size(), bytes);
  replace(path, file);
}

/// The hub with shard 4's header changed by `edit`, converted hf -> mcore into {W}/out.
BadInput headerCase(std::string what, std::function<void(json &)> edit, std::string expected) {
  return {std::move(what),
          [edit](const std::string &w) {
            std::string in = stageHub(w);
            Shard s = Shard::read(in + "/" + kShard4);
            edit(s.header);
            replace(in + "/" + kShard4, s.bytes());
            return std::vector<std::string>{"run", "-q", "--from", "hf", "--to", "mcore", in, w + "/out"};
          },
          std::move(expected)};
}

/// The hub with shard 4 replaced by `bytes(shard 4)`.
BadInput shardCase(std::string what, std::function<std::string(const Shard &)> bytes, std::string expected) {
  return {std::move(what),
          [bytes](const std::string &w) {
            std::string in = stageHub(w);
            replace(in + "/" + kShard4, bytes(Shard::read(in + "/" + kShard4)));
            return std::vector<std::string>{"run", "-q", "--from", "hf", "--to", "mcore", in, w + "/out"};
          },
          std::move(expected)};
}

/// The hub with file `name` replaced by `text` (removed when `text` is empty).
BadInput fileCase(std::string what, std::string name, std::function<std::string(const std::string &)> text,
                  std::string expected, std::vector<std::string> args = {"run", "-q", "--from", "hf", "--to", "mcore"}) {
  return {std::move(what),
          [name, text, args](const std::string &w) {
            std::string in = stageHub(w);
            std::string original = readFile(hubDir("deepseek_v3") + "/" + name);
            fs::remove(in + "/" + name);
            std::string replacement = text(original);
            if (!replacement.empty())
              writeFile(in + "/" + name, replacement);
            std::vector<std::string> full = args;
            full.push_back(in);
            full.push_back(w + "/out");
            return full;
          },
          std::move(expected)};
}

/// The unchanged hub converted with rulebook text `rules` (written as {W}/bad.rules).
BadInput rulebookCase(std::string what, std::string rules, std::string expected,
                      std::vector<std::string> extraFiles = {}) {
  return {std::move(what),
          [rules, extraFiles](const std::string &w) {
            writeFile(w + "/bad.rules", rules);
            for (size_t i = 0; i + 1 < extraFiles.size(); i += 2)
              writeFile(w + "/" + extraFiles[i], extraFiles[i + 1]);
            return std::vector<std::string>{"run", "-q", w + "/bad.rules", "--from", "hf", "--to", "mcore",
                                            hubDir("deepseek_v3"), w + "/out"};
          },
          std::move(expected)};
}

/// A two-tensor toy checkpoint ('a.weight', 'b.weight') converted with rulebook text `rules`.
BadInput toyCase(std::string what, std::string rules, std::string expected) {
  return {std::move(what),
          [rules](const std::string &w) {
            fs::create_directories(w + "/in");
            Shard toy{json::parse(R"({"a.weight": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
                                      "b.weight": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}})"),
                      std::string(4, '\0')};
            writeFile(w + "/in/model.safetensors", toy.bytes());
            writeFile(w + "/in/config.json", "{\"model_type\": \"toy\"}\n");
            writeFile(w + "/bad.rules", rules);
            return std::vector<std::string>{"run", "-q", w + "/bad.rules", "--from", "hf", "--to", "mcore", w + "/in",
                                            w + "/out"};
          },
          std::move(expected)};
}

/// The unchanged hub converted with these options.
BadInput optionsCase(std::string what, std::vector<std::string> options, std::string expected, int status = 1) {
  return {std::move(what),
          [options](const std::string &w) {
            std::vector<std::string> args{"run", "-q"};
            args.insert(args.end(), options.begin(), options.end());
            args.push_back(hubDir("deepseek_v3"));
            args.push_back(w + "/out");
            return args;
          },
          std::move(expected), status};
}

std::vector<BadInput> catalogue() {
  const std::string shard4 = "ckptmap: error: {W}/in/" + kShard4 + ": ";
  const std::string index = "ckptmap: error: {W}/in/model.safetensors.index.json: ";
  const std::string noPlan = "ckptmap: error: the rulebook does not compile for this checkpoint (see the errors above)\n";
  std::vector<BadInput> c;
  // ---- safetensors files ----
  c.push_back(shardCase("truncated file", [](const Shard &s) { return s.bytes().substr(0, 40000); },
                        shard4 + "tensor 'model.layers.3.shared_head.head.weight': data_offsets [0, 65536] run past the "
                                 "end of the data section (39681 bytes)\n"));
  c.push_back(shardCase("shorter than the length prefix", [](const Shard &) { return std::string("\x10\0\0", 3); },
                        shard4 + "file is 3 bytes, too short for the 8-byte header length\n"));
  c.push_back(shardCase("header length past the end of the file",
                        [](const Shard &s) {
                          std::string b = s.bytes();
                          uint64_t n = b.size();
                          std::memcpy(b.data(), &n, 8);
                          return b;
                        },
                        shard4 + "header length 66111 runs past the end of the file (66103 bytes follow the length)\n"));
  c.push_back(shardCase("huge header length", [](const Shard &s) { return std::string(8, '\x7f') + s.header.dump(); },
                        shard4 + "header length 9187201950435737471 exceeds the limit of 100000000 bytes\n"));
  c.push_back(shardCase("header not JSON",
                        [](const Shard &s) { return s.bytes("{\"model.norm.weight\": {\"dtype\": \"BF16\",]}"); },
                        shard4 + "header is not valid JSON at byte 40: syntax error while parsing object key - "
                                 "unexpected ']'; expected string literal\n"));
  c.push_back(shardCase("header not an object", [](const Shard &s) { return s.bytes("[1, 2, 3]"); },
                        shard4 + "header is not a JSON object\n"));
  c.push_back(shardCase("number beyond a double",
                        [](const Shard &s) {
                          return s.bytes(replaceAll(s.header.dump(), "\"shape\":[64]", "\"shape\":[1e400]"));
                        },
                        shard4 + "header is not valid JSON at byte 232: number overflow parsing '1e400'\n"));
  c.push_back(headerCase("unknown dtype", [](json &h) { h["model.norm.weight"]["dtype"] = "F4"; },
                         shard4 + "tensor 'model.norm.weight': unknown dtype 'F4'\n"));
  c.push_back(headerCase("shape and byte count disagree", [](json &h) { h["model.norm.weight"]["shape"] = {65}; },
                         shard4 + "tensor 'model.norm.weight': shape [65] of BF16 needs 130 bytes but data_offsets "
                                  "span 128\n"));
  c.push_back(headerCase("overlapping offsets",
                         [](json &h) { h["model.norm.weight"]["data_offsets"] = {65600, 65728}; },
                         shard4 + "tensors 'model.layers.3.shared_head.norm.weight' and 'model.norm.weight' overlap: "
                                  "data_offsets [65536, 65664] and [65600, 65728]\n"));
  c.push_back(headerCase("offsets past the data",
                         [](json &h) { h["model.norm.weight"]["data_offsets"] = {65792, 65920}; },
                         shard4 + "tensor 'model.norm.weight': data_offsets [65792, 65920] run past the end of the "
                                  "data section (65792 bytes)\n"));
  c.push_back(headerCase("offsets backwards", [](json &h) { h["model.norm.weight"]["data_offsets"] = {65792, 65664}; },
                         shard4 + "tensor 'model.norm.weight': data_offsets [65792, 65664] begin after they end\n"));
  c.push_back(headerCase("negative dimension", [](json &h) { h["model.norm.weight"]["shape"] = {-64}; },
                         shard4 + "tensor 'model.norm.weight': shape [-64] has a negative dimension\n"));
  c.push_back(headerCase("missing data_offsets", [](json &h) { h["model.norm.weight"].erase("data_offsets"); },
                         shard4 + "tensor 'model.norm.weight': missing 'data_offsets'\n"));
  c.push_back(headerCase("metadata not strings", [](json &h) { h["__metadata__"]["format"] = 1; },
                         shard4 + "__metadata__: 'format' is not a string\n"));
  c.push_back(shardCase("duplicate tensor name",
                        [](const Shard &s) {
                          std::string text = s.header.dump();
                          return s.bytes(text.substr(0, text.size() - 1) + ",\"model.norm.weight\":" +
                                         s.header["model.norm.weight"].dump() + "}");
                        },
                        shard4 + "duplicate tensor 'model.norm.weight'\n"));
  c.push_back(shardCase("a tensor in two shards",
                        [](const Shard &s) {
                          Shard t = s;
                          t.header["lm_head.weight"] = {{"dtype", "BF16"}, {"shape", {64}}, {"data_offsets", {65792, 65920}}};
                          t.data += std::string(128, '\0');
                          return t.bytes();
                        },
                        "ckptmap: error: {W}/in/" + kShard4 + ": tensor 'lm_head.weight' is also in "
                        "model-00001-of-00004.safetensors\n"));
  // ---- the shard index ----
  auto editIndex = [](std::function<void(json &)> edit) {
    return [edit](const std::string &text) {
      json j = json::parse(text);
      edit(j["weight_map"]);
      return j.dump(2);
    };
  };
  c.push_back(fileCase("index names a missing shard", "model.safetensors.index.json",
                       [](const std::string &t) { return replaceAll(t, "model-00004-of-00004", "model-00005-of-00004"); },
                       index + "shard 'model-00005-of-00004.safetensors' does not exist (tensor "
                               "'model.layers.3.shared_head.head.weight' is mapped to it)\n"));
  c.push_back(fileCase("index puts a tensor in the wrong shard", "model.safetensors.index.json",
                       editIndex([](json &m) { m["model.norm.weight"] = "model-00001-of-00004.safetensors"; }),
                       index + "shard '" + kShard4 + "' contains tensor 'model.norm.weight', which weight_map maps "
                               "to 'model-00001-of-00004.safetensors'\n"));
  c.push_back(fileCase("index misses a tensor", "model.safetensors.index.json",
                       editIndex([](json &m) { m.erase("model.norm.weight"); }),
                       index + "shard '" + kShard4 + "' contains tensor 'model.norm.weight', which weight_map does "
                               "not list\n"));
  c.push_back(fileCase("index lists a tensor no shard holds", "model.safetensors.index.json",
                       editIndex([](json &m) { m["model.extra.weight"] = kShard4; }),
                       index + "tensor 'model.extra.weight' is mapped to shard '" + kShard4 +
                           "', which does not contain it\n"));
  c.push_back(fileCase("index not JSON", "model.safetensors.index.json",
                       [](const std::string &t) { return t.substr(0, 100); },
                       index + "not valid JSON at byte 101: syntax error while parsing value - invalid string: "
                               "missing closing quote; last read: '\"model-00001'\n"));
  c.push_back(fileCase("index shard outside the directory", "model.safetensors.index.json",
                       [](const std::string &t) {
                         return replaceAll(t, "\"model-00004-of-00004", "\"../model-00004-of-00004");
                       },
                       index + "weight_map entry 'model.layers.3.shared_head.head.weight' names shard "
                               "'../model-00004-of-00004.safetensors' outside the checkpoint directory\n"));
  c.push_back(fileCase("index shard with an empty name", "model.safetensors.index.json",
                       editIndex([](json &m) { m["lm_head.weight"] = ""; }),
                       index + "weight_map entry 'lm_head.weight' names no shard (an empty file name)\n"));
  c.push_back(fileCase("index number beyond a double", "model.safetensors.index.json",
                       [](const std::string &t) {
                         return replaceAll(t, "\"total_size\": ", "\"total_size\": 1e400, \"x\": ");
                       },
                       index + "not valid JSON at byte 41: number overflow parsing '1e400'\n"));
  // ---- config.json ----
  auto editConfig = [](std::function<void(json &)> edit) {
    return [edit](const std::string &text) {
      json j = json::parse(text);
      edit(j);
      return j.dump(2);
    };
  };
  c.push_back(fileCase("config.json missing, no rulebook named", "config.json",
                       [](const std::string &) { return std::string(); },
                       "ckptmap: error: no rulebook given, and no config.json whose model_type would name one; pass "
                       "RULEBOOK and --hf-config PATH\n"));
  c.push_back(fileCase("config.json missing", "config.json", [](const std::string &) { return std::string(); },
                       "ckptmap: error: '{W}/in' has no config.json; pass --hf-config PATH\n",
                       {"run", "-q", "deepseek_v3", "--from", "hf", "--to", "mcore"}));
  c.push_back(fileCase("config.json not JSON", "config.json", [](const std::string &t) { return t.substr(0, 200); },
                       "ckptmap: error: {W}/in/config.json: not valid JSON at byte 201: syntax error while parsing "
                       "object key - invalid string: missing closing quote; last read: '\"first_k_dense_replace'; "
                       "expected string literal\n"));
  c.push_back(fileCase("config.json without a needed key", "config.json",
                       editConfig([](json &j) { j.erase("num_hidden_layers"); }),
                       sourceDir() + "/rulebooks/deepseek_v3.rules:15:17: error: config.json has no key "
                                     "'num_hidden_layers'\n"
                                     "   15 | param layers  = config.num_hidden_layers\n"
                                     "      |                 ^~~~~~~~~~~~~~~~~~~~~~~~\n"
                                     "1 error generated.\n" + noPlan));
  c.push_back(fileCase("config.json number beyond a double", "config.json",
                       [](const std::string &t) {
                         return replaceAll(t, "\"rms_norm_eps\": 1e-06", "\"rms_norm_eps\": 1e400");
                       },
                       "ckptmap: error: {W}/in/config.json: not valid JSON at byte 840: number overflow parsing "
                       "'1e400'\n"));
  c.push_back(fileCase("config.json of another model", "config.json",
                       editConfig([](json &j) { j["model_type"] = "llama"; }),
                       "ckptmap: error: no shipped rulebook accepts model_type 'llama'; pass RULEBOOK\n"));
  // ---- rulebooks ----
  const std::string header = "rulebook toy {\n  model_types \"deepseek_v3\"\n}\n";
  c.push_back(optionsCase("rulebook that does not exist", {"no_such_family", "--from", "hf", "--to", "mcore"},
                          "ckptmap: error: no rulebook 'no_such_family': not a file, and no no_such_family.rules in " +
                              sourceDir() + "/rulebooks\n"));
  c.push_back(rulebookCase("rulebook syntax error", header + "mapping mcore <-> hf {\n  \"a\" = \n}\n",
                           "{W}/bad.rules:6:1: error: syntax error: unexpected '}'\n"
                           "    6 | }\n"
                           "      | ^\n"
                           "1 error generated.\n" + noPlan));
  c.push_back(rulebookCase("rulebook unknown name", header + "param n = nope + 1\nmapping mcore <-> hf {\n}\n",
                           "{W}/bad.rules:4:7: warning: parameter 'n' is never used\n"
                           "    4 | param n = nope + 1\n"
                           "      |       ^\n"
                           "{W}/bad.rules:4:11: error: unknown name 'nope'\n"
                           "    4 | param n = nope + 1\n"
                           "      |           ^~~~\n"
                           "1 error and 1 warning generated.\n" + noPlan));
  c.push_back(rulebookCase("rulebook unknown op", header + "mapping mcore <-> hf {\n  \"a\" = fuse(\"b\", \"c\")\n}\n",
                           "{W}/bad.rules:5:9: error: unknown op 'fuse'\n"
                           "    5 |   \"a\" = fuse(\"b\", \"c\")\n"
                           "      |         ^~~~\n"
                           "1 error generated.\n" + noPlan));
  c.push_back(rulebookCase("rulebook missing include", header + "include \"lib/none.rules\"\nmapping mcore <-> hf {\n}\n",
                           "{W}/bad.rules:4:9: error: cannot include 'lib/none.rules': {W}/lib/none.rules: No such file "
                           "or directory\n"
                           "    4 | include \"lib/none.rules\"\n"
                           "      |         ^~~~~~~~~~~~~~~~\n"
                           "1 error generated.\n" + noPlan));
  c.push_back(rulebookCase("rulebook include cycle", header + "include \"a.rules\"\nmapping mcore <-> hf {\n}\n",
                           "{W}/a.rules:1:9: error: include cycle: 'bad.rules' is already being included\n"
                           "    1 | include \"bad.rules\"\n"
                           "      |         ^~~~~~~~~~~\n"
                           "1 error generated.\n" + noPlan,
                           {"a.rules", "include \"bad.rules\"\n"}));
  c.push_back(rulebookCase("rulebook assertion fails on the config",
                           header + "assert config.hidden_size == 128 : \"needs the big model\"\nmapping mcore <-> hf {\n}\n",
                           "{W}/bad.rules:4:1: error: assertion failed: (config.hidden_size == 128) (needs the big "
                           "model)\n"
                           "    4 | assert config.hidden_size == 128 : \"needs the big model\"\n"
                           "      | ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\n"
                           "note: with config.hidden_size = 64\n"
                           "1 error generated.\n" + noPlan));
  const std::string toy = "rulebook toy {\n  model_types \"toy\"\n}\n";
  c.push_back(toyCase("rulebook leaves a tensor uncovered", toy + "mapping mcore <-> hf {\n  \"x.weight\" = \"a.weight\"\n}\n",
                      "error: 1 tensor of the checkpoint is not covered by any rule (map or drop each one, with a "
                      "reason)\n"
                      "note: 'b.weight'\n"
                      "1 error generated.\n" + noPlan));
  c.push_back(toyCase("rulebook produces an output twice",
                      toy + "mapping mcore <-> hf {\n  \"x.weight\" = \"a.weight\"\n  \"x.weight\" = \"b.weight\"\n}\n",
                      "{W}/bad.rules:6:3: error: output 'x.weight' is produced more than once\n"
                      "    6 |   \"x.weight\" = \"b.weight\"\n"
                      "      |   ^~~~~~~~~~\n"
                      "{W}/bad.rules:5:3: note: it is also produced here\n"
                      "    5 |   \"x.weight\" = \"a.weight\"\n"
                      "      |   ^~~~~~~~~~\n"
                      "1 error generated.\n" + noPlan));
  c.push_back(toyCase("rulebook type error",
                      toy + "param n = true + 1\nmapping mcore <-> hf {\n  \"x.weight\" = \"a.weight\"\n"
                            "  \"y.weight\" = \"b.weight\"\n}\n",
                      "{W}/bad.rules:4:7: warning: parameter 'n' is never used\n"
                      "    4 | param n = true + 1\n"
                      "      |       ^\n"
                      "{W}/bad.rules:4:11: error: '+' needs numbers, got a boolean and an integer\n"
                      "    4 | param n = true + 1\n"
                      "      |           ^~~~~~~~\n"
                      "1 error and 1 warning generated.\n" + noPlan));
  // ---- the command line ----
  c.push_back(optionsCase("an unknown convention", {"--from", "hf", "--to", "megatron"},
                          "error: --to megatron: unknown convention\n"
                          "note: the conventions are mcore, hf, hf-mem\n"
                          "1 error generated.\n" + noPlan));
  c.push_back(optionsCase("a convention pair the rulebook does not map", {"--from", "mcore", "--to", "hf-mem"},
                          "error: rulebook 'deepseek_v3' has no mapping between mcore and hf-mem\n"
                          "note: it maps mcore <-> hf; hf <-> hf-mem\n"
                          "1 error generated.\n" + noPlan));
  c.push_back(optionsCase("no direction", {},
                          "ckptmap: error: --from and --to are required (e.g. --from hf --to mcore)\n"));
  c.push_back(optionsCase("an unknown option", {"--from", "hf", "--to", "mcore", "--frobnicate"},
                          "ckptmap run: unknown option '--frobnicate'\n", 2));
  c.push_back(optionsCase("an unknown format", {"--from", "hf", "--to", "mcore", "--quantize", "int3"},
                          "ckptmap: error: --quantize expects nvfp4, fp8, fp8-block or mxfp8, got 'int3'\n"));
  c.push_back(optionsCase("--exclude without --quantize", {"--from", "hf", "--to", "mcore", "--exclude", "*"},
                          "ckptmap: error: --exclude applies to --quantize\n"));
  c.push_back(optionsCase("--quantize with --dequantize",
                          {"--from", "hf", "--to", "mcore", "--quantize", "fp8", "--dequantize"},
                          "ckptmap: error: --quantize and --dequantize exclude each other\n"));
  c.push_back(optionsCase("a bad -D", {"--from", "hf", "--to", "mcore", "-D", "layers"},
                          "ckptmap: error: -D expects NAME=VALUE, got 'layers'\n"));
  c.push_back(optionsCase("a bad shard size", {"--from", "hf", "--to", "mcore", "--max-shard-size", "5XB"},
                          "ckptmap: error: invalid size '5XB': expected an integer with an optional unit (B, KB, MB, "
                          "GB, TB, KiB, MiB, GiB, TiB)\n"));
  c.push_back(optionsCase("zero threads", {"--from", "hf", "--to", "mcore", "--threads", "0"},
                          "ckptmap: error: --threads expects a positive integer, got '0'\n"));
  c.push_back({"output under a file",
               [](const std::string &w) {
                 writeFile(w + "/file", "x");
                 return std::vector<std::string>{"run", "-q", "--from", "hf", "--to", "mcore", hubDir("deepseek_v3"),
                                                 w + "/file/out"};
               },
               "ckptmap: error: {W}/file: cannot create 'out' in it: Not a directory\n"});
  BadInput readOnly{"output in a directory without write permission",
                    [](const std::string &w) {
                      fs::create_directories(w + "/ro");
                      fs::permissions(w + "/ro", fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                                                     fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
                      return std::vector<std::string>{"run", "-q", "--from", "hf", "--to", "mcore",
                                                      hubDir("deepseek_v3"), w + "/ro/out"};
                    },
                    "ckptmap: error: {W}/ro: cannot create 'out' in it: Permission denied\n"};
  readOnly.asNobody = true;
  c.push_back(readOnly);
  c.push_back({"output exists",
               [](const std::string &w) {
                 fs::create_directories(w + "/out");
                 writeFile(w + "/out/marker", "kept");
                 return std::vector<std::string>{"run", "-q", "--from", "hf", "--to", "mcore", hubDir("deepseek_v3"),
                                                 w + "/out"};
               },
               "ckptmap: error: {W}/out: already exists; use --force to replace it\n", 1, true});
  // ---- plans ----
  auto planCase = [](std::string what, std::function<std::string(const std::string &)> edit, std::string expected) {
    return BadInput{std::move(what),
                    [edit](const std::string &w) {
                      std::string plan = w + "/plan.json";
                      CliRun compiled = runCli({"compile", "--from", "hf", "--to", "mcore", hubDir("deepseek_v3"), "-o",
                                                w + "/good.json"},
                                               w);
                      REQUIRE(compiled.status == 0);
                      writeFile(plan, edit(readFile(w + "/good.json")));
                      return std::vector<std::string>{"run", "-q", "--plan", plan, hubDir("deepseek_v3"), w + "/out"};
                    },
                    std::move(expected)};
  };
  c.push_back(planCase("plan number beyond a double",
                       [](const std::string &t) { return replaceAll(t, "{\n \"choices\"", "{\"x\": 1e400, \"choices\""); },
                       "ckptmap: error: {W}/plan.json: not valid JSON at byte 11: number overflow parsing '1e400'\n"));
  c.push_back(planCase("plan field of the wrong type",
                       [](const std::string &t) { return replaceAll(t, "\"dim\": 0", "\"dim\": 0.5"); },
                       "ckptmap: error: plan: steps[11].instrs[2]: 'dim' has the wrong type\n"));
  c.push_back(planCase("plan reads a tensor the input lacks",
                       [](const std::string &t) { return replaceAll(t, "model.norm.weight", "model.normal.weight"); },
                       "ckptmap: error: the plan reads 'model.normal.weight', which the input does not have\n"));
  // ---- values ----
  auto valueCase = [](std::string what, std::string family, std::string tensor, size_t element, std::string value,
                      std::vector<std::string> command, std::string expected) {
    return BadInput{std::move(what),
                    [=](const std::string &w) {
                      std::string in = stageHub(w, family);
                      patchTensor(in, tensor, element * value.size(), value);
                      std::vector<std::string> args = command;
                      args.push_back(in);
                      args.push_back(w + "/out");
                      return args;
                    },
                    std::move(expected)};
  };
  auto f32 = [](float x) { return std::string(reinterpret_cast<const char *>(&x), 4); };
  auto bf16 = [](uint16_t bits) { return std::string(reinterpret_cast<const char *>(&bits), 2); };
  const std::vector<std::string> dequantize{"run", "-q", "--dequantize", "--from", "hf", "--to", "hf"};
  c.push_back(valueCase("NaN scale, dequantized", "deepseek_v3_fp8", "model.layers.0.mlp.down_proj.weight_scale_inv", 0,
                        f32(std::nanf("")), dequantize,
                        "ckptmap: error: 'model.layers.0.mlp.down_proj.weight_scale_inv': element 0 (row 0, col 0) is "
                        "nan; a quantization scale must be finite and positive (same name, identity)\n"));
  c.push_back(valueCase("negative scale, dequantized", "deepseek_v3_fp8", "model.layers.1.self_attn.o_proj.weight_scale_inv",
                        0, f32(-1.0f), dequantize,
                        "ckptmap: error: 'model.layers.1.self_attn.o_proj.weight_scale_inv': element 0 (row 0, col 0) "
                        "is -1; a quantization scale must be finite and positive (same name, identity)\n"));
  c.push_back(valueCase("NaN weight, quantized", "deepseek_v3", "model.layers.0.mlp.down_proj.weight", 37, bf16(0x7FC0),
                        {"quantize", "-q", "--format", "nvfp4"},
                        "ckptmap: error: 'model.layers.0.mlp.down_proj.weight': quantize failed: NaN in quantizer input "
                        "at element 37 (row 0, col 37) (same name, identity)\n"));
  c.push_back(valueCase("infinite weight, quantized", "deepseek_v3", "model.layers.0.mlp.down_proj.weight", 100,
                        bf16(0xFF80), {"quantize", "-q", "--format", "fp8"},
                        "ckptmap: error: 'model.layers.0.mlp.down_proj.weight': quantize failed: -Inf in quantizer "
                        "input at element 100 (row 1, col 4) (same name, identity)\n"));
  return c;
}

std::string expand(std::string text, const std::string &w) { return replaceAll(std::move(text), "{W}", w); }

} // namespace

TEST_CASE("bad inputs: each one's exact error, a nonzero exit, and no output left behind") {
  REQUIRE_MESSAGE(fs::exists(ckptmapBinary()), "build the ckptmap binary first");
  TempDir tmp;
  std::vector<BadInput> cases = catalogue();
  CHECK(cases.size() >= 40);
  for (size_t i = 0; i < cases.size(); ++i) {
    const BadInput &c = cases[i];
    CAPTURE(c.what);
    std::string w = tmp / ("case" + std::to_string(i));
    fs::create_directories(w);
    std::vector<std::string> args = c.make(w);
    if (c.asNobody) // nobody must reach the case's directory
      for (const std::string &d : {tmp.path(), w})
        fs::permissions(d, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                               fs::perms::others_read | fs::perms::others_exec);
    CliRun run = runCli(args, w, {0, c.asNobody});
    CHECK(run.status == c.status);
    CHECK(run.err == expand(c.expected, w));
    if (c.outputExisted)
      CHECK(readFile(w + "/out/marker") == "kept");
    else
      CHECK_FALSE(fs::exists(w + "/out"));
    CHECK(tempDirsOf(w + "/out").empty());
  }
}

TEST_CASE("a run cut short by SIGINT, SIGTERM, SIGHUP or SIGKILL leaves no output, and a rerun succeeds") {
  REQUIRE_MESSAGE(fs::exists(ckptmapBinary()), "build the ckptmap binary first");
  TempDir tmp;
  // 32 MiB of F32 to quantize, so the run is still writing when it is stopped.
  std::string in = tmp / "in";
  {
    std::vector<TensorMeta> metas;
    for (int i = 0; i < 4; ++i)
      metas.push_back({"layers." + std::to_string(i) + ".mlp.weight", DType::F32, {1024, 2048}, {}});
    WriteOptions w;
    w.outDir = in;
    auto writer = requireValue(CheckpointWriter::create(metas, w));
    std::vector<uint8_t> bytes(1024 * 2048 * 4);
    uint32_t state = 1;
    for (size_t i = 0; i < metas.size(); ++i) {
      for (size_t k = 0; k < bytes.size(); k += 4) {
        state = state * 1664525u + 1013904223u;
        float x = float(int32_t(state)) * 1e-10f;
        std::memcpy(bytes.data() + k, &x, 4);
      }
      requireOk(writer->write(i, bytes));
    }
    writer->addFile("config.json", "{\"model_type\": \"toy\"}\n");
    requireOk(writer->finish());
  }
  auto quantize = [&](const std::string &out) {
    return std::vector<std::string>{"quantize", "-q", "--threads", "1", "--format", "nvfp4", in, out};
  };
  std::string reference = tmp / "reference";
  REQUIRE(runCli(quantize(reference), tmp.path()).status == 0);

  for (int signo : {SIGINT, SIGTERM, SIGHUP, SIGKILL}) {
    CAPTURE(signo);
    std::string out = tmp / ("out-" + std::to_string(signo));
    pid_t pid = startCli(quantize(out), tmp.path());
    // Stop it as soon as its temporary output exists, so the signal lands mid-run.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (tempDirsOf(out).empty() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    REQUIRE(::kill(pid, SIGSTOP) == 0);
    int stopped = 0;
    REQUIRE(::waitpid(pid, &stopped, WUNTRACED) == pid);
    REQUIRE_MESSAGE(WIFSTOPPED(stopped), "the run ended before it could be interrupted");
    REQUIRE_FALSE(fs::exists(out));
    REQUIRE(::kill(pid, signo) == 0);
    REQUIRE(::kill(pid, SIGCONT) == 0);
    CliRun run = finishCli(pid, tmp.path());
    CHECK(run.status == 128 + signo);
    CHECK_FALSE(fs::exists(out));
    // Only SIGKILL leaves the temporary directory, which the next run removes.
    CHECK(tempDirsOf(out).size() == (signo == SIGKILL ? 1u : 0u));
    REQUIRE(runCli(quantize(out), tmp.path()).status == 0);
    CHECK(tempDirsOf(out).empty());
    E2E_REQUIRE_SAME(reference, out);
  }
}

TEST_CASE("a full disk: the write error, nothing left behind, and a rerun with room succeeds") {
  REQUIRE_MESSAGE(fs::exists(ckptmapBinary()), "build the ckptmap binary first");
  TempDir tmp;
  std::vector<std::string> args{"run", "-q", "--from", "hf", "--to", "mcore", hubDir("deepseek_v3"), tmp / "out"};
  CliRun full = runCli(args, tmp.path(), {100'000});
  CHECK(full.status == 1);
  // The writer reserves each file's size up front: the limit shows before a byte is copied.
  CHECK(startsWith(full.err, "ckptmap: error: " + tmp.path() + "/.out.ckptmap-tmp."));
  CHECK(endsWith(full.err, "/__0_0.distcp: cannot allocate 670199 bytes: File too large\n"));
  CHECK_FALSE(fs::exists(tmp / "out"));
  CHECK(tempDirsOf(tmp / "out").empty());
  CHECK(runCli(args, tmp.path()).status == 0);
  CHECK(fs::exists(tmp / "out/ckptmap.json"));
}

} // namespace ckptmap::e2e
