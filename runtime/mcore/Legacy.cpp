#include "runtime/mcore/Legacy.h"

#include "runtime/io/FileOps.h"
#include "runtime/mcore/Errors.h"
#include "runtime/mcore/Format.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>

namespace ckptmap::mcore {

namespace {

std::optional<int64_t> intArg(const PyValue &ns, llvm::StringRef name) {
  const PyValue *v = ns.get(name);
  if (v && v->is(PyKind::Int))
    return v->integer;
  return std::nullopt;
}

std::optional<bool> boolArg(const PyValue &ns, llvm::StringRef name) {
  const PyValue *v = ns.get(name);
  if (v && v->is(PyKind::Bool))
    return v->boolean;
  return std::nullopt;
}

bool isTensorValue(const PyValue &v) {
  return v.isObjectOf("torch._utils", "_rebuild_tensor_v2") || v.isObjectOf("torch._utils", "_rebuild_tensor_v3") ||
         v.isObjectOf("torch._utils", "_rebuild_parameter");
}

/// "123.rest" -> 123 and "rest"; nullopt if no number.
std::optional<std::pair<int64_t, llvm::StringRef>> leadingNumber(llvm::StringRef s) {
  size_t n = s.find_first_not_of("0123456789");
  if (n == 0 || n == llvm::StringRef::npos)
    return std::nullopt;
  int64_t v = 0;
  if (s.take_front(n).getAsInteger(10, v))
    return std::nullopt;
  return std::make_pair(v, s.drop_front(n));
}

/// An expert parameter's (prefix, local index): "...mlp.experts.local_experts.3.linear_fc1.weight"
/// -> ("...mlp.experts", 3); TE grouped "...mlp.experts.linear_fc1.weight3" -> ("...mlp.experts", 3).
std::optional<std::pair<std::string, int64_t>> expertOf(llvm::StringRef name) {
  size_t at = name.find(".local_experts.");
  if (at != llvm::StringRef::npos) {
    auto num = leadingNumber(name.drop_front(at + strlen(".local_experts.")));
    if (num && num->second.startswith("."))
      return std::make_pair(name.take_front(at).str(), num->first);
    return std::nullopt;
  }
  ParamName p = splitParamName(name);
  if ((p.leaf == "linear_fc1" || p.leaf == "linear_fc2") && p.module.endswith(".experts." + p.leaf.str())) {
    for (llvm::StringRef stem : {"weight", "bias"}) {
      if (p.param.startswith(stem) && p.param.size() > stem.size()) {
        auto num = leadingNumber(p.param.drop_front(stem.size()).str() + ".");
        if (num)
          return std::make_pair(p.module.drop_back(p.leaf.size() + 1).str(), num->first);
      }
    }
  }
  return std::nullopt;
}

} // namespace

// ---------------------------------------------------------------------------------------------

llvm::Expected<std::unique_ptr<LegacyRankFile>> LegacyRankFile::open(const std::string &path, bool verifyCrc) {
  std::unique_ptr<LegacyRankFile> f(new LegacyRankFile());
  f->path_ = path;
  f->dir_ = llvm::sys::path::parent_path(path).str();
  f->verifyCrc_ = verifyCrc;
  auto mapped = MappedFile::open(path);
  if (!mapped)
    return mapped.takeError();
  f->file_ = std::move(*mapped);
  auto archive = TorchSaveArchive::open(f->file_->bytes(), path);
  if (!archive)
    return archive.takeError();
  f->archive_ = std::move(*archive);
  const PyValue &root = f->archive_->pickle().root();
  if (!root.is(PyKind::Dict))
    return makeError(path + ": holds " + pyRepr(root, 1, 80) + ", not a checkpoint dict");
  const PyValue *model = nullptr;
  for (size_t i = 0; i + 1 < root.items.size(); i += 2) {
    const PyValue *k = root.items[i], *v = root.items[i + 1];
    if (!k->is(PyKind::Str)) {
      f->skipped_.push_back(pyRepr(*k, 2, 80));
      continue;
    }
    llvm::StringRef key = k->text;
    if (key == "model") {
      model = v;
    } else if (key.startswith("model") && key.drop_front(5).find_first_not_of("0123456789") == llvm::StringRef::npos) {
      return makeError(path + ": holds '" + key + "': virtual pipeline stages (several model chunks per rank) "
                                                  "are not supported");
    } else if (key == "args") {
      if (v->isObjectOf("argparse", "Namespace")) {
        LegacyArgs &a = f->args_;
        a.tensorParallel = intArg(*v, "tensor_model_parallel_size");
        a.pipelineParallel = intArg(*v, "pipeline_model_parallel_size");
        a.expertParallel = intArg(*v, "expert_model_parallel_size");
        a.expertTensorParallel = intArg(*v, "expert_tensor_parallel_size");
        a.numLayers = intArg(*v, "num_layers");
        a.numExperts = intArg(*v, "num_experts");
        a.hiddenSize = intArg(*v, "hidden_size");
        a.paddedVocabSize = intArg(*v, "padded_vocab_size");
        a.swiglu = boolArg(*v, "swiglu");
        if (!a.swiglu)
          a.swiglu = boolArg(*v, "gated_linear_unit");
      }
    } else if (key == "iteration") {
      if (v->is(PyKind::Int))
        f->iteration_ = v->integer;
    } else if (key != "checkpoint_version") {
      f->skipped_.push_back(key.str());
    }
  }
  if (!model || !model->is(PyKind::Dict))
    return makeError(path + ": no 'model' state dict");
  for (size_t i = 0; i + 1 < model->items.size(); i += 2) {
    const PyValue *k = model->items[i], *v = model->items[i + 1];
    if (!k->is(PyKind::Str))
      return makeError(path + ": model key " + pyRepr(*k, 2, 80) + " is not a string");
    std::string name = k->text.str();
    if (!isTensorValue(*v)) {
      f->skipped_.push_back(name + " (" + pyRepr(*v, 2, 40) + ")");
      continue;
    }
    auto t = storedTensor(*v, path + ": model['" + name + "']");
    if (!t)
      return t.takeError();
    auto storage = f->archive_->storage(*t, false);
    if (!storage)
      return storage.takeError();
    f->tensors_.push_back(SourceTensor{TensorMeta{name, t->dtype, t->size}, path});
    f->stored_[name] = std::move(*t);
  }
  std::sort(f->tensors_.begin(), f->tensors_.end(),
            [](const SourceTensor &a, const SourceTensor &b) { return a.meta.name < b.meta.name; });
  return f;
}

llvm::Expected<TensorBytes> LegacyRankFile::read(const SourceTensor &tensor) const {
  auto it = stored_.find(tensor.meta.name);
  if (it == stored_.end())
    return makeError(path_ + ": no tensor '" + tensor.meta.name + "'");
  const StoredTensor &t = it->second;
  auto storage = archive_->storage(t, verifyCrc_);
  if (!storage)
    return storage.takeError();
  const size_t esize = dtypeSize(t.dtype);
  const size_t bytes = size_t(numElements(t.size)) * esize;
  bool contiguous = true;
  Shape expect = contiguousStrides(t.size);
  for (size_t d = 0; d < t.size.size(); ++d)
    if (t.size[d] > 1 && t.stride[d] != expect[d])
      contiguous = false;
  if (contiguous)
    return TensorBytes(storage->data() + t.offset * int64_t(esize), bytes, file_);
  std::vector<uint8_t> out(bytes);
  Shape zeros(t.size.size(), 0);
  copyBlock(out.data(), t.size, zeros, StridedView{storage->data(), t.offset, t.stride}, zeros, t.size, esize);
  return TensorBytes::owned(std::move(out));
}

// ---------------------------------------------------------------------------------------------

namespace {

struct RankName {
  std::string name;
  int64_t tp;
  std::vector<int64_t> suffixes;
};

std::optional<RankName> parseRankName(llvm::StringRef name) {
  if (!name.consume_front("mp_rank_") || name.size() < 2)
    return std::nullopt;
  RankName r;
  if (name.take_front(2).getAsInteger(10, r.tp))
    return std::nullopt;
  name = name.drop_front(2);
  while (!name.empty()) {
    int64_t v;
    if (name.size() < 4 || name[0] != '_' || name.substr(1, 3).getAsInteger(10, v) ||
        name.substr(1, 3).find_first_not_of("0123456789") != llvm::StringRef::npos)
      return std::nullopt;
    r.suffixes.push_back(v);
    name = name.drop_front(4);
  }
  if (r.suffixes.size() > 2)
    return std::nullopt;
  return r;
}

std::string rankDirName(int64_t tp, int64_t pp, int64_t ep, int64_t ppSize, int64_t epSize) {
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "mp_rank_%02lld", (long long)tp);
  if (ppSize > 1)
    n += std::snprintf(buf + n, sizeof buf - n, "_%03lld", (long long)pp);
  if (epSize > 1)
    std::snprintf(buf + n, sizeof buf - n, "_%03lld", (long long)ep);
  return buf;
}

std::string sizesText(int64_t tp, int64_t pp, int64_t ep) {
  return "tensor_model_parallel_size " + std::to_string(tp) + ", pipeline_model_parallel_size " + std::to_string(pp) +
         ", expert_model_parallel_size " + std::to_string(ep);
}

} // namespace

const LegacyRankFile *LegacySource::rankFile(int64_t tp, int64_t pp, int64_t ep) const {
  for (const Rank &r : ranks_)
    if (r.tp == tp && r.pp == pp && r.ep == ep)
      return r.file.get();
  return nullptr;
}

llvm::Expected<std::unique_ptr<LegacySource>> LegacySource::open(const std::string &dir, Options options) {
  std::unique_ptr<LegacySource> src(new LegacySource());
  src->root_ = dir;
  src->options_ = options;
  std::string iterDir = dir;
  if (llvm::sys::fs::exists(joinPath(dir, "latest_checkpointed_iteration.txt"))) {
    auto resolved = resolveIterationDir(dir);
    if (!resolved)
      return resolved.takeError();
    iterDir = *resolved;
  }
  src->layout_.iterationDir = iterDir;

  // The rank directories present.
  std::vector<RankName> found;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(iterDir, ec), end; it != end && !ec; it.increment(ec)) {
    llvm::StringRef name = llvm::sys::path::filename(it->path());
    if (!name.startswith("mp_rank_"))
      continue;
    auto parsed = parseRankName(name);
    if (!parsed)
      return makeError(joinPath(iterDir, name) + ": not a rank directory name (mp_rank_TT[_PPP][_EEE])");
    parsed->name = name.str();
    found.push_back(*parsed);
  }
  if (ec)
    return makeError(iterDir + ": cannot list: " + ec.message());
  if (found.empty())
    return makeError(iterDir + ": no mp_rank_* directories (not a legacy Megatron checkpoint)");
  std::sort(found.begin(), found.end(), [](const RankName &a, const RankName &b) { return a.name < b.name; });

  auto fileIn = [&](const std::string &rankDir) {
    std::string p = joinPath(joinPath(iterDir, rankDir), "model_optim_rng.pt");
    if (!llvm::sys::fs::exists(p) && llvm::sys::fs::exists(joinPath(joinPath(iterDir, rankDir), "model_rng.pt")))
      p = joinPath(joinPath(iterDir, rankDir), "model_rng.pt");
    return p;
  };

  // The parallel sizes: from the first file's args, else from the directory names.
  auto first = LegacyRankFile::open(fileIn(found.front().name), options.verifyCrc);
  if (!first)
    return first.takeError();
  const LegacyArgs args = (*first)->args();
  src->args_ = args;
  const std::string argsFrom = (*first)->path();
  int64_t T = 0, P = 0, E = 0;
  size_t maxSuffixes = 0;
  for (const RankName &r : found) {
    T = std::max(T, r.tp + 1);
    maxSuffixes = std::max(maxSuffixes, r.suffixes.size());
  }
  if (args.tensorParallel)
    T = *args.tensorParallel;
  P = args.pipelineParallel.value_or(0);
  E = args.expertParallel.value_or(0);
  if (!P || !E) {
    if (maxSuffixes == 2) {
      int64_t pMax = 0, eMax = 0;
      for (const RankName &r : found)
        if (r.suffixes.size() == 2) {
          pMax = std::max(pMax, r.suffixes[0] + 1);
          eMax = std::max(eMax, r.suffixes[1] + 1);
        }
      P = P ? P : pMax;
      E = E ? E : eMax;
    } else if (maxSuffixes == 1) {
      if (!P && !E)
        return makeError(argsFrom + ": its args give neither pipeline_model_parallel_size nor "
                                    "expert_model_parallel_size, so the _NNN of the rank directories is ambiguous");
      int64_t sMax = 0;
      for (const RankName &r : found)
        if (!r.suffixes.empty())
          sMax = std::max(sMax, r.suffixes[0] + 1);
      if (!P)
        P = E > 1 ? 1 : sMax;
      if (!E)
        E = P > 1 ? 1 : sMax;
    } else {
      P = P ? P : 1;
      E = E ? E : 1;
    }
  }
  if (T < 1 || P < 1 || E < 1)
    return makeError(argsFrom + ": invalid parallel sizes (" + sizesText(T, P, E) + ")");
  if (args.expertTensorParallel && *args.expertTensorParallel != T)
    return makeError(argsFrom + ": expert_tensor_parallel_size " + std::to_string(*args.expertTensorParallel) +
                     " differs from tensor_model_parallel_size " + std::to_string(T) + "; not supported");
  src->layout_.tensorParallel = T;
  src->layout_.pipelineParallel = P;
  src->layout_.expertParallel = E;

  // Exactly the expected rank directories.
  std::set<std::string> present;
  for (const RankName &r : found)
    present.insert(r.name);
  std::set<std::string> expected;
  for (int64_t p = 0; p < P; ++p)
    for (int64_t e = 0; e < E; ++e)
      for (int64_t t = 0; t < T; ++t) {
        std::string name = rankDirName(t, p, e, P, E);
        expected.insert(name);
        if (!present.count(name))
          return makeError(joinPath(iterDir, name) + ": rank directory missing (" + sizesText(T, P, E) + ", from " +
                           argsFrom + ")");
      }
  for (const std::string &name : present)
    if (!expected.count(name))
      return makeError(joinPath(iterDir, name) + ": unexpected rank directory for " + sizesText(T, P, E) + " (from " +
                       argsFrom + ")");

  for (int64_t p = 0; p < P; ++p)
    for (int64_t e = 0; e < E; ++e)
      for (int64_t t = 0; t < T; ++t) {
        std::string name = rankDirName(t, p, e, P, E);
        std::unique_ptr<LegacyRankFile> file;
        if (fileIn(name) == argsFrom) {
          file = std::move(*first);
        } else {
          auto opened = LegacyRankFile::open(fileIn(name), options.verifyCrc);
          if (!opened)
            return opened.takeError();
          file = std::move(*opened);
        }
        const LegacyArgs &a = file->args();
        if ((a.tensorParallel && *a.tensorParallel != T) || (a.pipelineParallel && *a.pipelineParallel != P) ||
            (a.expertParallel && *a.expertParallel != E))
          return makeError(file->path() + ": its args give " +
                           sizesText(a.tensorParallel.value_or(-1), a.pipelineParallel.value_or(-1),
                                     a.expertParallel.value_or(-1)) +
                           ", but " + argsFrom + " gives " + sizesText(T, P, E));
        src->ranks_.push_back(Rank{t, p, e, std::move(file)});
      }

  // Pipeline stages: layer numbers are local to each stage.
  std::vector<int64_t> offsets(P, 0);
  src->layout_.stageLayers.assign(P, 0);
  for (int64_t p = 0; p < P; ++p) {
    const LegacyRankFile *f = src->rankFile(0, p, 0);
    int64_t count = 0;
    for (const SourceTensor &t : f->tensors()) {
      llvm::StringRef n = t.meta.name;
      if (n.consume_front("decoder.layers."))
        if (auto num = leadingNumber(n))
          count = std::max(count, num->first + 1);
    }
    src->layout_.stageLayers[p] = count;
    if (p + 1 < P)
      offsets[p + 1] = offsets[p] + count;
  }
  const int64_t totalLayers = offsets[P - 1] + src->layout_.stageLayers[P - 1];
  if (args.numLayers && *args.numLayers != totalLayers) {
    std::string counts;
    for (int64_t p = 0; p < P; ++p)
      counts += (p ? " + " : "") + std::to_string(src->layout_.stageLayers[p]);
    return makeError(iterDir + ": the pipeline stages hold " + counts + " = " + std::to_string(totalLayers) +
                     " decoder layers, but args.num_layers is " + std::to_string(*args.numLayers) + " (from " +
                     argsFrom + ")");
  }

  // Local experts per rank and expert module.
  std::vector<std::map<std::string, int64_t>> localExperts(src->ranks_.size());
  for (size_t r = 0; r < src->ranks_.size(); ++r) {
    std::map<std::string, std::set<int64_t>> seen;
    for (const SourceTensor &t : src->ranks_[r].file->tensors())
      if (auto ex = expertOf(t.meta.name))
        seen[ex->first].insert(ex->second);
    for (auto &[prefix, ids] : seen) {
      int64_t n = int64_t(ids.size());
      if (*ids.begin() != 0 || *ids.rbegin() != n - 1)
        return makeError(src->ranks_[r].file->path() + ": the experts of " + prefix + " are not numbered 0.." +
                         std::to_string(n - 1));
      if (args.numExperts && n * E != *args.numExperts)
        return makeError(src->ranks_[r].file->path() + ": " + prefix + " holds " + std::to_string(n) +
                         " local experts, " + std::to_string(n * E) + " in all with expert_model_parallel_size " +
                         std::to_string(E) + ", but args.num_experts is " + std::to_string(*args.numExperts));
      localExperts[r][prefix] = n;
    }
  }

  auto globalName = [&](size_t r, llvm::StringRef local) -> std::string {
    std::string name = local.str();
    if (auto ex = expertOf(local)) {
      int64_t global = src->ranks_[r].ep * localExperts[r][ex->first] + ex->second;
      size_t at = name.find(".local_experts.", ex->first.size());
      if (at != std::string::npos && at == ex->first.size()) {
        size_t numAt = at + strlen(".local_experts.");
        size_t numEnd = name.find('.', numAt);
        name = name.substr(0, numAt) + std::to_string(global) + name.substr(numEnd);
      } else { // grouped: the number ends the name
        size_t numAt = name.find_last_not_of("0123456789") + 1;
        name = name.substr(0, numAt) + std::to_string(global);
      }
    }
    llvm::StringRef n = name;
    if (n.consume_front("decoder.layers."))
      if (auto num = leadingNumber(n))
        return "decoder.layers." + std::to_string(num->first + offsets[src->ranks_[r].pp]) + num->second.str();
    return name;
  };

  // Is a linear_fc1 gated ([gate; up])? From its linear_fc2 beside it, cross-checked with args.
  auto gated = [&](size_t r, const ParamName &pn, const SourceTensor &t) -> llvm::Expected<bool> {
    const LegacyRankFile &f = *src->ranks_[r].file;
    std::string suffix = pn.param.startswith("weight") ? pn.param.drop_front(6).str()
                         : pn.param.startswith("bias") ? pn.param.drop_front(4).str()
                                                       : std::string();
    std::string fc1 = pn.module.str() + ".weight" + suffix;
    std::string fc2 = pn.module.drop_back(pn.leaf.size()).str() + "linear_fc2.weight" + suffix;
    const SourceTensor *w1 = f.find(fc1), *w2 = f.find(fc2);
    if (w1 && w2 && w1->meta.shape.size() == 2 && w2->meta.shape.size() == 2) {
      int64_t rows = w1->meta.shape[0], cols = w2->meta.shape[1];
      bool isGated = rows == 2 * cols;
      if (!isGated && rows != cols)
        return makeError(f.path() + ": cannot tell whether '" + fc1 + "' is gated: it has " + std::to_string(rows) +
                         " rows, '" + fc2 + "' has " + std::to_string(cols) + " columns (expected equal, or twice)");
      if (args.swiglu && *args.swiglu != isGated)
        return makeError(f.path() + ": '" + fc1 + "' has " + std::to_string(rows) + " rows for " + std::to_string(cols) +
                         " columns of '" + fc2 + "', so it is " + (isGated ? "" : "not ") + "gated, but args.swiglu is " +
                         (*args.swiglu ? "True" : "False"));
      return isGated;
    }
    if (args.swiglu)
      return *args.swiglu;
    return makeError(f.path() + ": cannot tell whether '" + t.meta.name + "' is gated: no '" + fc2 +
                     "' beside it and no swiglu in args");
  };

  // Merge.
  std::map<std::string, std::set<std::string>> skipped;
  for (size_t r = 0; r < src->ranks_.size(); ++r) {
    const Rank &rank = src->ranks_[r];
    for (const std::string &s : rank.file->skipped()) {
      size_t paren = s.find(" (");
      skipped[paren == std::string::npos ? s : globalName(r, llvm::StringRef(s).take_front(paren)) + s.substr(paren)];
    }
    for (const SourceTensor &t : rank.file->tensors()) {
      const std::string name = globalName(r, t.meta.name);
      ParamName pn = splitParamName(t.meta.name);
      TpSplit split = paramSplit(pn);
      const Shape &ls = t.meta.shape;
      if (split != TpSplit::Replicated && ls.empty())
        return makeError(rank.file->path() + ": '" + t.meta.name + "' is a scalar, but " + pn.leaf.str() +
                         " is split across tensor-parallel ranks");
      bool isGated = false;
      if (split == TpSplit::Column && moduleRule(pn.leaf)->mayBeGated) {
        auto g = gated(r, pn, t);
        if (!g)
          return g.takeError();
        isGated = *g;
        if (isGated && ls[0] % 2)
          return makeError(rank.file->path() + ": gated '" + t.meta.name + "' has an odd number of rows " +
                           std::to_string(ls[0]));
      }
      Shape gs = ls;
      if (split == TpSplit::Column)
        gs[0] *= T;
      else if (split == TpSplit::Row)
        gs.back() *= T;
      const int64_t slot = split == TpSplit::Replicated ? 0 : rank.tp;

      auto [it, fresh] = src->merged_.try_emplace(name);
      Merged &m = it->second;
      if (fresh) {
        m.dtype = t.meta.dtype;
        m.shape = gs;
        m.localShape = ls;
      } else if (m.dtype != t.meta.dtype || m.localShape != ls) {
        const Holder &h = m.holders.begin()->second.front();
        return makeError(rank.file->path() + ": '" + t.meta.name + "' is " + dtypeName(t.meta.dtype).data() + " " +
                         formatShape(ls) + ", but " + src->ranks_[h.rank].file->path() + " holds '" + h.local + "' as " +
                         dtypeName(m.dtype).data() + " " + formatShape(m.localShape));
      }
      auto &holders = m.holders[slot];
      holders.push_back(Holder{r, t.meta.name});
      if (holders.size() > 1)
        continue;
      // The blocks this shard supplies, placed in the global tensor.
      Shape zeros(ls.size(), 0);
      if (split == TpSplit::Replicated) {
        m.pieces.push_back(Piece{slot, Box{zeros, ls}, zeros});
      } else if (split == TpSplit::Row) {
        Shape at = zeros;
        at.back() = rank.tp * ls.back();
        m.pieces.push_back(Piece{slot, Box{zeros, ls}, at});
      } else if (!isGated) {
        Shape at = zeros;
        at[0] = rank.tp * ls[0];
        m.pieces.push_back(Piece{slot, Box{zeros, ls}, at});
      } else {
        const int64_t half = ls[0] / 2;
        Shape sizes = ls;
        sizes[0] = half;
        Shape upFrom = zeros, gateAt = zeros, upAt = zeros;
        upFrom[0] = half;
        gateAt[0] = rank.tp * half;
        upAt[0] = T * half + rank.tp * half;
        m.pieces.push_back(Piece{slot, Box{zeros, sizes}, gateAt});
        m.pieces.push_back(Piece{slot, Box{upFrom, sizes}, upAt});
      }
    }
  }
  for (auto &[name, m] : src->merged_) {
    std::vector<Box> boxes;
    for (const Piece &p : m.pieces)
      boxes.push_back(Box{p.globalOffsets, p.local.sizes});
    if (auto err = checkExactCover(iterDir, name, m.shape, boxes))
      return err;
    const Holder &h = m.holders.begin()->second.front();
    src->tensors_.push_back(SourceTensor{TensorMeta{name, m.dtype, m.shape}, src->ranks_[h.rank].file->path()});
  }
  // merged_ is ordered by name, so tensors_ is sorted.
  for (auto &[s, unused] : skipped)
    src->skipped_.push_back(s);
  return src;
}

llvm::Expected<TensorBytes> LegacySource::read(const SourceTensor &tensor) const {
  auto it = merged_.find(tensor.meta.name);
  if (it == merged_.end())
    return makeError(root_ + ": no tensor '" + tensor.meta.name + "'");
  const Merged &m = it->second;
  const size_t esize = dtypeSize(m.dtype);
  const Shape localStrides = contiguousStrides(m.localShape);
  std::vector<uint8_t> out(size_t(numElements(m.shape)) * esize);
  auto readLocal = [&](const Holder &h) -> llvm::Expected<TensorBytes> {
    const LegacyRankFile &f = *ranks_[h.rank].file;
    const SourceTensor *t = f.find(h.local);
    if (!t)
      return makeError(f.path() + ": no tensor '" + h.local + "'");
    return f.read(*t);
  };
  for (const auto &[slot, holders] : m.holders) {
    auto primary = readLocal(holders.front());
    if (!primary)
      return primary.takeError();
    for (const Piece &p : m.pieces)
      if (p.slot == slot)
        copyBlock(out.data(), m.shape, p.globalOffsets, StridedView{primary->data(), 0, localStrides}, p.local.offsets,
                  p.local.sizes, esize);
    if (!options_.checkReplicas)
      continue;
    for (size_t i = 1; i < holders.size(); ++i) {
      auto copy = readLocal(holders[i]);
      if (!copy)
        return copy.takeError();
      if (copy->size() != primary->size() || std::memcmp(copy->data(), primary->data(), copy->size()) != 0)
        return makeError(ranks_[holders[i].rank].file->path() + ": '" + holders[i].local + "' differs from '" +
                         holders.front().local + "' in " + ranks_[holders.front().rank].file->path() +
                         ", though both are copies of one shard of '" + tensor.meta.name + "'");
    }
  }
  return TensorBytes::owned(std::move(out));
}

} // namespace ckptmap::mcore
