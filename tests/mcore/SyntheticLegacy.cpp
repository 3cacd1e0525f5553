#include "SyntheticLegacy.h"

#include "runtime/mcore/PickleWriter.h"
#include "runtime/mcore/TorchSave.h"
#include "runtime/mcore/Zip.h"

#include "llvm/Support/FileSystem.h"

#include <cstdio>
#include <regex>

namespace ckptmap::mcore::test {

std::vector<uint8_t> legacyRankArchive(const std::map<std::string, int64_t> &intArgs, const std::optional<bool> &swiglu,
                                       const std::map<std::string, StTensor> &model) {
  PickleOut p(2);
  p.op('}');
  p.op('(');
  p.str("args");
  p.global2("argparse", "Namespace");
  p.op(')');
  p.op(0x81);
  p.op('}');
  p.op('(');
  for (const auto &[k, v] : intArgs) {
    p.str(k);
    p.integer(v);
  }
  if (swiglu) {
    p.str("swiglu");
    p.boolean(*swiglu);
  }
  p.op('u');
  p.op('b');
  p.str("checkpoint_version");
  p.real(3.0);
  p.str("iteration");
  p.integer(7);
  p.str("model");
  p.op('}');
  p.op('(');
  int key = 0;
  for (const auto &[name, t] : model) {
    p.str(name);
    p.global2("torch._utils", "_rebuild_tensor_v2");
    p.op('(');
    p.op('(');
    p.str("storage");
    p.global2("torch", torchStorageClass(t.dtype));
    p.str(std::to_string(key++));
    p.str("cpu");
    p.integer(numElements(t.shape));
    p.op('t');
    p.op('Q');
    p.integer(0);
    p.op('(');
    for (int64_t d : t.shape)
      p.integer(d);
    p.op('t');
    p.op('(');
    Shape stride(t.shape.size());
    int64_t s = 1;
    for (size_t d = t.shape.size(); d-- > 0;) {
      stride[d] = s;
      s *= t.shape[d];
    }
    for (int64_t d : stride)
      p.integer(d);
    p.op('t');
    p.boolean(false);
    p.global2("collections", "OrderedDict");
    p.op(')');
    p.op('R');
    p.op('t');
    p.op('R');
  }
  p.op('u');
  p.str("optimizer");
  p.op('}');
  p.op('u');
  std::vector<uint8_t> pkl = p.finish();

  std::vector<uint8_t> out;
  TorchArchiveWriter w(
      [&](llvm::ArrayRef<uint8_t> b) {
        out.insert(out.end(), b.begin(), b.end());
        return llvm::Error::success();
      },
      "model_optim_rng");
  REQUIRE(!w.addRecord("data.pkl", pkl));
  REQUIRE(!w.addRecord(".format_version", std::vector<uint8_t>{'1'}));
  REQUIRE(!w.addRecord("byteorder", std::vector<uint8_t>{'l', 'i', 't', 't', 'l', 'e'}));
  key = 0;
  for (const auto &[name, t] : model)
    REQUIRE(!w.addRecord("data/" + std::to_string(key++), t.bytes));
  REQUIRE(!w.finish());
  return out;
}

namespace {

enum class Split { Whole, Rows, GatedRows, Columns };

// The sharding of Megatron-Core's local spec, restated for the test.
Split splitOf(const std::string &name) {
  static const std::regex rows(R"((linear_qkv|linear_q_down_proj|linear_q_up_proj|linear_kv_down_proj|linear_kv_up_proj|eh_proj|word_embeddings|output_layer)\.weight$)");
  static const std::regex gated(R"(linear_fc1\.weight$)");
  static const std::regex cols(R"((linear_proj|linear_fc2)\.weight$)");
  if (std::regex_search(name, gated))
    return Split::GatedRows;
  if (std::regex_search(name, rows))
    return Split::Rows;
  if (std::regex_search(name, cols))
    return Split::Columns;
  return Split::Whole;
}

StTensor shard(const StTensor &t, Split split, int r, int n) {
  if (split == Split::Whole)
    return t;
  const size_t es = dtypeSize(t.dtype);
  const int64_t rows = t.shape[0], cols = t.shape.size() > 1 ? t.shape[1] : 1;
  StTensor out{t.dtype, t.shape, {}};
  auto takeRows = [&](int64_t from, int64_t count) {
    out.bytes.insert(out.bytes.end(), t.bytes.begin() + long(from * cols * es), t.bytes.begin() + long((from + count) * cols * es));
  };
  if (split == Split::Rows) {
    out.shape[0] = rows / n;
    takeRows(r * rows / n, rows / n);
  } else if (split == Split::GatedRows) {
    const int64_t half = rows / 2, part = half / n;
    out.shape[0] = 2 * part;
    takeRows(r * part, part);
    takeRows(half + r * part, part);
  } else {
    const int64_t part = cols / n;
    out.shape[1] = part;
    for (int64_t i = 0; i < rows; ++i)
      out.bytes.insert(out.bytes.end(), t.bytes.begin() + long((i * cols + r * part) * es),
                       t.bytes.begin() + long((i * cols + r * part + part) * es));
  }
  return out;
}

} // namespace

void writeSyntheticLegacy(const std::string &dir, const std::map<std::string, StTensor> &global,
                          const SyntheticLayout &layout) {
  const int local = layout.numExperts / layout.ep;
  std::vector<int> offset(layout.pp, 0);
  for (int p = 1; p < layout.pp; ++p)
    offset[p] = offset[p - 1] + layout.stageLayers[p - 1];
  int numLayers = 0;
  for (int n : layout.stageLayers)
    numLayers += n;
  static const std::regex layer(R"(^decoder\.layers\.(\d+)\.(.*)$)");
  static const std::regex expert(R"(^(.*\.local_experts\.)(\d+)(\..*)$)");
  std::map<std::string, int64_t> args{{"tensor_model_parallel_size", layout.tp},
                                      {"pipeline_model_parallel_size", layout.pp},
                                      {"expert_model_parallel_size", layout.ep},
                                      {"num_layers", layout.argsNumLayers.value_or(numLayers)},
                                      {"num_experts", layout.argsNumExperts.value_or(layout.numExperts)}};
  REQUIRE(!llvm::sys::fs::create_directories(dir + "/iter_0000007"));
  writeFile(dir + "/latest_checkpointed_iteration.txt", {'7'});
  for (int p = 0; p < layout.pp; ++p)
    for (int e = 0; e < layout.ep; ++e)
      for (int t = 0; t < layout.tp; ++t) {
        std::map<std::string, StTensor> model;
        for (const auto &[name, tensor] : global) {
          std::string n = name;
          int stage = name.rfind("embedding.", 0) == 0 ? 0 : layout.pp - 1;
          std::smatch m;
          if (std::regex_match(n, m, layer)) {
            int L = std::stoi(m[1]);
            stage = 0;
            while (stage + 1 < layout.pp && L >= offset[stage + 1])
              ++stage;
            n = "decoder.layers." + std::to_string(L - offset[stage]) + "." + m[2].str();
          }
          if (stage != p)
            continue;
          if (std::regex_match(n, m, expert)) {
            int g = std::stoi(m[2]);
            if (g / local != e)
              continue;
            n = m[1].str() + std::to_string(g % local) + m[3].str();
          }
          model[n] = shard(tensor, splitOf(n), t, layout.tp);
        }
        if (layout.tweak)
          layout.tweak(t, p, e, model);
        char rank[64];
        std::snprintf(rank, sizeof rank, "/iter_0000007/mp_rank_%02d_%03d_%03d", t, p, e);
        REQUIRE(!llvm::sys::fs::create_directories(dir + rank));
        writeFile(dir + rank + "/model_optim_rng.pt",
                  legacyRankArchive(args, layout.writeSwiglu ? std::optional<bool>(layout.swigluValue) : std::nullopt, model));
      }
}

} // namespace ckptmap::mcore::test
