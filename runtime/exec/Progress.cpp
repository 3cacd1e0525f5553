#include "runtime/exec/Progress.h"

#include "runtime/io/Inspect.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>

namespace ckptmap {

static std::atomic<bool> gQuiet{false};

static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void ProgressDisplay::setQuiet(bool quiet) { gQuiet = quiet; }

ProgressDisplay::ProgressDisplay(const ExecProgress &progress, bool enabled) : progress_(progress) {
  active_ = enabled && !gQuiet && isatty(STDERR_FILENO);
  if (!active_)
    return;
  startSeconds_ = now();
  thread_ = std::thread([this] {
    std::unique_lock lock(mutex_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(250), [this] { return stopping_; }))
      draw(false);
  });
}

void ProgressDisplay::draw(bool final) {
  uint64_t done = progress_.bytesWritten, total = progress_.totalBytes;
  double elapsed = now() - startSeconds_;
  double rate = elapsed > 0 ? double(done) / elapsed : 0;
  char eta[32] = "";
  if (!final && rate > 0 && total > done) {
    int s = int(double(total - done) / rate);
    std::snprintf(eta, sizeof eta, "  ETA %d:%02d", s / 60, s % 60);
  }
  std::fprintf(stderr, "\r\033[K%s / %s  %3d%%  %s/s  %llu/%llu tensors%s", formatBytes(done).c_str(),
               formatBytes(total).c_str(), total ? int(100.0 * double(done) / double(total)) : 100,
               formatBytes(uint64_t(rate)).c_str(), (unsigned long long)progress_.tensorsWritten.load(),
               (unsigned long long)progress_.totalTensors, eta);
  if (final)
    std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
}

void ProgressDisplay::stop() {
  if (!active_)
    return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  draw(true);
  active_ = false;
}

} // namespace ckptmap
