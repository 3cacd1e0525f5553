#include "runtime/exec/Partition.h"

#include "compiler/quant/Grouping.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Process.h"

namespace ckptmap {

static llvm::Error error(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message.str().c_str());
}

llvm::Expected<OutputShare> parsePartition(llvm::StringRef text) {
  auto [index, count] = text.split('/');
  OutputShare share;
  if (!text.contains('/') || index.getAsInteger(10, share.index) || count.getAsInteger(10, share.count) ||
      share.count == 0 || share.index >= share.count)
    return error("--partition expects I/N with 0 <= I < N (e.g. 0/4), got '" + text + "'");
  share.launch = "of-" + std::to_string(share.count);
  return share;
}

std::optional<OutputShare> shareFromLauncher() {
  struct Launcher {
    const char *rank, *size, *job;
  };
  static const Launcher kLaunchers[] = {
      {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_NAMESPACE"},
      {"PMI_RANK", "PMI_SIZE", "PMI_KVSNAME"},
      {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_JOB_ID"},
  };
  for (const Launcher &l : kLaunchers) {
    auto rank = llvm::sys::Process::GetEnv(l.rank), size = llvm::sys::Process::GetEnv(l.size);
    OutputShare share;
    if (!rank || !size || llvm::StringRef(*rank).getAsInteger(10, share.index) ||
        llvm::StringRef(*size).getAsInteger(10, share.count) || share.count < 2 || share.index >= share.count)
      continue;
    std::string job = llvm::sys::Process::GetEnv(l.job).value_or("");
    if (auto step = llvm::sys::Process::GetEnv("SLURM_STEP_ID"); step && llvm::StringRef(l.rank) == "SLURM_PROCID")
      job += "." + *step;
    // A name that is a file name whatever the job id holds.
    for (char &c : job)
      if (!isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-')
        c = '_';
    share.launch = (job.empty() ? std::string("job") : job) + "-of-" + std::to_string(share.count);
    return share;
  }
  return std::nullopt;
}

std::vector<bool> stepsOfShare(const Plan &plan, const OutputShare &share) {
  llvm::StringMap<uint64_t> outputBytes;
  for (const TensorMeta &t : plan.outputs)
    outputBytes[t.name] = t.byteSize();
  std::vector<uint64_t> load(share.count, 0);
  std::vector<bool> mine(plan.steps.size(), false);
  for (size_t s = 0; s < plan.steps.size(); ++s) {
    uint64_t bytes = 0;
    for (const Instr &i : plan.steps[s].instrs)
      if (i.op == InstrOp::Store)
        bytes += outputBytes.lookup(i.tensor);
    unsigned best = 0;
    for (unsigned r = 1; r < share.count; ++r)
      if (load[r] < load[best])
        best = r;
    load[best] += bytes;
    mine[s] = best == share.index;
  }
  return mine;
}

std::vector<bool> storedBySteps(const Plan &plan, const std::vector<bool> &steps) {
  llvm::StringMap<bool> written;
  for (size_t s = 0; s < plan.steps.size(); ++s)
    if (steps[s])
      for (const Instr &i : plan.steps[s].instrs)
        if (i.op == InstrOp::Store)
          written[i.tensor] = true;
  std::vector<bool> out;
  for (const TensorMeta &t : plan.outputs) {
    bool mine = written.lookup(t.name);
    for (size_t p = expandQuantized(t).size(); p > 0; --p)
      out.push_back(mine);
  }
  return out;
}

} // namespace ckptmap
