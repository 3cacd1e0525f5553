#include "runtime/mcore/TorchDist.h"

#include "runtime/io/FileOps.h"
#include "runtime/mcore/Errors.h"
#include "runtime/mcore/Format.h"
#include "runtime/mcore/TorchSave.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <map>

namespace ckptmap::mcore {

namespace {

constexpr const char *kMetaModule = "torch.distributed.checkpoint.metadata";

std::optional<Shape> asSize(const PyValue *v) {
  if (!v)
    return std::nullopt;
  if (v->isObjectOf("torch", "Size")) {
    if (v->items.size() != 1)
      return std::nullopt;
    v = v->items[0];
  }
  auto seq = intSequence(*v);
  if (!seq)
    return std::nullopt;
  return Shape(seq->begin(), seq->end());
}

} // namespace

llvm::Expected<TorchDistIndex> parseDistMetadata(llvm::ArrayRef<uint8_t> bytes, const std::string &label) {
  auto pickle = Pickle::parse(bytes, label);
  if (!pickle)
    return pickle.takeError();
  auto fail = [&](const std::string &what) { return makeError(label + ": " + what); };
  const PyValue &root = (*pickle)->root();
  if (!root.isObjectOf(kMetaModule, "Metadata") || !root.state)
    return fail("not a torch.distributed.checkpoint Metadata object: " + pyRepr(root, 2, 200));
  const PyValue *sdm = root.get("state_dict_metadata");
  if (!sdm || !sdm->is(PyKind::Dict))
    return fail("Metadata without a state_dict_metadata dict");

  TorchDistIndex index;
  llvm::StringMap<size_t> byKey;
  for (size_t i = 0; i + 1 < sdm->items.size(); i += 2) {
    const PyValue *k = sdm->items[i], *v = sdm->items[i + 1];
    if (!k->is(PyKind::Str))
      return fail("state_dict_metadata key " + pyRepr(*k, 2, 100) + " is not a string");
    DistEntry e;
    e.key = k->text.str();
    std::string where = "state_dict_metadata['" + e.key + "']";
    if (v->isObjectOf(kMetaModule, "BytesStorageMetadata")) {
      e.isTensor = false;
      e.chunks.resize(1);
    } else if (v->isObjectOf(kMetaModule, "TensorStorageMetadata")) {
      const PyValue *props = v->get("properties");
      if (!props || !props->isObjectOf(kMetaModule, "TensorProperties") || !props->state)
        return fail(where + ": no TensorProperties");
      const PyValue *dt = nullptr;
      if (props->state->is(PyKind::Tuple) && !props->state->items.empty())
        dt = props->state->items[0];
      else
        dt = props->get("dtype");
      if (!dt || !dt->is(PyKind::Global) || dt->text != "torch")
        return fail(where + ": TensorProperties without a torch dtype");
      auto dtype = dtypeFromTorchName(dt->name);
      if (!dtype)
        return fail(where + ": unsupported dtype torch." + dt->name.str());
      e.dtype = *dtype;
      auto size = asSize(v->get("size"));
      if (!size)
        return fail(where + ": size is not a torch.Size");
      for (int64_t d : *size)
        if (d < 0)
          return fail(where + ": negative size " + formatShape(*size));
      e.shape = *size;
      const PyValue *chunks = v->get("chunks");
      if (!chunks || !chunks->is(PyKind::List))
        return fail(where + ": chunks is not a list");
      for (const PyValue *c : chunks->items) {
        auto off = asSize(c->isObjectOf(kMetaModule, "ChunkStorageMetadata") ? c->get("offsets") : nullptr);
        auto sz = asSize(c->isObjectOf(kMetaModule, "ChunkStorageMetadata") ? c->get("sizes") : nullptr);
        if (!off || !sz)
          return fail(where + ": malformed chunk " + pyRepr(*c, 3, 200));
        e.chunks.push_back(DistChunk{Box{*off, *sz}, {}, std::nullopt});
      }
    } else {
      return fail(where + ": unexpected " + pyRepr(*v, 2, 200));
    }
    if (!byKey.try_emplace(e.key, index.entries.size()).second)
      return fail(where + ": key listed twice");
    index.entries.push_back(std::move(e));
  }

  const PyValue *storage = root.get("storage_data");
  if (!storage || !storage->is(PyKind::Dict))
    return fail("Metadata without a storage_data dict");
  std::vector<std::vector<bool>> seen(index.entries.size());
  std::vector<std::map<Shape, size_t>> chunkAt(index.entries.size()); // chunk offsets -> chunk
  for (size_t i = 0; i < index.entries.size(); ++i)
    for (size_t c = 0; c < index.entries[i].chunks.size(); ++c)
      if (index.entries[i].isTensor && !chunkAt[i].emplace(index.entries[i].chunks[c].box.offsets, c).second)
        return fail("state_dict_metadata['" + index.entries[i].key + "']: two chunks at offsets " +
                    formatIndex(index.entries[i].chunks[c].box.offsets));
  for (size_t i = 0; i < index.entries.size(); ++i)
    seen[i].assign(index.entries[i].chunks.size(), false);
  for (size_t i = 0; i + 1 < storage->items.size(); i += 2) {
    const PyValue *k = storage->items[i], *v = storage->items[i + 1];
    const PyValue *fqn = k->isObjectOf(kMetaModule, "MetadataIndex") ? k->get("fqn") : nullptr;
    if (!fqn || !fqn->is(PyKind::Str))
      return fail("storage_data key " + pyRepr(*k, 3, 200) + " is not a MetadataIndex");
    std::string where = "storage_data['" + fqn->text.str() + "']";
    const PyValue *rel = v->isObjectOf("torch.distributed.checkpoint.filesystem", "_StorageInfo") ? v->get("relative_path") : nullptr;
    const PyValue *off = v->get("offset"), *len = v->get("length");
    if (!rel || !rel->is(PyKind::Str) || !off || !off->is(PyKind::Int) || !len || !len->is(PyKind::Int) ||
        off->integer < 0 || len->integer < 0)
      return fail(where + ": malformed _StorageInfo " + pyRepr(*v, 3, 200));
    llvm::StringRef relPath = rel->text;
    if (relPath.empty() || relPath.contains('/') || relPath.contains('\\') || relPath == "." || relPath == "..")
      return fail(where + ": relative_path '" + relPath.str() + "' is not a file name in the checkpoint directory");
    auto it = byKey.find(fqn->text);
    if (it == byKey.end())
      continue; // a stored item nothing refers to: torch ignores it too
    DistEntry &e = index.entries[it->second];
    size_t chunk = 0;
    if (e.isTensor) {
      auto offsets = asSize(k->get("offset"));
      if (!offsets)
        return fail(where + ": tensor item without chunk offsets");
      auto c = chunkAt[it->second].find(*offsets);
      if (c == chunkAt[it->second].end())
        return fail(where + ": item at offsets " + formatIndex(*offsets) + " matches no chunk of the tensor");
      chunk = c->second;
    }
    if (seen[it->second][chunk])
      return fail(where + ": chunk stored twice");
    seen[it->second][chunk] = true;
    e.chunks[chunk].piece = DistPiece{relPath.str(), uint64_t(off->integer), uint64_t(len->integer)};
    if (const PyValue *hint = k->get("index"); hint && hint->is(PyKind::Int))
      e.chunks[chunk].storageIndex = hint->integer;
    index.storageOrder.emplace_back(it->second, chunk);
  }
  for (size_t i = 0; i < index.entries.size(); ++i)
    for (size_t c = 0; c < seen[i].size(); ++c)
      if (!seen[i][c])
        return fail("'" + index.entries[i].key + "'" +
                    (index.entries[i].isTensor ? " chunk at " + formatIndex(index.entries[i].chunks[c].box.offsets) : "") +
                    " has no stored item in storage_data");

  if (const PyValue *meta = root.get("storage_meta")) {
    if (meta->isObjectOf(kMetaModule, "StorageMeta")) {
      if (const PyValue *id = meta->get("checkpoint_id"); id && id->is(PyKind::Str))
        index.checkpointId = id->text.str();
      if (const PyValue *id = meta->get("save_id"); id && id->is(PyKind::Str))
        index.saveId = id->text.str();
    }
  }
  if (const PyValue *version = root.get("version"); version && version->is(PyKind::Str))
    index.version = version->text.str();
  return index;
}

// ---------------------------------------------------------------------------------------------

llvm::Expected<std::unique_ptr<TorchDistSource>> TorchDistSource::open(const std::string &path, Options options) {
  auto detected = detectFormat(path);
  if (!detected)
    return detected.takeError();
  if (detected->format != CheckpointFormat::TorchDist)
    return makeError(path + ": not a torch_dist checkpoint (it looks like " + formatName(detected->format) + ")");
  const std::string dir = detected->path;

  std::unique_ptr<TorchDistSource> src(new TorchDistSource());
  src->root_ = dir;
  src->options_ = options;
  const std::string metaPath = joinPath(dir, ".metadata");
  auto metaBuf = llvm::MemoryBuffer::getFile(metaPath, false, false);
  if (!metaBuf)
    return makeError(metaPath + ": cannot read: " + metaBuf.getError().message());
  llvm::ArrayRef<uint8_t> metaBytes(reinterpret_cast<const uint8_t *>((*metaBuf)->getBufferStart()),
                                    (*metaBuf)->getBufferSize());
  auto index = parseDistMetadata(metaBytes, metaPath);
  if (!index)
    return index.takeError();
  src->index_ = std::move(*index);

  // Every referenced file must exist and hold every piece said to be in it.
  for (const DistEntry &e : src->index_.entries) {
    for (const DistChunk &c : e.chunks) {
      const DistPiece &p = c.piece;
      auto it = src->files_.find(p.file);
      if (it == src->files_.end()) {
        std::string full = joinPath(dir, p.file);
        if (!llvm::sys::fs::exists(full))
          return makeError(full + ": missing; " + metaPath + " stores '" + e.key + "' in it");
        auto mapped = MappedFile::open(full);
        if (!mapped)
          return mapped.takeError();
        it = src->files_.try_emplace(p.file, std::move(*mapped)).first;
      }
      uint64_t size = it->second->size();
      if (p.offset > size || p.length > size - p.offset)
        return makeError(it->second->path() + ": piece of '" + e.key + "' at bytes [" + std::to_string(p.offset) +
                         ", " + std::to_string(p.offset + p.length) + ") runs past the end of the file (" +
                         std::to_string(size) + " bytes; truncated?)");
    }
    if (e.isTensor) {
      std::vector<Box> boxes;
      boxes.reserve(e.chunks.size());
      for (const DistChunk &c : e.chunks)
        boxes.push_back(c.box);
      if (auto err = checkExactCover(metaPath, e.key, e.shape, boxes))
        return err;
    }
  }

  for (size_t i = 0; i < src->index_.entries.size(); ++i) {
    const DistEntry &e = src->index_.entries[i];
    if (isTrainingState(e.key)) {
      src->skipped_.push_back(e.key);
      continue;
    }
    if (!e.isTensor)
      continue;
    src->entryOf_[e.key] = i;
    src->tensors_.push_back(SourceTensor{TensorMeta{e.key, e.dtype, e.shape},
                                         e.chunks.empty() ? std::string() : e.chunks.front().piece.file});
  }
  std::sort(src->tensors_.begin(), src->tensors_.end(),
            [](const SourceTensor &a, const SourceTensor &b) { return a.meta.name < b.meta.name; });
  return src;
}

bool TorchDistSource::isTrainingState(llvm::StringRef key) {
  for (llvm::StringRef prefix : {"optimizer", "rng_state"})
    if (key.consume_front(prefix) && (key.empty() || key.front() == '.' || key.front() == '/'))
      return true;
  return false;
}

std::string TorchDistSource::label(const DistPiece &piece) const {
  return joinPath(root_, piece.file) + " bytes [" + std::to_string(piece.offset) + ", " +
         std::to_string(piece.offset + piece.length) + ")";
}

llvm::Expected<llvm::ArrayRef<uint8_t>> TorchDistSource::pieceBytes(const DistPiece &piece) const {
  auto it = files_.find(piece.file);
  if (it == files_.end())
    return makeError(joinPath(root_, piece.file) + ": not a file of this checkpoint");
  llvm::ArrayRef<uint8_t> all = it->second->bytes();
  if (piece.offset > all.size() || piece.length > all.size() - piece.offset)
    return makeError(label(piece) + ": runs past the end of the file");
  return all.slice(piece.offset, piece.length);
}

llvm::Expected<TensorBytes> TorchDistSource::read(const SourceTensor &tensor) const {
  auto it = entryOf_.find(tensor.meta.name);
  if (it == entryOf_.end())
    return makeError(root_ + ": no tensor '" + tensor.meta.name + "'");
  const DistEntry &e = index_.entries[it->second];
  const size_t esize = dtypeSize(e.dtype);
  const uint64_t whole = uint64_t(numElements(e.shape)) * esize;
  std::vector<uint8_t> out;
  for (const DistChunk &c : e.chunks) {
    auto bytes = pieceBytes(c.piece);
    if (!bytes)
      return bytes.takeError();
    auto archive = TorchSaveArchive::open(*bytes, label(c.piece));
    if (!archive)
      return archive.takeError();
    const std::string where = label(c.piece) + " ('" + e.key + "' chunk at " + formatIndex(c.box.offsets) + ")";
    auto t = storedTensor((*archive)->pickle().root(), where);
    if (!t)
      return t.takeError();
    if (t->dtype != e.dtype)
      return makeError(where + ": piece holds " + dtypeName(t->dtype).data() + ", .metadata says " +
                       dtypeName(e.dtype).data());
    if (t->size != c.box.sizes)
      return makeError(where + ": piece has size " + formatShape(t->size) + ", .metadata says " +
                       formatShape(c.box.sizes));
    auto storage = (*archive)->storage(*t, options_.verifyCrc);
    if (!storage)
      return storage.takeError();
    // A tensor stored whole and contiguous is read in place, so a writer can copy it file to
    // file; but pieces lie back to back in their file, and the kernels need aligned elements.
    const uint8_t *first = storage->data() + t->offset * esize;
    if (e.chunks.size() == 1 && t->stride == contiguousStrides(t->size) &&
        storage->size() >= uint64_t(t->offset) * esize + whole && reinterpret_cast<uintptr_t>(first) % esize == 0) {
      const std::shared_ptr<const MappedFile> &file = files_.find(c.piece.file)->second;
      return TensorBytes(first, whole, file).inFile(*file);
    }
    out.resize(whole); // once: later chunks find it sized
    Shape zeros(t->size.size(), 0);
    copyBlock(out.data(), e.shape, c.box.offsets, StridedView{storage->data(), t->offset, t->stride}, zeros,
              t->size, esize);
  }
  return TensorBytes::owned(std::move(out));
}

std::vector<const DistEntry *> TorchDistSource::objects() const {
  std::vector<const DistEntry *> out;
  for (const DistEntry &e : index_.entries)
    if (!e.isTensor)
      out.push_back(&e);
  return out;
}

llvm::Expected<std::vector<uint8_t>> TorchDistSource::readObjectArchive(const DistEntry &entry) const {
  if (entry.isTensor || entry.chunks.size() != 1)
    return makeError(root_ + ": '" + entry.key + "' is not a bytes entry");
  auto bytes = pieceBytes(entry.chunks[0].piece);
  if (!bytes)
    return bytes.takeError();
  return std::vector<uint8_t>(bytes->begin(), bytes->end());
}

llvm::Expected<std::unique_ptr<Pickle>> TorchDistSource::decodeObject(const DistEntry &entry) const {
  if (entry.isTensor || entry.chunks.size() != 1)
    return makeError(root_ + ": '" + entry.key + "' is not a bytes entry");
  auto bytes = pieceBytes(entry.chunks[0].piece);
  if (!bytes)
    return bytes.takeError();
  auto archive = TorchSaveArchive::open(*bytes, label(entry.chunks[0].piece));
  if (!archive)
    return archive.takeError();
  // Re-parse so the value outlives the archive view.
  const ZipEntry *pkl = (*archive)->zip().find(((*archive)->zip().topFolder() + "/data.pkl").str());
  return Pickle::parse((*archive)->zip().data(*pkl), label(entry.chunks[0].piece) + ":" + pkl->name);
}

} // namespace ckptmap::mcore
