// The progress line on a terminal: bytes written, tensors, throughput and ETA, redrawn a
// few times a second on stderr. Silent when stderr is not a terminal or when disabled.
#pragma once

#include "runtime/exec/Interpreter.h"

#include <condition_variable>
#include <mutex>
#include <thread>

namespace ckptmap {

class ProgressDisplay {
public:
  /// Starts drawing if `enabled` and stderr is a terminal.
  explicit ProgressDisplay(const ExecProgress &progress, bool enabled = true);
  ~ProgressDisplay() { stop(); }
  /// Draws the final state and clears the line; idempotent.
  void stop();

  /// Globally silences every display (--quiet, --json).
  static void setQuiet(bool quiet);

private:
  void draw(bool final);

  const ExecProgress &progress_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool active_ = false;
  double startSeconds_ = 0;
};

} // namespace ckptmap
