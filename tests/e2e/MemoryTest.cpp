// --max-memory bounds the peak resident memory of a conversion whose steps are larger than the
// budget: measured on the built binary (getrusage of its process, through peak_rss).

#include "E2e.h"

#include <fcntl.h>
#include <random>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace ckptmap;
using namespace ckptmap::e2e;

#if defined(__SANITIZE_ADDRESS__)
#define CKPTMAP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CKPTMAP_ASAN 1
#endif
#endif

namespace {

/// Runs ckptmap with `args` through peak_rss; its peak resident memory in bytes.
uint64_t peakMemory(std::vector<std::string> args) {
  const std::string measure = std::string(CKPTMAP_BINARY_DIR) + "/tests/e2e/peak_rss";
  args.insert(args.begin(), {measure, ckptmapBinary()});
  std::vector<char *> argv;
  for (std::string &a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  int out[2];
  REQUIRE(::pipe(out) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) == 0);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  std::string text;
  char buf[256];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;)
    text.append(buf, size_t(n));
  ::close(out[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE_MESSAGE(WEXITSTATUS(status) == 0, text);
  // ckptmap's own output (the inspect table) comes first; the peak is the last line.
  size_t last = text.find_last_of('\n', text.size() - 2);
  return std::stoull(text.substr(last == std::string::npos ? 0 : last + 1)) * 1024;
}

} // namespace

TEST_CASE("--max-memory bounds the peak memory of steps larger than the budget") {
  REQUIRE_MESSAGE(fs::exists(ckptmapBinary()), "build the ckptmap binary first");
  TempDir tmp;
  // A 16 MiB F32 matrix cast to BF16 and a 4 MiB BF16 matrix transposed: each step needs many
  // times the 1 MiB budget.
  constexpr int64_t kRows = 2048, kCols = 2048, kTRows = 1024, kTCols = 2048;
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> value(-4, 4);
  std::string w(size_t(kRows * kCols) * 4, '\0'), t(size_t(kTRows * kTCols) * 2, '\0');
  for (size_t i = 0; i < w.size(); i += 4) {
    float f = value(rng);
    std::memcpy(&w[i], &f, 4);
  }
  for (char &c : t)
    c = char(rng());
  json header = {{"w", {{"dtype", "F32"}, {"shape", {kRows, kCols}}, {"data_offsets", {0, w.size()}}}},
                 {"t", {{"dtype", "BF16"}, {"shape", {kTRows, kTCols}}, {"data_offsets", {w.size(), w.size() + t.size()}}}}};
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string prefix(8, '\0');
  for (int i = 0; i < 8; ++i)
    prefix[size_t(i)] = char((text.size() >> (8 * i)) & 0xff);
  fs::create_directories(tmp / "in");
  writeFile(tmp / "in/model.safetensors", prefix + text + w + t);
  writeFile(tmp / "in/config.json", R"({"model_type": "memtest"})");
  writeFile(tmp / "memtest.rules", R"(rulebook memtest {
  model_types "memtest"
}
mapping hf <-> hf-mem {
  cast("w", from: F32, to: BF16) = "w"
  transpose("t") = "t"
}
)");
  auto run = [&](const std::string &out, std::vector<std::string> extra) {
    std::vector<std::string> args = {"run", tmp / "memtest.rules", "--from", "hf", "--to", "hf-mem", tmp / "in", tmp / out, "-q"};
    args.insert(args.end(), extra.begin(), extra.end());
    return peakMemory(args);
  };
  // The process itself, having read the same headers.
  uint64_t floor = peakMemory({"inspect", tmp / "in"});
  uint64_t whole = run("whole", {});
  uint64_t bounded = run("bounded", {"--max-memory", "1MiB", "-j", "2"});
  MESSAGE("peak resident memory: inspect " << floor / 1024 << " KiB, run " << whole / 1024 << " KiB, with --max-memory 1MiB "
                                           << bounded / 1024 << " KiB");
  // AddressSanitizer's shadow memory and quarantine swamp these sizes: there only the bytes count.
#if !CKPTMAP_ASAN
  // Whole steps hold the input's pages and their results: the measure sees them...
  CHECK(whole > floor + (16u << 20));
  // ...and within the budget they are gone: what is left is the budget and a few buffers.
  CHECK(bounded < floor + (6u << 20));
#endif
  // The pieces make the same bytes.
  CHECK(readFile(tmp / "bounded/model.safetensors") == readFile(tmp / "whole/model.safetensors"));
}
