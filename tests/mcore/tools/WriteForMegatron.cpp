// Rewrites a torch_dist checkpoint with this project's writer (one chunk per tensor, the
// tensors spread over N writer ranks, a common_state carrying extra entries), so that
// Megatron-Core can be asked to load the result (tests/mcore/verify_with_megatron.sh).
//   mcore_write_for_megatron IN_TORCH_DIST OUT_DIR RANKS
#include "runtime/mcore/TorchDist.h"
#include "runtime/mcore/TorchDistWriter.h"

#include <cstdio>
#include <cstdlib>

int main(int argc, char **argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s IN_TORCH_DIST OUT_DIR RANKS\n", argv[0]);
    return 2;
  }
  auto src = ckptmap::mcore::TorchDistSource::open(argv[1]);
  if (!src) {
    std::fprintf(stderr, "%s\n", llvm::toString(src.takeError()).c_str());
    return 1;
  }
  ckptmap::mcore::TorchDistWriteOptions options;
  options.ranks = std::atoi(argv[3]);
  options.commonState = {{"ckptmap", {{"hf_layout", "hub"}, {"hf_config", "{\"model_type\": \"test\"}"}}}};
  std::vector<ckptmap::mcore::DistWriteEntry> extra;
  extra.push_back(ckptmap::mcore::DistWriteEntry::object("ckptmap/hf_config/shard_0_1",
                                                         nlohmann::json::array({"{\"model_type\": \"test\"}"})));
  // The source's own common_state would win over options.commonState: drop it so the
  // extra entries are exercised.
  std::vector<ckptmap::mcore::DistWriteEntry> plan;
  auto writer = ckptmap::mcore::TorchDistWriter::create(argv[2], [&] {
    for (const auto &e : (*src)->index().entries)
      if (e.isTensor)
        plan.push_back(ckptmap::mcore::DistWriteEntry::tensor(e.key, e.dtype, e.shape));
    for (auto &e : extra)
      plan.push_back(std::move(e));
    return plan;
  }(), options);
  if (!writer) {
    std::fprintf(stderr, "%s\n", llvm::toString(writer.takeError()).c_str());
    return 1;
  }
  for (const auto &t : (*src)->tensors()) {
    auto bytes = (*src)->read(t);
    if (!bytes) {
      std::fprintf(stderr, "%s\n", llvm::toString(bytes.takeError()).c_str());
      return 1;
    }
    if (auto err = (*writer)->write(t.meta.name, bytes->bytes())) {
      std::fprintf(stderr, "%s\n", llvm::toString(std::move(err)).c_str());
      return 1;
    }
  }
  if (auto err = (*writer)->finish()) {
    std::fprintf(stderr, "%s\n", llvm::toString(std::move(err)).c_str());
    return 1;
  }
  std::printf("wrote %s\n", argv[2]);
  return 0;
}
