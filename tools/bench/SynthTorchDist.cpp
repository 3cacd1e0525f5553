// Rewrites a torch_dist checkpoint as a run with tensor parallel size TP and expert parallel
// size EP would have saved it: column-parallel weights cut into TP row blocks, row-parallel
// ones into TP column blocks, stacked experts into one chunk per expert (times the TP cut),
// each chunk in the `.distcp` file of the rank (ep * TP + tp) that holds it, replicated
// tensors in rank 0's. Benchmark input only (bench_torch_dist.py): the layout, not the bytes,
// is what differs from ckptmap's own output.
//   synth_torch_dist IN OUT TP EP
#include "runtime/mcore/TorchDist.h"
#include "runtime/mcore/TorchDistWriter.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>

using namespace ckptmap;
using namespace ckptmap::mcore;

namespace {

int fail(llvm::Error e) {
  llvm::errs() << "synth_torch_dist: " << llvm::toString(std::move(e)) << "\n";
  return 1;
}

/// Cuts `dim` of every box in `boxes` into `parts` blocks; a box's block i goes to rank
/// `rankOf(i, box index)`.
void cut(std::vector<Box> &boxes, std::vector<int> &ranks, size_t dim, int64_t parts, int stride) {
  std::vector<Box> out;
  std::vector<int> outRanks;
  for (size_t b = 0; b < boxes.size(); ++b) {
    const int64_t extent = boxes[b].sizes[dim];
    const int64_t n = extent % parts == 0 ? parts : 1;
    for (int64_t p = 0; p < n; ++p) {
      Box box = boxes[b];
      box.offsets[dim] += extent / n * p;
      box.sizes[dim] = extent / n;
      out.push_back(box);
      outRanks.push_back(ranks[b] + int(p) * stride);
    }
  }
  boxes = std::move(out);
  ranks = std::move(outRanks);
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 5) {
    llvm::errs() << "usage: synth_torch_dist IN OUT TP EP\n";
    return 2;
  }
  const int64_t tp = std::atoll(argv[3]), ep = std::atoll(argv[4]);
  auto source = TorchDistSource::open(argv[1]);
  if (!source)
    return fail(source.takeError());
  std::vector<DistWriteEntry> entries;
  for (const SourceTensor &t : (*source)->tensors()) {
    DistWriteEntry e = DistWriteEntry::tensor(t.meta.name, t.meta.dtype, t.meta.shape);
    const Shape &shape = t.meta.shape;
    std::vector<Box> boxes{Box{Shape(shape.size(), 0), shape}};
    std::vector<int> ranks{0};
    llvm::StringRef name = t.meta.name;
    const bool stacked = name.contains(".experts.experts.") && shape.size() == 3;
    if (stacked) {
      // One chunk per expert, on its expert-parallel rank.
      boxes.clear();
      ranks.clear();
      for (int64_t x = 0; x < shape[0]; ++x) {
        Box box{Shape(3, 0), shape};
        box.offsets[0] = x;
        box.sizes[0] = 1;
        boxes.push_back(box);
        ranks.push_back(int(x * ep / shape[0] * tp));
      }
    }
    const bool column = name.endswith("linear_fc1.weight") || name.endswith("linear_qkv.weight") ||
                        name.endswith("word_embeddings.weight") || name.endswith("output_layer.weight") ||
                        name.endswith("up_proj.weight");
    const bool row = name.endswith("linear_fc2.weight") || name.endswith("linear_proj.weight");
    if (shape.size() >= 2 && (column || row))
      cut(boxes, ranks, row ? shape.size() - 1 : shape.size() - 2, tp, 1);
    e.chunks = std::move(boxes);
    e.chunkRanks = std::move(ranks);
    entries.push_back(std::move(e));
  }
  TorchDistWriteOptions options;
  options.ranks = int(tp * ep);
  options.copyFilesFrom = (*source)->root(); // config.json: the way to HF needs it
  auto writer = TorchDistWriter::create(argv[2], std::move(entries), options);
  if (!writer)
    return fail(writer.takeError());
  for (const SourceTensor &t : (*source)->tensors()) {
    auto bytes = (*source)->read(t);
    if (!bytes)
      return fail(bytes.takeError());
    if (auto e = (*writer)->write(t.meta.name, bytes->bytes()))
      return fail(std::move(e));
  }
  if (auto e = (*writer)->finish())
    return fail(std::move(e));
  return 0;
}
