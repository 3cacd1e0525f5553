#include "runtime/mcore/TorchSave.h"

#include "runtime/mcore/Errors.h"
#include "runtime/mcore/PickleWriter.h"

namespace ckptmap::mcore {

namespace {

struct TorchDType {
  DType dtype;
  const char *torchName;
  const char *storageClass; // "" for UntypedStorage + _rebuild_tensor_v3
};

constexpr TorchDType kTorchDTypes[] = {
    {DType::F64, "float64", "DoubleStorage"},   {DType::F32, "float32", "FloatStorage"},
    {DType::F16, "float16", "HalfStorage"},     {DType::BF16, "bfloat16", "BFloat16Storage"},
    {DType::I64, "int64", "LongStorage"},       {DType::I32, "int32", "IntStorage"},
    {DType::I16, "int16", "ShortStorage"},      {DType::I8, "int8", "CharStorage"},
    {DType::U8, "uint8", "ByteStorage"},        {DType::BOOL, "bool", "BoolStorage"},
    {DType::F8_E4M3, "float8_e4m3fn", ""},      {DType::F8_E5M2, "float8_e5m2", ""},
    {DType::F8_E8M0, "float8_e8m0fnu", ""},     {DType::U16, "uint16", ""},
    {DType::U32, "uint32", ""},                 {DType::U64, "uint64", ""},
};

const TorchDType *info(DType t) {
  for (const TorchDType &d : kTorchDTypes)
    if (d.dtype == t)
      return &d;
  return nullptr;
}

} // namespace

llvm::StringRef torchDTypeName(DType t) { return info(t) ? info(t)->torchName : ""; }

std::optional<DType> dtypeFromTorchName(llvm::StringRef name) {
  for (const TorchDType &d : kTorchDTypes)
    if (name == d.torchName)
      return d.dtype;
  return std::nullopt;
}

llvm::StringRef torchStorageClass(DType t) { return info(t) ? info(t)->storageClass : ""; }

std::optional<DType> dtypeFromStorageClass(llvm::StringRef name) {
  for (const TorchDType &d : kTorchDTypes)
    if (*d.storageClass && name == d.storageClass)
      return d.dtype;
  return std::nullopt;
}

llvm::Expected<StoredTensor> storedTensor(const PyValue &value, const std::string &where) {
  auto fail = [&](const std::string &what) { return makeError(where + ": " + what); };
  const PyValue *v = &value;
  if (v->isObjectOf("torch._utils", "_rebuild_parameter")) {
    if (v->items.empty())
      return fail("_rebuild_parameter without arguments");
    v = v->items[0];
  }
  bool v3 = v->isObjectOf("torch._utils", "_rebuild_tensor_v3");
  if (!v3 && !v->isObjectOf("torch._utils", "_rebuild_tensor_v2"))
    return fail("expected a tensor (torch._utils._rebuild_tensor_v2), found " + pyRepr(*v, 3, 200));
  const auto &a = v->items;
  if (a.size() < (v3 ? 7u : 4u))
    return fail("tensor rebuild call with " + std::to_string(a.size()) + " arguments");
  const PyValue *pid = a[0];
  if (!pid->is(PyKind::PersistentId) || !pid->state->is(PyKind::Tuple) || pid->state->items.size() != 5)
    return fail("tensor storage is not a persistent id ('storage', type, key, location, numel): " +
                pyRepr(*pid, 3, 200));
  const auto &s = pid->state->items;
  if (!s[0]->is(PyKind::Str) || s[0]->text != "storage" || !s[1]->is(PyKind::Global) ||
      !s[2]->is(PyKind::Str) || !s[4]->is(PyKind::Int) || s[4]->integer < 0)
    return fail("malformed storage reference " + pyRepr(*pid, 3, 200));

  StoredTensor t;
  t.storageKey = s[2]->text.str();
  int64_t numel = s[4]->integer;
  if (s[1]->name == "UntypedStorage") {
    if (!v3 || !a[6]->is(PyKind::Global) || a[6]->text != "torch")
      return fail("an UntypedStorage tensor needs _rebuild_tensor_v3 with a torch dtype");
    auto dt = dtypeFromTorchName(a[6]->name);
    if (!dt)
      return fail("unsupported dtype torch." + a[6]->name.str());
    t.dtype = *dt;
    t.storageBytes = numel; // an untyped storage counts bytes
  } else {
    auto dt = dtypeFromStorageClass(s[1]->name);
    if (s[1]->text != "torch" || !dt)
      return fail("unsupported storage type " + s[1]->text.str() + "." + s[1]->name.str());
    t.dtype = *dt;
    if (numel > INT64_MAX / int64_t(dtypeSize(*dt)))
      return fail("storage of " + std::to_string(numel) + " elements is too large");
    t.storageBytes = numel * int64_t(dtypeSize(*dt));
  }
  if (!a[1]->is(PyKind::Int))
    return fail("storage offset is not an integer");
  t.offset = a[1]->integer;
  auto size = intSequence(*a[2]);
  auto stride = intSequence(*a[3]);
  if (!size || !stride || size->size() != stride->size())
    return fail("tensor size " + pyRepr(*a[2], 2, 200) + " and stride " + pyRepr(*a[3], 2, 200) +
                " do not match");
  t.size.assign(size->begin(), size->end());
  t.stride.assign(stride->begin(), stride->end());

  // The view must lie inside the storage.
  const int64_t esize = int64_t(dtypeSize(t.dtype));
  if (t.storageBytes % esize)
    return fail("storage of " + std::to_string(t.storageBytes) + " bytes is not a whole number of " +
                dtypeName(t.dtype).data() + " elements");
  const int64_t elements = t.storageBytes / esize;
  if (t.offset < 0)
    return fail("negative storage offset " + std::to_string(t.offset));
  bool empty = false;
  Int128 last = t.offset;
  for (size_t d = 0; d < t.size.size(); ++d) {
    if (t.size[d] < 0 || t.stride[d] < 0)
      return fail("negative size or stride in size " + formatShape(t.size) + " stride " +
                  formatShape(t.stride));
    if (t.size[d] == 0)
      empty = true;
    else
      last += Int128(t.size[d] - 1) * t.stride[d];
  }
  if (!empty && last >= elements)
    return fail("view (offset " + std::to_string(t.offset) + ", size " + formatShape(t.size) +
                ", stride " + formatShape(t.stride) + ") reaches element " + std::to_string(int64_t(last)) +
                " of a storage of " + std::to_string(elements) + " elements");
  return t;
}

llvm::Expected<std::unique_ptr<TorchSaveArchive>> TorchSaveArchive::open(llvm::ArrayRef<uint8_t> bytes,
                                                                        std::string label) {
  auto zip = ZipArchive::parse(bytes, std::move(label));
  if (!zip)
    return zip.takeError();
  std::unique_ptr<TorchSaveArchive> a(new TorchSaveArchive());
  a->zip_ = std::move(*zip);
  llvm::StringRef top = a->zip_.topFolder();
  if (top.empty())
    return makeError(a->label() + ": not a torch.save archive (entries do not share one top folder)");
  const ZipEntry *pkl = a->zip_.find((top + "/data.pkl").str());
  if (!pkl)
    return makeError(a->label() + ": not a torch.save archive (no " + top + "/data.pkl)");
  if (const ZipEntry *order = a->zip_.find((top + "/byteorder").str())) {
    llvm::ArrayRef<uint8_t> d = a->zip_.data(*order);
    llvm::StringRef s(reinterpret_cast<const char *>(d.data()), d.size());
    if (s != "little")
      return makeError(a->label() + ": byte order '" + s + "' is not supported (only little)");
  }
  auto pklBytes = a->zip_.checkedData(*pkl);
  if (!pklBytes)
    return pklBytes.takeError();
  auto pickle = Pickle::parse(*pklBytes, a->label() + ":" + pkl->name);
  if (!pickle)
    return pickle.takeError();
  a->pickle_ = std::move(*pickle);
  return a;
}

llvm::Expected<llvm::ArrayRef<uint8_t>> TorchSaveArchive::storage(const StoredTensor &t, bool verifyCrc) const {
  std::string name = (zip_.topFolder() + "/data/" + t.storageKey).str();
  const ZipEntry *e = zip_.find(name);
  if (!e)
    return makeError(label() + ": storage entry '" + name + "' is missing");
  if (int64_t(e->size) != t.storageBytes)
    return makeError(label() + ": storage entry '" + name + "' holds " + std::to_string(e->size) +
                     " bytes, data.pkl says " + std::to_string(t.storageBytes));
  if (verifyCrc)
    return zip_.checkedData(*e);
  return zip_.data(*e);
}

// ---------------------------------------------------------------------------------------------

std::vector<uint8_t> tensorPickle(DType dtype, llvm::ArrayRef<int64_t> shape) {
  // What torch.save's pickler (protocol 2) writes for a contiguous tensor: every tuple and
  // str memoized with BINPUT, the empty tuple not, as CPython does.
  PickleOut p(2);
  llvm::StringRef storageClass = torchStorageClass(dtype);
  const bool v3 = storageClass.empty();
  const int64_t numel = numElements(shape);
  auto tuple = [&](llvm::ArrayRef<int64_t> values) {
    if (values.empty()) {
      p.op(')');
      return;
    }
    if (values.size() > 3)
      p.op('(');
    for (int64_t v : values)
      p.integer(v);
    p.op(values.size() == 1 ? 0x85 : values.size() == 2 ? 0x86 : values.size() == 3 ? 0x87 : 't');
    p.memoize();
  };
  p.global2("torch._utils", v3 ? "_rebuild_tensor_v3" : "_rebuild_tensor_v2");
  p.memoize();
  p.op('(');
  // persistent id ('storage', storage type, '0', 'cpu', numel)
  p.op('(');
  p.str("storage");
  p.memoize();
  p.global2("torch", v3 ? "UntypedStorage" : storageClass);
  p.memoize();
  p.str("0");
  p.memoize();
  p.str("cpu");
  p.memoize();
  p.integer(v3 ? numel * int64_t(dtypeSize(dtype)) : numel);
  p.op('t');
  p.memoize();
  p.op('Q');
  p.integer(0);
  tuple(shape);
  Shape stride(shape.size());
  int64_t s = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    stride[d] = s;
    s *= shape[d];
  }
  tuple(stride);
  p.boolean(false);
  p.global2("collections", "OrderedDict");
  p.memoize();
  p.op(')');
  p.op('R');
  p.memoize();
  if (v3) {
    p.global2("torch", torchDTypeName(dtype));
    p.memoize();
  }
  p.op('t');
  p.memoize();
  p.op('R');
  p.memoize();
  return p.finish();
}

namespace {

const uint8_t kFormatVersion[] = {'1'};
const uint8_t kStorageAlignment[] = {'6', '4'};
const uint8_t kByteOrder[] = {'l', 'i', 't', 't', 'l', 'e'};

llvm::Expected<uint64_t> writeArchive(const ByteSink &sink, llvm::ArrayRef<uint8_t> dataPkl,
                                      const llvm::ArrayRef<uint8_t> *storage) {
  TorchArchiveWriter w(sink, "archive");
  if (auto e = w.addRecord("data.pkl", dataPkl))
    return e;
  if (auto e = w.addRecord(".format_version", kFormatVersion))
    return e;
  if (auto e = w.addRecord(".storage_alignment", kStorageAlignment))
    return e;
  if (auto e = w.addRecord("byteorder", kByteOrder))
    return e;
  if (storage)
    if (auto e = w.addRecord("data/0", *storage))
      return e;
  if (auto e = w.finish())
    return e;
  return w.size();
}

} // namespace

llvm::Expected<uint64_t> writeTensorArchive(const ByteSink &sink, DType dtype, llvm::ArrayRef<int64_t> shape,
                                            llvm::ArrayRef<uint8_t> data) {
  std::vector<uint8_t> pkl = tensorPickle(dtype, shape);
  return writeArchive(sink, pkl, &data);
}

uint64_t tensorArchiveSize(DType dtype, llvm::ArrayRef<int64_t> shape) {
  const llvm::ArrayRef<uint8_t> unread(static_cast<const uint8_t *>(nullptr), size_t(numElements(shape)) * dtypeSize(dtype));
  return llvm::cantFail(writeTensorArchive(ByteSink(), dtype, shape, unread));
}

llvm::Expected<uint64_t> writeObjectArchive(const ByteSink &sink, llvm::ArrayRef<uint8_t> dataPkl) {
  return writeArchive(sink, dataPkl, nullptr);
}

std::vector<uint8_t> objectArchive(llvm::ArrayRef<uint8_t> dataPkl) {
  std::vector<uint8_t> out;
  auto size = writeObjectArchive(
      [&](llvm::ArrayRef<uint8_t> b) {
        out.insert(out.end(), b.begin(), b.end());
        return llvm::Error::success();
      },
      dataPkl);
  llvm::cantFail(size.takeError());
  return out;
}

} // namespace ckptmap::mcore
