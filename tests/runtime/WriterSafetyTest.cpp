// What happens to the output when the process is interrupted, the disk fills up, the parent
// is not writable, or an earlier run died: checked in child processes, since these tests
// change process-wide state (signals, limits, user id).
#include "TestUtil.h"

#include "runtime/io/CheckpointWriter.h"

#include <csignal>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace ckptmap;
using namespace ckptmap::test;

namespace {

/// Runs `body` in a child process; returns its wait status and what it wrote to the pipe.
template <class F> std::pair<int, std::string> inChild(F body) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    std::string message = body();
    (void)!::write(fds[1], message.data(), message.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
    out.append(buf, size_t(n));
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return {status, out};
}

std::unique_ptr<CheckpointWriter> startWriter(const std::string &out) {
  WriteOptions options;
  options.outDir = out;
  options.maxShardSize = 64;
  auto w = CheckpointWriter::create(
      {TensorMeta{"a", DType::U8, {64}}, TensorMeta{"b", DType::U8, {64}}}, options);
  if (!w) {
    llvm::consumeError(w.takeError());
    return nullptr;
  }
  std::vector<uint8_t> bytes(64, 1);
  llvm::consumeError((*w)->write(0, bytes));
  return std::move(*w);
}

} // namespace

TEST_CASE("signals: SIGTERM and SIGINT remove the temporary directory and exit 128+signo") {
  for (int signo : {SIGTERM, SIGINT}) {
    CAPTURE(signo);
    TempDir dir;
    std::string out = dir / "out";
    auto [status, message] = inChild([&] {
      auto w = startWriter(out);
      if (!w || !exists(w->tempDir()))
        return std::string("no writer");
      ::raise(signo);
      return std::string("survived the signal");
    });
    CHECK(message.empty());
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 128 + signo);
    CHECK_FALSE(exists(out));
    // The directory holds nothing: neither output nor temporary.
    CHECK(::rmdir(dir.path().c_str()) == 0);
    ::mkdir(dir.path().c_str(), 0700); // for TempDir's cleanup
  }
}

TEST_CASE("signals: an ignored SIGINT stays ignored") {
  TempDir dir;
  std::string out = dir / "out";
  auto [status, message] = inChild([&] {
    ::signal(SIGINT, SIG_IGN);
    auto w = startWriter(out);
    ::raise(SIGINT);
    return std::string(w ? "still running" : "no writer");
  });
  CHECK(message == "still running");
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(::rmdir(dir.path().c_str()) == 0); // the child's writer cleaned up on destruction
  ::mkdir(dir.path().c_str(), 0700);
}

TEST_CASE("stale temporary directories of dead processes are removed") {
  TempDir dir;
  std::string out = dir / "out";
  pid_t dead = ::fork();
  if (dead == 0)
    ::_exit(0);
  REQUIRE(::waitpid(dead, nullptr, 0) == dead);
  std::string stale = tempDirFor(out, dead);
  std::string live = tempDirFor(out, 1); // init never dies
  std::string other = tempDirFor(dir / "other", dead);
  for (const std::string &d : {stale, live, other}) {
    REQUIRE(::mkdir(d.c_str(), 0755) == 0);
    writeFile(d + "/model.safetensors", "partial");
  }
  auto w = startWriter(out);
  REQUIRE(w);
  CHECK_FALSE(exists(stale));
  CHECK(exists(live));
  CHECK(exists(other)); // another target's
  CHECK(exists(w->tempDir()));
}

TEST_CASE("a parent that cannot be written is reported") {
  TempDir dir;
  std::string parent = dir / "readonly";
  REQUIRE(::mkdir(parent.c_str(), 0555) == 0);
  REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
  auto [status, message] = inChild([&] {
    if (::geteuid() == 0 && ::setuid(65534) != 0) // root writes anywhere: drop to nobody
      return std::string("cannot drop privileges");
    WriteOptions options;
    options.outDir = parent + "/out";
    auto w = CheckpointWriter::create({TensorMeta{"a", DType::U8, {1}}}, options);
    return w ? std::string("created") : llvm::toString(w.takeError());
  });
  CHECK(message == parent + ": cannot create 'out' in it: Permission denied");
}

TEST_CASE("a full disk is reported with the file and the reason") {
  // RLIMIT_FSIZE stands in for a full disk: writes past it fail as ENOSPC would, with EFBIG.
  TempDir dir;
  std::string out = dir / "out";
  auto [status, message] = inChild([&] {
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit limit = {4096, 4096};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    WriteOptions options;
    options.outDir = out;
    auto w = CheckpointWriter::create({TensorMeta{"a", DType::U8, {8192}}}, options);
    // The child's pid names its temporary directory: send it along.
    return std::to_string(::getpid()) + " " +
           (w ? std::string("created") : llvm::toString(w.takeError()));
  });
  auto [pid, text] = llvm::StringRef(message).split(' ');
  CHECK(text == tempDirFor(out, std::stol(pid.str())) +
                    "/model.safetensors: cannot allocate 8296 bytes: File too large");
  // The failed writer removed its temporary directory.
  CHECK(::rmdir(dir.path().c_str()) == 0);
  ::mkdir(dir.path().c_str(), 0700);
}
