#include "runtime/mcore/TorchDistWriter.h"

#include "runtime/io/FileOps.h"
#include "runtime/mcore/Errors.h"
#include "runtime/mcore/ModuleTable.h"
#include "runtime/mcore/PickleWriter.h"
#include "runtime/mcore/TorchDist.h"
#include "runtime/mcore/TorchSave.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>
#include <map>

namespace ckptmap::mcore {

namespace {

constexpr const char *kMetaModule = "torch.distributed.checkpoint.metadata";
constexpr const char *kFsModule = "torch.distributed.checkpoint.filesystem";
constexpr llvm::StringLiteral kTrackerFile = "latest_checkpointed_iteration.txt";

std::string iterationName(int64_t iteration) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "iter_%07lld", (long long)iteration);
  return buf;
}

/// Emits the Metadata object graph as CPython's pickler does for the objects
/// torch.distributed.checkpoint builds: classes and interned attribute names memoized once,
/// each key string saved once per place it comes from (the global plan, each rank's results).
class MetadataPickler {
public:
  PickleOut p{4};

  void str(llvm::StringRef identity, llvm::StringRef s) {
    std::string key = identity.str() + '\0' + s.str();
    auto it = memo_.find(key);
    if (it != memo_.end()) {
      p.get(it->second);
    } else {
      p.str(s);
      memo_[key] = p.memoize();
    }
    p.endSave();
  }
  void attr(llvm::StringRef name) { str("attr", name); }
  void global(llvm::StringRef module, llvm::StringRef name, llvm::StringRef moduleIdentity) {
    std::string key = "global\0" + module.str() + "." + name.str();
    if (auto it = memo_.find(key); it != memo_.end()) {
      p.get(it->second);
      p.endSave();
      return;
    }
    str(moduleIdentity, module);
    str("name:" + module.str(), name);
    p.op(0x93);
    memo_[key] = p.memoize();
    p.endSave();
  }
  /// cls.__new__(cls) for a dataclass; the caller saves the state (or not) and calls endObject.
  void newObject(llvm::StringRef module, llvm::StringRef name) {
    global(module, name, "mod:" + module.str());
    p.op(')');
    p.endSave();
    p.op(0x81);
    p.memoize();
  }
  void build() { p.op('b'); }
  void endObject() { p.endSave(); }
  void none() {
    p.none();
    p.endSave();
  }
  void boolean(bool v) {
    p.boolean(v);
    p.endSave();
  }
  void integer(int64_t v) {
    p.integer(v);
    p.endSave();
  }
  /// A tuple of already-saved-by-callback items.
  template <typename F> void tuple(size_t n, F saveItems) {
    if (n == 0) {
      p.op(')');
      p.endSave();
      return;
    }
    if (n > 3)
      p.op('(');
    saveItems();
    p.op(n == 1 ? 0x85 : n == 2 ? 0x86 : n == 3 ? 0x87 : 't');
    p.memoize();
    p.endSave();
  }
  void size(llvm::ArrayRef<int64_t> dims) { // torch.Size(dims), via its __reduce__
    global("torch", "Size", "mod:torch.Size");
    tuple(1, [&] {
      tuple(dims.size(), [&] {
        for (int64_t d : dims)
          integer(d);
      });
    });
    p.op('R');
    p.memoize();
    p.endSave();
  }
  /// A dict whose items the callback saves; n items (CPython: one item -> SETITEM, else
  /// MARK ... SETITEMS in batches of 1000).
  template <typename F> void dict(size_t n, F saveItem) {
    p.op('}');
    p.memoize();
    if (n == 1) {
      saveItem(0);
      p.op('s');
    } else if (n > 1) {
      size_t i = 0, batch = 0;
      do {
        p.op('(');
        for (batch = 0; i < n && batch < 1000; ++i, ++batch)
          saveItem(i);
        p.op('u');
      } while (batch == 1000);
    }
    p.endSave();
  }
  template <typename F> void list(size_t n, F saveItem) {
    p.op(']');
    p.memoize();
    if (n == 1) {
      saveItem(0);
      p.op('a');
    } else if (n > 1) {
      size_t i = 0;
      do {
        p.op('(');
        for (size_t batch = 0; i < n && batch < 1000; ++i, ++batch)
          saveItem(i);
        p.op('e');
      } while (i < n);
    }
    p.endSave();
  }
  /// A singleton object made by calling `module.name(arg)` (torch.strided's layout, the
  /// memory format enum), memoized under `identity`.
  template <typename F> void singleton(llvm::StringRef identity, F make) {
    if (auto it = memo_.find(identity.str()); it != memo_.end()) {
      p.get(it->second);
      p.endSave();
      return;
    }
    make();
    p.op('R');
    memo_[identity.str()] = p.memoize();
    p.endSave();
  }

private:
  std::map<std::string, uint32_t> memo_;
};

uint64_t fnv1a(llvm::StringRef s, uint64_t h) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

} // namespace

DistWriteEntry DistWriteEntry::tensor(std::string key, DType dtype, Shape shape) {
  DistWriteEntry e;
  e.key = std::move(key);
  e.dtype = dtype;
  e.shape = std::move(shape);
  return e;
}

DistWriteEntry DistWriteEntry::object(std::string key, const nlohmann::json &value) {
  DistWriteEntry e;
  e.key = std::move(key);
  e.isTensor = false;
  e.archive = objectArchive(pickleJson(value));
  return e;
}

std::string TorchDistWriter::dataDir() const {
  return options_.iteration ? joinPath(dir_->path(), iterationName(*options_.iteration)) : dir_->path();
}

TorchDistWriter::~TorchDistWriter() {
  for (RankFile &r : ranks_)
    if (r.fd >= 0)
      ::close(r.fd);
}

llvm::Expected<std::unique_ptr<TorchDistWriter>> TorchDistWriter::create(const std::string &dir,
                                                                        std::vector<DistWriteEntry> entries,
                                                                        TorchDistWriteOptions options) {
  if (options.ranks < 1)
    return makeError(dir + ": at least one writer rank is needed");
  auto out = OutputDir::create(
      dir, OutputDir::Options{options.force, options.copyFilesFrom,
                              options.iteration ? iterationName(*options.iteration) : std::string(), options.share});
  if (!out)
    return out.takeError();
  std::unique_ptr<TorchDistWriter> w(new TorchDistWriter());
  w->dir_ = std::move(*out);
  w->options_ = std::move(options);
  const TorchDistWriteOptions &opt = w->options_;

  // Complete the entries: `[None]` extra state for linears that have none, common_state.
  llvm::StringSet<> withExtraState;
  bool hasCommon = false;
  for (const DistWriteEntry &e : entries) {
    size_t at = e.key.find("._extra_state/");
    if (at != std::string::npos)
      withExtraState.insert(e.key.substr(0, at));
    if (llvm::StringRef(e.key).startswith("common_state/"))
      hasCommon = true;
  }
  const bool finishing = opt.share.finishes();
  for (size_t k = 0; k < entries.size(); ++k) {
    DistWriteEntry &e = entries[k];
    bool tensor = e.isTensor;
    std::string key = e.key;
    Shape shape = e.shape;
    w->entries_.push_back(std::move(e));
    w->mine_.push_back(tensor ? opt.shareTensors.empty() || opt.shareTensors[k] : finishing);
    if (!tensor || !opt.defaultExtraState)
      continue;
    ParamName pn = splitParamName(key);
    const ModuleRule *rule = moduleRule(pn.leaf);
    // A linear's weight brings its extra state; a fused norm's layer_norm_weight alone (the
    // pre-MLP norm of a MoE layer, spelled mlp.linear_fc1.layer_norm_weight) does not.
    if (!rule || !rule->extraState || !pn.param.startswith("weight") || withExtraState.contains(pn.module))
      continue;
    withExtraState.insert(pn.module);
    int64_t shards = 1;
    if (pn.module.endswith(".experts.experts." + pn.leaf.str()) && !shape.empty())
      shards = shape[0]; // stacked experts: one entry per expert
    for (int64_t s = 0; s < shards; ++s) {
      w->entries_.push_back(DistWriteEntry::object(pn.module.str() + "._extra_state/shard_" + std::to_string(s) + "_" +
                                                   std::to_string(shards),
                                                   nlohmann::json::array({nullptr})));
      w->mine_.push_back(finishing);
    }
  }
  if (!hasCommon && opt.defaultCommonState) {
    w->entries_.push_back(DistWriteEntry::object("common_state/shard_0_1", nlohmann::json::array({opt.commonState})));
    w->mine_.push_back(finishing);
  }

  // Check them and place every chunk on a rank.
  std::vector<uint64_t> load(opt.ranks, 0);
  for (size_t i = 0; i < w->entries_.size(); ++i) {
    DistWriteEntry &e = w->entries_[i];
    if (!w->byKey_.try_emplace(e.key, i).second)
      return makeError(dir + ": key '" + e.key + "' given twice");
    if (e.isTensor) {
      if (e.chunks.empty())
        e.chunks.push_back(Box{Shape(e.shape.size(), 0), e.shape});
      if (auto err = checkExactCover(dir, e.key, e.shape, e.chunks))
        return err;
    } else {
      if (e.archive.empty())
        return makeError(dir + ": bytes entry '" + e.key + "' has no archive");
      e.chunks.assign(1, Box{});
    }
    if (!e.chunkRanks.empty() && e.chunkRanks.size() != e.chunks.size())
      return makeError(dir + ": '" + e.key + "' has " + std::to_string(e.chunks.size()) + " chunks but " +
                       std::to_string(e.chunkRanks.size()) + " ranks for them");
    for (int r : e.chunkRanks)
      if (r < 0 || r >= opt.ranks)
        return makeError(dir + ": '" + e.key + "' is placed on rank " + std::to_string(r) + " of " +
                         std::to_string(opt.ranks));
    if (e.chunkRanks.empty()) {
      for (size_t c = 0; c < e.chunks.size(); ++c) {
        int best = 0;
        if (e.isTensor)
          for (int r = 1; r < opt.ranks; ++r)
            if (load[r] < load[best])
              best = r;
        e.chunkRanks.push_back(best);
      }
    }
    for (size_t c = 0; c < e.chunks.size(); ++c)
      load[e.chunkRanks[c]] += e.isTensor ? uint64_t(numElements(e.chunks[c].sizes)) * dtypeSize(e.dtype) : e.archive.size();
  }
  for (const DistWriteEntry &e : w->entries_)
    w->written_.emplace_back(e.chunks.size(), false);

  // Where every piece goes: bytes entries first, as Megatron-Core's writer orders them, then
  // the tensors' chunks, each rank's file in that order. Archive sizes do not depend on the
  // data, so the layout is fixed before any tensor arrives.
  w->ranks_.resize(opt.ranks);
  w->pacers_ = std::make_unique<WritebackPacer[]>(opt.ranks);
  for (const DistWriteEntry &e : w->entries_)
    w->pieceOffset_.emplace_back(e.chunks.size(), 0);
  for (bool tensors : {false, true})
    for (size_t i = 0; i < w->entries_.size(); ++i) {
      const DistWriteEntry &e = w->entries_[i];
      if (e.isTensor != tensors)
        continue;
      for (size_t c = 0; c < e.chunks.size(); ++c) {
        RankFile &rf = w->ranks_[e.chunkRanks[c]];
        const uint64_t length = e.isTensor ? tensorArchiveSize(e.dtype, e.chunks[c].sizes) : e.archive.size();
        w->pieceOffset_[i][c] = rf.size;
        rf.stored.push_back(Stored{i, c, rf.size, length});
        rf.size += length;
      }
    }

  if (opt.iteration)
    if (auto ec = llvm::sys::fs::create_directory(w->dataDir()))
      return makeError(w->dataDir() + ": cannot create: " + ec.message());
  for (int r = 0; r < opt.ranks; ++r) {
    RankFile &rf = w->ranks_[r];
    rf.path = joinPath(w->dataDir(), "__" + std::to_string(r) + "_0.distcp");
    // The shares of one checkpoint open the same files.
    rf.fd = ::open(rf.path.c_str(), O_WRONLY | O_CREAT | (opt.share.active() ? 0 : O_EXCL) | O_CLOEXEC, 0666);
    if (rf.fd < 0)
      return makeError(rf.path + ": cannot create: " + std::strerror(errno));
    if (auto err = allocateFile(rf.fd, rf.path, rf.size))
      return err;
  }
  for (size_t i = 0; i < w->entries_.size(); ++i)
    if (!w->entries_[i].isTensor && w->mine_[i]) {
      if (auto err = w->writePiece(i, 0, w->entries_[i].archive, false))
        return err;
      w->written_[i][0] = true;
    }
  return w;
}

llvm::Error TorchDistWriter::writePiece(size_t entry, size_t chunk, llvm::ArrayRef<uint8_t> data, bool isTensor) {
  const DistWriteEntry &e = entries_[entry];
  const RankFile &rf = ranks_[e.chunkRanks[chunk]];
  WritebackPacer &pacer = pacers_[e.chunkRanks[chunk]];
  uint64_t at = pieceOffset_[entry][chunk];
  auto sink = [&](llvm::ArrayRef<uint8_t> bytes) -> llvm::Error {
    if (auto err = pwriteAll(rf.fd, rf.path, bytes, at))
      return err;
    pacer.written(rf.fd, bytes.size());
    at += bytes.size();
    return llvm::Error::success();
  };
  if (!isTensor)
    return sink(data);
  auto size = writeTensorArchive(sink, e.dtype, e.chunks[chunk].sizes, data);
  return size ? llvm::Error::success() : size.takeError();
}

llvm::Expected<size_t> TorchDistWriter::tensorEntry(llvm::StringRef key) const {
  auto it = byKey_.find(key);
  if (it == byKey_.end() || !entries_[it->second].isTensor)
    return makeError(dir_->destination() + ": no tensor '" + key + "' in the plan");
  return it->second;
}

llvm::Error TorchDistWriter::write(llvm::StringRef key, llvm::ArrayRef<uint8_t> bytes) {
  auto i = tensorEntry(key);
  if (!i)
    return i.takeError();
  const DistWriteEntry &e = entries_[*i];
  const uint64_t expected = uint64_t(numElements(e.shape)) * dtypeSize(e.dtype);
  if (bytes.size() != expected)
    return makeError(dir_->destination() + ": tensor '" + key + "' " + dtypeName(e.dtype).data() + " " +
                     formatShape(e.shape) + " needs " + std::to_string(expected) + " bytes, got " +
                     std::to_string(bytes.size()));
  const Shape strides = contiguousStrides(e.shape);
  std::vector<uint8_t> block;
  for (size_t c = 0; c < e.chunks.size(); ++c) {
    const Box &box = e.chunks[c];
    if (box.sizes == e.shape) {
      if (auto err = writeChunk(key, c, bytes))
        return err;
      continue;
    }
    block.resize(size_t(numElements(box.sizes)) * dtypeSize(e.dtype));
    Shape zeros(box.sizes.size(), 0);
    copyBlock(block.data(), box.sizes, zeros, StridedView{bytes.data(), 0, strides}, box.offsets, box.sizes,
              dtypeSize(e.dtype));
    if (auto err = writeChunk(key, c, block))
      return err;
  }
  return llvm::Error::success();
}

llvm::Error TorchDistWriter::writeChunk(llvm::StringRef key, size_t chunk, llvm::ArrayRef<uint8_t> bytes) {
  auto i = tensorEntry(key);
  if (!i)
    return i.takeError();
  const DistWriteEntry &e = entries_[*i];
  if (chunk >= e.chunks.size())
    return makeError(dir_->destination() + ": tensor '" + key + "' has no chunk " + std::to_string(chunk));
  const uint64_t expected = uint64_t(numElements(e.chunks[chunk].sizes)) * dtypeSize(e.dtype);
  if (bytes.size() != expected)
    return makeError(dir_->destination() + ": tensor '" + key + "' chunk " + std::to_string(chunk) + " needs " +
                     std::to_string(expected) + " bytes, got " + std::to_string(bytes.size()));
  {
    std::lock_guard lock(mutex_);
    if (written_[*i][chunk])
      return makeError(dir_->destination() + ": tensor '" + key + "' written twice");
    written_[*i][chunk] = true;
  }
  if (auto err = writePiece(*i, chunk, bytes, true)) {
    std::lock_guard lock(mutex_);
    written_[*i][chunk] = false; // reported missing by finish(), not as written
    return err;
  }
  return llvm::Error::success();
}

std::vector<uint8_t> encodeDistMetadata(const TorchDistIndex &index) {
  MetadataPickler m;
  auto chunkObject = [&](const Box &b) {
    m.newObject(kMetaModule, "ChunkStorageMetadata");
    m.dict(2, [&](size_t i) {
      m.attr(i == 0 ? "offsets" : "sizes");
      m.size(i == 0 ? b.offsets : b.sizes);
    });
    m.build();
    m.endObject();
  };
  auto tensorProperties = [&](DType dtype) {
    m.newObject(kMetaModule, "TensorProperties");
    m.tuple(5, [&] {
      m.global("torch", torchDTypeName(dtype), "mod:torch");
      m.singleton("layout:strided", [&] {
        m.global("torch.serialization", "_get_layout", "mod:torch.serialization");
        m.tuple(1, [&] { m.str("layout", "torch.strided"); });
      });
      m.boolean(false);
      m.singleton("memory_format:contiguous", [&] {
        m.global(kMetaModule, "_MEM_FORMAT_ENCODING", std::string("mod:") + kMetaModule);
        m.tuple(1, [&] { m.integer(0); });
      });
      m.boolean(false);
    });
    m.build();
    m.endObject();
  };

  m.newObject(kMetaModule, "Metadata");
  m.dict(5, [&](size_t field) {
    switch (field) {
    case 0:
      m.attr("state_dict_metadata");
      m.dict(index.entries.size(), [&](size_t i) {
        const DistEntry &e = index.entries[i];
        m.str("plan", e.key);
        if (!e.isTensor) {
          m.newObject(kMetaModule, "BytesStorageMetadata");
          m.endObject();
          return;
        }
        m.newObject(kMetaModule, "TensorStorageMetadata");
        m.dict(3, [&](size_t f) {
          if (f == 0) {
            m.attr("properties");
            tensorProperties(e.dtype);
          } else if (f == 1) {
            m.attr("size");
            m.size(e.shape);
          } else {
            m.attr("chunks");
            m.list(e.chunks.size(), [&](size_t c) { chunkObject(e.chunks[c].box); });
          }
        });
        m.build();
        m.endObject();
      });
      break;
    case 1:
      m.attr("planner_data");
      m.none();
      break;
    case 2:
      m.attr("storage_data");
      m.dict(index.storageOrder.size(), [&](size_t i) {
        const DistEntry &e = index.entries[index.storageOrder[i].first];
        const DistChunk &c = e.chunks[index.storageOrder[i].second];
        // Each rank's results reach the coordinator as their own objects: strings are
        // shared within one file's items, not across files.
        const std::string scope = "file:" + c.piece.file;
        m.newObject(kMetaModule, "MetadataIndex");
        m.dict(e.isTensor ? 3 : 2, [&](size_t f) {
          if (f == 0) {
            m.attr("fqn");
            m.str(scope, e.key);
          } else if (f == 1) {
            m.attr("index");
            if (c.storageIndex)
              m.integer(*c.storageIndex);
            else
              m.none();
          } else {
            m.attr("offset");
            m.size(c.box.offsets);
          }
        });
        m.build();
        m.endObject();
        m.newObject(kFsModule, "_StorageInfo");
        m.dict(3, [&](size_t f) {
          if (f == 0) {
            m.attr("relative_path");
            m.str(scope, c.piece.file);
          } else if (f == 1) {
            m.attr("offset");
            m.integer(int64_t(c.piece.offset));
          } else {
            m.attr("length");
            m.integer(int64_t(c.piece.length));
          }
        });
        m.build();
        m.endObject();
      });
      break;
    case 3:
      m.attr("storage_meta");
      m.newObject(kMetaModule, "StorageMeta");
      m.dict(4, [&](size_t f) {
        if (f == 0) {
          m.attr("checkpoint_id");
          if (index.checkpointId)
            m.str("meta", *index.checkpointId);
          else
            m.none();
        } else if (f == 1) {
          m.attr("save_id");
          if (index.saveId)
            m.str("meta", *index.saveId);
          else
            m.none();
        } else if (f == 2) {
          m.attr("load_id");
          m.none();
        } else {
          m.attr("modules");
          m.list(0, [](size_t) {});
        }
      });
      m.build();
      m.endObject();
      break;
    case 4:
      m.attr("version");
      m.str("version", index.version.empty() ? "1.0.0" : index.version);
      break;
    }
  });
  m.build();
  m.endObject();
  return m.p.finish();
}

std::vector<uint8_t> TorchDistWriter::metadataPickle() const {
  TorchDistIndex index;
  index.checkpointId = options_.checkpointId;
  index.version = "1.0.0";
  for (const DistWriteEntry &w : entries_) {
    DistEntry e;
    e.key = w.key;
    e.isTensor = w.isTensor;
    e.dtype = w.dtype;
    e.shape = w.shape;
    for (size_t c = 0; c < w.chunks.size(); ++c) {
      DistChunk chunk;
      chunk.box = w.chunks[c];
      if (c < w.chunkIndex.size())
        chunk.storageIndex = w.chunkIndex[c];
      e.chunks.push_back(std::move(chunk));
    }
    index.entries.push_back(std::move(e));
  }
  // storage_data: each rank's items in the order it wrote them, rank by rank.
  uint64_t h1 = 0xcbf29ce484222325ull, h2 = 0x84222325cbf29ce4ull;
  for (size_t r = 0; r < ranks_.size(); ++r)
    for (const Stored &s : ranks_[r].stored) {
      DistPiece &piece = index.entries[s.entry].chunks[s.chunk].piece;
      piece = DistPiece{"__" + std::to_string(r) + "_0.distcp", s.offset, s.length};
      index.storageOrder.emplace_back(s.entry, s.chunk);
      std::string item = entries_[s.entry].key + "|" + std::to_string(s.chunk) + "|" + piece.file + "|" +
                         std::to_string(s.offset) + "|" + std::to_string(s.length) + "\n";
      h1 = fnv1a(item, h1);
      h2 = fnv1a(item, h2 ^ 0x9e3779b97f4a7c15ull);
    }
  if (options_.saveId) {
    index.saveId = options_.saveId;
  } else { // derived from the layout, so equal inputs give equal bytes
    char buf[40];
    std::snprintf(buf, sizeof buf, "%08x-%04x-4%03x-8%03x-%012llx", unsigned(h1 >> 32), unsigned(h1 >> 16) & 0xffff,
                  unsigned(h1) & 0xfff, unsigned(h2 >> 52) & 0xfff, (unsigned long long)(h2 & 0xffffffffffffull));
    index.saveId = std::string(buf);
  }
  return encodeDistMetadata(index);
}

llvm::Error TorchDistWriter::finish() {
  std::vector<std::string> missing;
  for (size_t i = 0; i < entries_.size(); ++i)
    if (mine_[i] && llvm::is_contained(written_[i], false))
      missing.push_back(entries_[i].key);
  if (!missing.empty())
    return makeError(dir_->destination() + ": " + std::to_string(missing.size()) + " tensor(s) never written, first '" +
                     missing.front() + "'");
  for (RankFile &rf : ranks_) {
    bool bad = ::fsync(rf.fd) != 0;
    bad |= ::close(rf.fd) != 0;
    rf.fd = -1;
    if (bad)
      return makeError(rf.path + ": write failed: " + std::strerror(errno));
  }
  if (!options_.share.finishes())
    return dir_->shareDone();
  std::vector<uint8_t> metadata = metadataPickle();
  if (auto err = writeNewFile(joinPath(dataDir(), ".metadata"),
                              llvm::StringRef(reinterpret_cast<const char *>(metadata.data()), metadata.size())))
    return err;
  if (auto err = writeNewFile(joinPath(dataDir(), "metadata.json"),
                              "{\"sharded_backend\": \"torch_dist\", \"sharded_backend_version\": 1}"))
    return err;
  if (options_.iteration)
    if (auto err = writeNewFile(joinPath(dir_->path(), kTrackerFile), std::to_string(*options_.iteration)))
      return err;
  auto reserved = [](llvm::StringRef name) {
    return name == ".metadata" || name == "metadata.json" || name == kTrackerFile ||
           (name.startswith("__") && name.endswith(".distcp"));
  };
  return dir_->commit(reserved);
}

// ---------------------------------------------------------------------------------------------

llvm::Expected<std::vector<DistWriteEntry>> reproducingPlan(const TorchDistSource &source) {
  std::vector<DistWriteEntry> plan;
  auto rankOf = [&](const DistPiece &p) -> llvm::Expected<int> {
    llvm::StringRef f = p.file;
    int rank = 0;
    if (!f.consume_front("__") || !f.consume_back("_0.distcp") || f.getAsInteger(10, rank))
      return makeError(joinPath(source.root(), p.file) + ": not named __{rank}_0.distcp; cannot reproduce the layout");
    return rank;
  };
  for (const DistEntry &e : source.index().entries) {
    DistWriteEntry w;
    w.key = e.key;
    w.isTensor = e.isTensor;
    w.dtype = e.dtype;
    w.shape = e.shape;
    for (const DistChunk &c : e.chunks) {
      auto rank = rankOf(c.piece);
      if (!rank)
        return rank.takeError();
      w.chunkRanks.push_back(*rank);
      w.chunkIndex.push_back(c.storageIndex);
      if (e.isTensor)
        w.chunks.push_back(c.box);
    }
    if (!e.isTensor) {
      auto archive = source.readObjectArchive(e);
      if (!archive)
        return archive.takeError();
      w.archive = std::move(*archive);
    }
    plan.push_back(std::move(w));
  }
  return plan;
}

llvm::Error writeTorchDist(const TensorSource &source, const std::string &dir, TorchDistWriteOptions options,
                           std::vector<DistWriteEntry> extra) {
  std::vector<DistWriteEntry> plan;
  std::vector<const SourceTensor *> order;
  if (const auto *dist = dynamic_cast<const TorchDistSource *>(&source)) {
    for (const DistEntry &e : dist->index().entries) {
      if (e.isTensor) {
        plan.push_back(DistWriteEntry::tensor(e.key, e.dtype, e.shape));
        order.push_back(source.find(e.key));
      } else {
        auto archive = dist->readObjectArchive(e);
        if (!archive)
          return archive.takeError();
        DistWriteEntry w;
        w.key = e.key;
        w.isTensor = false;
        w.archive = std::move(*archive);
        plan.push_back(std::move(w));
      }
    }
  } else {
    for (const SourceTensor &t : source.tensors()) {
      plan.push_back(DistWriteEntry::tensor(t.meta.name, t.meta.dtype, t.meta.shape));
      order.push_back(&t);
    }
  }
  for (DistWriteEntry &e : extra)
    plan.push_back(std::move(e));
  auto writer = TorchDistWriter::create(dir, std::move(plan), std::move(options));
  if (!writer)
    return writer.takeError();
  for (const SourceTensor *t : order) {
    auto bytes = source.read(*t);
    if (!bytes)
      return bytes.takeError();
    if (auto err = (*writer)->write(t->meta.name, bytes->bytes()))
      return err;
  }
  for (const DistWriteEntry &e : (*writer)->entries())
    if (e.isTensor && !source.find(e.key))
      return makeError(dir + ": extra entry '" + e.key + "' is a tensor; give its bytes through TorchDistWriter");
  return (*writer)->finish();
}

} // namespace ckptmap::mcore
