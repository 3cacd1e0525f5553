// One process's part of an output that several processes write at once (ckptmap run
// --partition, or ranks of mpirun/srun): all of them write into one temporary directory at
// places fixed in advance, each its own tensors; share 0 waits for the others, writes the
// index or metadata, and moves the output into place. The files are those one process writes.
#pragma once

#include <string>
#include <vector>

namespace ckptmap {

struct OutputShare {
  unsigned index = 0, count = 1;
  /// Names one launch, so that its processes meet in the same temporary directory and a
  /// later launch does not mistake what an earlier one left there for its own.
  std::string launch;

  bool active() const { return count > 1; }
  /// Share 0 finishes the output.
  bool finishes() const { return index == 0; }
};

} // namespace ckptmap
