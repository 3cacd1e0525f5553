// torch.save archives: the zip of one `data.pkl` plus one `data/{key}` entry per storage.
// Reading interprets the tensors data.pkl describes (never running it); writing produces
// archives byte-identical to torch.save's for one contiguous tensor or one pickled object.
#pragma once

#include "base/DType.h"
#include "compiler/TensorMeta.h"
#include "runtime/mcore/Pickle.h"
#include "runtime/mcore/Zip.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <optional>
#include <string>

namespace ckptmap::mcore {

/// torch's dtype attribute name ("bfloat16") for a DType, and back.
llvm::StringRef torchDTypeName(DType t);
std::optional<DType> dtypeFromTorchName(llvm::StringRef name);
/// The typed storage class torch.save pickles for a dtype ("BFloat16Storage"); empty for the
/// dtypes torch.save writes as an UntypedStorage with _rebuild_tensor_v3 (float8, uint16..64).
llvm::StringRef torchStorageClass(DType t);
std::optional<DType> dtypeFromStorageClass(llvm::StringRef name);

/// A tensor as a data.pkl describes it: a strided view of one storage.
struct StoredTensor {
  DType dtype = DType::F32;
  std::string storageKey;   ///< "0": the entry `<top>/data/0`
  int64_t storageBytes = 0; ///< bytes the storage must hold
  int64_t offset = 0;       ///< storage offset, in elements
  Shape size;
  Shape stride; ///< in elements
};

/// Interprets `_rebuild_tensor_v2(persistent_id(('storage', torch.XStorage, key, location,
/// numel)), offset, size, stride, ...)`, its `_v3` form (UntypedStorage + explicit dtype) and
/// `_rebuild_parameter(tensor, ...)`. `where` prefixes errors. Checks the view lies inside
/// the storage.
llvm::Expected<StoredTensor> storedTensor(const PyValue &value, const std::string &where);

/// An opened torch.save archive.
class TorchSaveArchive {
public:
  /// `bytes` must outlive the archive (a mapped file or a range of one).
  static llvm::Expected<std::unique_ptr<TorchSaveArchive>> open(llvm::ArrayRef<uint8_t> bytes,
                                                               std::string label);
  const ZipArchive &zip() const { return zip_; }
  const Pickle &pickle() const { return *pickle_; }
  const std::string &label() const { return zip_.label(); }

  /// The storage's bytes, checked to hold `t.storageBytes` (and its CRC when asked).
  llvm::Expected<llvm::ArrayRef<uint8_t>> storage(const StoredTensor &t, bool verifyCrc) const;

private:
  ZipArchive zip_;
  std::unique_ptr<Pickle> pickle_;
};

/// data.pkl of torch.save(t) for a contiguous tensor `t` of `dtype` and `shape` whose storage
/// holds exactly its elements: the bytes torch writes.
std::vector<uint8_t> tensorPickle(DType dtype, llvm::ArrayRef<int64_t> shape);

/// Writes torch.save(t) for that tensor; `data` are its bytes. Returns the archive's size.
llvm::Expected<uint64_t> writeTensorArchive(const ByteSink &sink, DType dtype,
                                            llvm::ArrayRef<int64_t> shape,
                                            llvm::ArrayRef<uint8_t> data);
/// The size writeTensorArchive's archive will have, known before the data.
uint64_t tensorArchiveSize(DType dtype, llvm::ArrayRef<int64_t> shape);
/// Writes torch.save(obj) for an object with no storages, given its data.pkl.
llvm::Expected<uint64_t> writeObjectArchive(const ByteSink &sink, llvm::ArrayRef<uint8_t> dataPkl);
/// The same into memory.
std::vector<uint8_t> objectArchive(llvm::ArrayRef<uint8_t> dataPkl);

} // namespace ckptmap::mcore
