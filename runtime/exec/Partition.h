// Splitting one conversion over several processes: --partition I/N, or the ranks of an
// existing launcher (Open MPI's mpirun, MPICH's, Slurm's srun), read from their variables.
// Every process compiles the same plan and takes the same decision, so they need no
// communication beyond the finishing share waiting for the others (see OutputShare).
#pragma once

#include "compiler/plan/Plan.h"
#include "runtime/io/OutputShare.h"

#include "llvm/Support/Error.h"

#include <optional>
#include <vector>

namespace ckptmap {

/// "I/N": share I of N (0 <= I < N).
llvm::Expected<OutputShare> parsePartition(llvm::StringRef text);

/// The share a launcher gave this process: OMPI_COMM_WORLD_RANK/SIZE, PMI_RANK/SIZE, or
/// SLURM_PROCID/NTASKS, named by its job; nullopt outside a launcher or for a single rank.
std::optional<OutputShare> shareFromLauncher();

/// Which steps a share runs: whole steps, each given in plan order to the share that has the
/// fewest bytes to write so far.
std::vector<bool> stepsOfShare(const Plan &plan, const OutputShare &share);

/// Which stored tensors (in expandQuantized(plan.outputs) order) those steps write.
std::vector<bool> storedBySteps(const Plan &plan, const std::vector<bool> &steps);

} // namespace ckptmap
