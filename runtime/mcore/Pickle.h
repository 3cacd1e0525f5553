// A restricted unpickler for the pickles inside Megatron-Core checkpoints (torch_dist
// `.metadata`, the `data.pkl` of every torch.save archive). It never imports or calls
// anything: it builds a value tree in which calls and instantiations are recorded, not made.
// Only the opcodes and globals these formats use are accepted (both lists live in
// Pickle.cpp, in one place each); anything else is an error naming the file, the offset and
// the opcode or global.
#pragma once

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Allocator.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ckptmap::mcore {

enum class PyKind : uint8_t {
  None, Bool, Int, Float, Str, Bytes,
  Tuple, List, Dict, Set,
  Global,       ///< a reference to an allowed module-level name (text = module, name = name)
  Object,       ///< callee(items...) recorded, with BUILD's state if any
  PersistentId, ///< a persistent id (torch.save's storage references); state = the id
};

struct PyValue {
  PyKind kind = PyKind::None;
  bool boolean = false; ///< Bool
  bool ordered = false; ///< Dict built by collections.OrderedDict
  int64_t integer = 0;  ///< Int
  double real = 0;      ///< Float
  llvm::StringRef text; ///< Str, Bytes; Global: module
  llvm::StringRef name; ///< Global: name
  /// Tuple, List, Set: elements. Dict: key0, value0, key1, value1, ... Object: call arguments.
  std::vector<PyValue *> items;
  PyValue *callee = nullptr; ///< Object: the Global called or instantiated
  PyValue *state = nullptr;  ///< Object: state set by BUILD; PersistentId: the id

  bool is(PyKind k) const { return kind == k; }
  bool isGlobal(llvm::StringRef module, llvm::StringRef globalName) const {
    return kind == PyKind::Global && text == module && name == globalName;
  }
  /// An Object made by calling/instantiating module.name.
  bool isObjectOf(llvm::StringRef module, llvm::StringRef globalName) const {
    return kind == PyKind::Object && callee && callee->isGlobal(module, globalName);
  }
  size_t dictSize() const { return kind == PyKind::Dict ? items.size() / 2 : 0; }
  /// Dict lookup by string key; for an Object, lookup in its state dict. nullptr if absent.
  const PyValue *get(llvm::StringRef key) const;
};

/// Bounds against hostile input. The defaults are far above anything a real checkpoint needs.
struct PickleLimits {
  size_t maxValues = size_t(1) << 26;
  size_t maxStack = size_t(1) << 24;
  size_t maxMarkDepth = 1024;
  size_t maxMemo = size_t(1) << 26;
};

/// A parsed pickle; owns its bytes and every value in the tree.
class Pickle {
public:
  /// `label` names the pickle in errors ("ckpt/.metadata", "x.pt:model_optim_rng/data.pkl").
  static llvm::Expected<std::unique_ptr<Pickle>> parse(llvm::ArrayRef<uint8_t> bytes, std::string label,
                                                       const PickleLimits &limits = {});
  const PyValue &root() const { return *root_; }
  const std::string &label() const { return label_; }

  Pickle(const Pickle &) = delete;
  Pickle &operator=(const Pickle &) = delete;
  ~Pickle();

private:
  Pickle() = default;
  friend class Unpickler;
  std::vector<uint8_t> bytes_;
  std::string label_;
  llvm::SpecificBumpPtrAllocator<PyValue> arena_;
  PyValue *root_ = nullptr;
};

/// How an allowed global may be used.
enum class GlobalRole : uint8_t {
  Class,    ///< NEWOBJ or REDUCE makes an Object; BUILD may set its state
  Function, ///< REDUCE records a call
  Constant, ///< only referenced (dtypes, storage types)
};

struct AllowedGlobal {
  const char *module;
  const char *name;
  GlobalRole role;
};

/// Every global the unpickler accepts.
llvm::ArrayRef<AllowedGlobal> allowedGlobals();
/// Every opcode the unpickler accepts, as bytes.
llvm::ArrayRef<uint8_t> acceptedOpcodes();

/// Python-like text of a value ("[None]", "{'a': 1}", "torch.Size([4, 64])"), cut at
/// `maxDepth` nesting levels and about `maxLength` characters.
std::string pyRepr(const PyValue &value, unsigned maxDepth = 16, size_t maxLength = 4096);

/// Integer tuple/list -> vector, or nullopt.
std::optional<std::vector<int64_t>> intSequence(const PyValue &value);

} // namespace ckptmap::mcore
