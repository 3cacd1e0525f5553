#include "runtime/mcore/Pickle.h"

#include "runtime/mcore/Errors.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringMap.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>
#include <unordered_map>

namespace ckptmap::mcore {

namespace {

// Every Python pickle opcode, for naming the rejected ones in errors.
struct OpcodeName {
  uint8_t code;
  const char *name;
};
constexpr OpcodeName kPythonOpcodes[] = {
    {'(', "MARK"}, {'.', "STOP"}, {'0', "POP"}, {'1', "POP_MARK"}, {'2', "DUP"},
    {'F', "FLOAT"}, {'I', "INT"}, {'J', "BININT"}, {'K', "BININT1"}, {'L', "LONG"},
    {'M', "BININT2"}, {'N', "NONE"}, {'P', "PERSID"}, {'Q', "BINPERSID"}, {'R', "REDUCE"},
    {'S', "STRING"}, {'T', "BINSTRING"}, {'U', "SHORT_BINSTRING"}, {'V', "UNICODE"},
    {'X', "BINUNICODE"}, {'a', "APPEND"}, {'b', "BUILD"}, {'c', "GLOBAL"}, {'d', "DICT"},
    {'}', "EMPTY_DICT"}, {'e', "APPENDS"}, {'g', "GET"}, {'h', "BINGET"}, {'i', "INST"},
    {'j', "LONG_BINGET"}, {'l', "LIST"}, {']', "EMPTY_LIST"}, {'o', "OBJ"}, {'p', "PUT"},
    {'q', "BINPUT"}, {'r', "LONG_BINPUT"}, {'s', "SETITEM"}, {'t', "TUPLE"},
    {')', "EMPTY_TUPLE"}, {'u', "SETITEMS"}, {'G', "BINFLOAT"}, {0x80, "PROTO"},
    {0x81, "NEWOBJ"}, {0x82, "EXT1"}, {0x83, "EXT2"}, {0x84, "EXT4"}, {0x85, "TUPLE1"},
    {0x86, "TUPLE2"}, {0x87, "TUPLE3"}, {0x88, "NEWTRUE"}, {0x89, "NEWFALSE"},
    {0x8a, "LONG1"}, {0x8b, "LONG4"}, {'B', "BINBYTES"}, {'C', "SHORT_BINBYTES"},
    {0x8c, "SHORT_BINUNICODE"}, {0x8d, "BINUNICODE8"}, {0x8e, "BINBYTES8"},
    {0x8f, "EMPTY_SET"}, {0x90, "ADDITEMS"}, {0x91, "FROZENSET"}, {0x92, "NEWOBJ_EX"},
    {0x93, "STACK_GLOBAL"}, {0x94, "MEMOIZE"}, {0x95, "FRAME"}, {0x96, "BYTEARRAY8"},
    {0x97, "NEXT_BUFFER"}, {0x98, "READONLY_BUFFER"},
};

// The opcodes accepted: what protocol 2 (torch.save's data.pkl) and protocol 4
// (torch.distributed.checkpoint's .metadata) emit for plain data, dataclasses and torch
// tensors. Anything else is rejected, known to Python or not.
constexpr uint8_t kAccepted[] = {
    0x80 /*PROTO*/, 0x95 /*FRAME*/, '.' /*STOP*/, '(' /*MARK*/, '0' /*POP*/,
    'N' /*NONE*/, 0x88 /*NEWTRUE*/, 0x89 /*NEWFALSE*/,
    'J' /*BININT*/, 'K' /*BININT1*/, 'M' /*BININT2*/, 0x8a /*LONG1*/, 'G' /*BINFLOAT*/,
    'X' /*BINUNICODE*/, 0x8c /*SHORT_BINUNICODE*/, 0x8d /*BINUNICODE8*/,
    'B' /*BINBYTES*/, 'C' /*SHORT_BINBYTES*/,
    ')' /*EMPTY_TUPLE*/, 't' /*TUPLE*/, 0x85 /*TUPLE1*/, 0x86 /*TUPLE2*/, 0x87 /*TUPLE3*/,
    ']' /*EMPTY_LIST*/, 'a' /*APPEND*/, 'e' /*APPENDS*/,
    '}' /*EMPTY_DICT*/, 's' /*SETITEM*/, 'u' /*SETITEMS*/,
    0x8f /*EMPTY_SET*/, 0x90 /*ADDITEMS*/,
    'c' /*GLOBAL*/, 0x93 /*STACK_GLOBAL*/, 'R' /*REDUCE*/, 0x81 /*NEWOBJ*/, 'b' /*BUILD*/,
    'Q' /*BINPERSID*/,
    'q' /*BINPUT*/, 'r' /*LONG_BINPUT*/, 0x94 /*MEMOIZE*/, 'h' /*BINGET*/, 'j' /*LONG_BINGET*/,
};

// The globals accepted, and how each may be used. Nothing is ever imported or called: a
// call is recorded as an Object for the readers to interpret.
constexpr AllowedGlobal kAllowed[] = {
    // torch.distributed.checkpoint metadata (.metadata of a torch_dist directory)
    {"torch.distributed.checkpoint.metadata", "Metadata", GlobalRole::Class},
    {"torch.distributed.checkpoint.metadata", "TensorStorageMetadata", GlobalRole::Class},
    {"torch.distributed.checkpoint.metadata", "ChunkStorageMetadata", GlobalRole::Class},
    {"torch.distributed.checkpoint.metadata", "TensorProperties", GlobalRole::Class},
    {"torch.distributed.checkpoint.metadata", "BytesStorageMetadata", GlobalRole::Class},
    {"torch.distributed.checkpoint.metadata", "MetadataIndex", GlobalRole::Class},
    {"torch.distributed.checkpoint.metadata", "StorageMeta", GlobalRole::Class},
    {"torch.distributed.checkpoint.metadata", "_MEM_FORMAT_ENCODING", GlobalRole::Class},
    {"torch.distributed.checkpoint.filesystem", "_StorageInfo", GlobalRole::Class},
    {"torch", "Size", GlobalRole::Class},
    {"torch.serialization", "_get_layout", GlobalRole::Function},
    // torch.save archives (data.pkl): tensors and their storages
    {"torch._utils", "_rebuild_tensor_v2", GlobalRole::Function},
    {"torch._utils", "_rebuild_tensor_v3", GlobalRole::Function},
    {"torch._utils", "_rebuild_parameter", GlobalRole::Function},
    {"collections", "OrderedDict", GlobalRole::Class},
    {"torch", "DoubleStorage", GlobalRole::Constant},
    {"torch", "FloatStorage", GlobalRole::Constant},
    {"torch", "HalfStorage", GlobalRole::Constant},
    {"torch", "BFloat16Storage", GlobalRole::Constant},
    {"torch", "LongStorage", GlobalRole::Constant},
    {"torch", "IntStorage", GlobalRole::Constant},
    {"torch", "ShortStorage", GlobalRole::Constant},
    {"torch", "CharStorage", GlobalRole::Constant},
    {"torch", "ByteStorage", GlobalRole::Constant},
    {"torch", "BoolStorage", GlobalRole::Constant},
    {"torch", "UntypedStorage", GlobalRole::Constant},
    // dtypes (TensorProperties.dtype, _rebuild_tensor_v3's dtype, args of training runs)
    {"torch", "float64", GlobalRole::Constant},
    {"torch", "float32", GlobalRole::Constant},
    {"torch", "float16", GlobalRole::Constant},
    {"torch", "bfloat16", GlobalRole::Constant},
    {"torch", "float8_e4m3fn", GlobalRole::Constant},
    {"torch", "float8_e5m2", GlobalRole::Constant},
    {"torch", "float8_e8m0fnu", GlobalRole::Constant},
    {"torch", "int64", GlobalRole::Constant},
    {"torch", "int32", GlobalRole::Constant},
    {"torch", "int16", GlobalRole::Constant},
    {"torch", "int8", GlobalRole::Constant},
    {"torch", "uint64", GlobalRole::Constant},
    {"torch", "uint32", GlobalRole::Constant},
    {"torch", "uint16", GlobalRole::Constant},
    {"torch", "uint8", GlobalRole::Constant},
    {"torch", "bool", GlobalRole::Constant},
    // legacy per-rank files: the training arguments, and the RNG state that is skipped
    {"argparse", "Namespace", GlobalRole::Class},
    {"megatron.core.enums", "ModelType", GlobalRole::Class},
    {"megatron.core.transformer.enums", "AttnBackend", GlobalRole::Class},
    {"numpy.core.multiarray", "_reconstruct", GlobalRole::Function},
    {"numpy._core.multiarray", "_reconstruct", GlobalRole::Function},
    {"numpy.core.multiarray", "scalar", GlobalRole::Function},
    {"numpy._core.multiarray", "scalar", GlobalRole::Function},
    {"numpy", "ndarray", GlobalRole::Class},
    {"numpy", "dtype", GlobalRole::Class},
    {"_codecs", "encode", GlobalRole::Function},
};

const char *pythonOpcodeName(uint8_t code) {
  for (const OpcodeName &o : kPythonOpcodes)
    if (o.code == code)
      return o.name;
  return nullptr;
}

bool accepted(uint8_t code) {
  for (uint8_t c : kAccepted)
    if (c == code)
      return true;
  return false;
}

const AllowedGlobal *findAllowed(llvm::StringRef module, llvm::StringRef name) {
  for (const AllowedGlobal &g : kAllowed)
    if (module == g.module && name == g.name)
      return &g;
  return nullptr;
}

} // namespace

llvm::ArrayRef<AllowedGlobal> allowedGlobals() { return kAllowed; }
llvm::ArrayRef<uint8_t> acceptedOpcodes() { return kAccepted; }

const PyValue *PyValue::get(llvm::StringRef key) const {
  const PyValue *dict = this;
  if (kind == PyKind::Object)
    dict = state;
  if (!dict || dict->kind != PyKind::Dict)
    return nullptr;
  for (size_t i = 0; i + 1 < dict->items.size(); i += 2)
    if (dict->items[i]->kind == PyKind::Str && dict->items[i]->text == key)
      return dict->items[i + 1];
  return nullptr;
}

Pickle::~Pickle() = default;

// ---------------------------------------------------------------------------------------------

class Unpickler {
public:
  Unpickler(Pickle &out, const PickleLimits &limits) : out_(out), limits_(limits) {}

  llvm::Error run() {
    const uint8_t *b = out_.bytes_.data();
    const size_t n = out_.bytes_.size();
    pos_ = 0;
    while (true) {
      opPos_ = pos_;
      if (pos_ >= n)
        return fail("ends without STOP (truncated?)");
      uint8_t op = b[pos_++];
      if (!accepted(op)) {
        if (const char *name = pythonOpcodeName(op))
          return fail("opcode " + hex(op) + " '" + name + "' is not accepted");
        return fail("unknown opcode " + hex(op));
      }
      switch (op) {
      case 0x80: { // PROTO
        uint8_t proto = 0;
        if (auto e = readU8(proto))
          return e;
        if (proto > 5)
          return fail("protocol " + std::to_string(proto) + " is not supported");
        break;
      }
      case 0x95: { // FRAME: a buffering hint; its length must fit the data
        uint64_t len = 0;
        if (auto e = readLE(8, len))
          return e;
        if (len > n - pos_)
          return fail("frame of " + std::to_string(len) + " bytes runs past the end");
        break;
      }
      case '.': { // STOP
        if (stack_.empty())
          return fail("STOP with an empty stack");
        out_.root_ = stack_.back();
        return llvm::Error::success();
      }
      case '(': // MARK
        if (marks_.size() >= limits_.maxMarkDepth)
          return fail("more than " + std::to_string(limits_.maxMarkDepth) + " nested marks");
        marks_.push_back(stack_.size());
        break;
      case '0': // POP
        if (stack_.empty())
          return fail("POP with an empty stack");
        if (!marks_.empty() && marks_.back() == stack_.size())
          return fail("POP across a mark");
        stack_.pop_back();
        break;
      case 'N':
        if (auto e = push(make(PyKind::None)))
          return e;
        break;
      case 0x88:
      case 0x89: {
        PyValue *v = make(PyKind::Bool);
        if (!v)
          return tooMany();
        v->boolean = op == 0x88;
        if (auto e = push(v))
          return e;
        break;
      }
      case 'J': {
        uint64_t raw = 0;
        if (auto e = readLE(4, raw))
          return e;
        if (auto e = pushInt(int64_t(int32_t(uint32_t(raw)))))
          return e;
        break;
      }
      case 'K': {
        uint64_t raw = 0;
        if (auto e = readLE(1, raw))
          return e;
        if (auto e = pushInt(int64_t(raw)))
          return e;
        break;
      }
      case 'M': {
        uint64_t raw = 0;
        if (auto e = readLE(2, raw))
          return e;
        if (auto e = pushInt(int64_t(raw)))
          return e;
        break;
      }
      case 0x8a: { // LONG1: little-endian two's complement of up to 8 bytes here
        uint8_t len = 0;
        if (auto e = readU8(len))
          return e;
        if (len > 8)
          return fail("integer of " + std::to_string(len) + " bytes does not fit 64 bits");
        if (len > n - pos_)
          return truncated();
        uint64_t raw = 0;
        for (unsigned i = 0; i < len; ++i)
          raw |= uint64_t(b[pos_ + i]) << (8 * i);
        if (len > 0 && len < 8 && (b[pos_ + len - 1] & 0x80))
          raw |= ~uint64_t(0) << (8 * len);
        pos_ += len;
        if (auto e = pushInt(int64_t(raw)))
          return e;
        break;
      }
      case 'G': { // BINFLOAT: big-endian IEEE double
        if (n - pos_ < 8)
          return truncated();
        uint64_t raw = 0;
        for (int i = 0; i < 8; ++i)
          raw = raw << 8 | b[pos_ + i];
        pos_ += 8;
        PyValue *v = make(PyKind::Float);
        if (!v)
          return tooMany();
        std::memcpy(&v->real, &raw, 8);
        if (auto e = push(v))
          return e;
        break;
      }
      case 'X':
      case 0x8c:
      case 0x8d:
      case 'B':
      case 'C': {
        unsigned width = op == 'X' || op == 'B' ? 4 : op == 0x8d ? 8 : 1;
        uint64_t len = 0;
        if (auto e = readLE(width, len))
          return e;
        if (len > n - pos_)
          return truncated();
        PyValue *v = make(op == 'B' || op == 'C' ? PyKind::Bytes : PyKind::Str);
        if (!v)
          return tooMany();
        v->text = llvm::StringRef(reinterpret_cast<const char *>(b + pos_), len);
        pos_ += len;
        if (auto e = push(v))
          return e;
        break;
      }
      case ')':
        if (auto e = push(make(PyKind::Tuple)))
          return e;
        break;
      case 't': {
        std::vector<PyValue *> items;
        if (auto e = popMark(items))
          return e;
        if (auto e = pushSequence(PyKind::Tuple, std::move(items)))
          return e;
        break;
      }
      case 0x85:
      case 0x86:
      case 0x87: {
        size_t k = op - 0x84;
        if (stack_.size() < k || (!marks_.empty() && stack_.size() - marks_.back() < k))
          return fail(std::string(pythonOpcodeName(op)) + " needs " + std::to_string(k) + " items on the stack");
        std::vector<PyValue *> items(stack_.end() - k, stack_.end());
        stack_.resize(stack_.size() - k);
        if (auto e = pushSequence(PyKind::Tuple, std::move(items)))
          return e;
        break;
      }
      case ']':
        if (auto e = push(make(PyKind::List)))
          return e;
        break;
      case '}':
        if (auto e = push(make(PyKind::Dict)))
          return e;
        break;
      case 0x8f:
        if (auto e = push(make(PyKind::Set)))
          return e;
        break;
      case 'a': { // APPEND
        if (stack_.size() < 2 || aboveMark() < 1)
          return fail("APPEND needs a list and an item");
        PyValue *item = pop();
        PyValue *list = stack_.back();
        if (list->kind != PyKind::List)
          return fail("APPEND to a " + kindName(list->kind) + ", not a list");
        list->items.push_back(item);
        break;
      }
      case 'e':
      case 0x90: { // APPENDS, ADDITEMS
        std::vector<PyValue *> items;
        if (auto e = popMark(items))
          return e;
        PyKind want = op == 'e' ? PyKind::List : PyKind::Set;
        if (stack_.empty() || stack_.back()->kind != want)
          return fail(std::string(pythonOpcodeName(op)) + " without a " + kindName(want) + " below its mark");
        auto &dst = stack_.back()->items;
        dst.insert(dst.end(), items.begin(), items.end());
        break;
      }
      case 's': { // SETITEM
        if (stack_.size() < 3 || aboveMark() < 2)
          return fail("SETITEM needs a dict, a key and a value");
        PyValue *value = pop();
        PyValue *key = pop();
        if (auto e = setItems(stack_.back(), {key, value}))
          return e;
        break;
      }
      case 'u': { // SETITEMS
        std::vector<PyValue *> items;
        if (auto e = popMark(items))
          return e;
        if (items.size() % 2)
          return fail("SETITEMS with an odd number of items");
        if (stack_.empty())
          return fail("SETITEMS without a dict below its mark");
        if (auto e = setItems(stack_.back(), items))
          return e;
        break;
      }
      case 'c': { // GLOBAL "module\nname\n"
        llvm::StringRef module, name;
        if (auto e = readLine(module))
          return e;
        if (auto e = readLine(name))
          return e;
        if (auto e = pushGlobal(module, name))
          return e;
        break;
      }
      case 0x93: { // STACK_GLOBAL
        if (stack_.size() < 2 || aboveMark() < 2)
          return fail("STACK_GLOBAL needs a module and a name");
        PyValue *name = pop();
        PyValue *module = pop();
        if (module->kind != PyKind::Str || name->kind != PyKind::Str)
          return fail("STACK_GLOBAL of non-string module or name");
        if (auto e = pushGlobal(module->text, name->text))
          return e;
        break;
      }
      case 'R': { // REDUCE callable(*args)
        if (stack_.size() < 2 || aboveMark() < 2)
          return fail("REDUCE needs a callable and arguments");
        PyValue *args = pop();
        PyValue *callee = pop();
        if (auto e = call(callee, args, "REDUCE"))
          return e;
        break;
      }
      case 0x81: { // NEWOBJ cls.__new__(cls, *args)
        if (stack_.size() < 2 || aboveMark() < 2)
          return fail("NEWOBJ needs a class and arguments");
        PyValue *args = pop();
        PyValue *cls = pop();
        if (cls->kind != PyKind::Global || findAllowed(cls->text, cls->name)->role != GlobalRole::Class)
          return fail("NEWOBJ of " + describe(*cls) + ", which is not an allowed class");
        if (auto e = call(cls, args, "NEWOBJ"))
          return e;
        break;
      }
      case 'b': { // BUILD
        if (stack_.size() < 2 || aboveMark() < 2)
          return fail("BUILD needs an object and a state");
        PyValue *state = pop();
        PyValue *obj = stack_.back();
        if (obj->kind != PyKind::Object)
          return fail("BUILD on a " + kindName(obj->kind) + ", not an object");
        if (obj->state)
          return fail("BUILD twice on one " + describe(*obj->callee) + " object");
        obj->state = state;
        break;
      }
      case 'Q': { // BINPERSID
        if (stack_.empty() || aboveMark() < 1)
          return fail("BINPERSID needs an id");
        PyValue *id = pop();
        PyValue *v = make(PyKind::PersistentId);
        if (!v)
          return tooMany();
        v->state = id;
        if (auto e = push(v))
          return e;
        break;
      }
      case 'q':
      case 'r':
      case 0x94: { // BINPUT, LONG_BINPUT, MEMOIZE
        uint64_t index = memo_.size();
        if (op != 0x94)
          if (auto e = readLE(op == 'q' ? 1 : 4, index))
            return e;
        if (stack_.empty())
          return fail("memo store with an empty stack");
        if (memo_.size() >= limits_.maxMemo)
          return fail("more than " + std::to_string(limits_.maxMemo) + " memo entries");
        memo_[index] = stack_.back();
        break;
      }
      case 'h':
      case 'j': { // BINGET, LONG_BINGET
        uint64_t index = 0;
        if (auto e = readLE(op == 'h' ? 1 : 4, index))
          return e;
        auto it = memo_.find(index);
        if (it == memo_.end())
          return fail("memo entry " + std::to_string(index) + " was never stored");
        if (auto e = push(it->second))
          return e;
        break;
      }
      default:
        return fail("opcode " + hex(op) + " is listed but not handled");
      }
    }
  }

private:
  llvm::Error fail(const std::string &what) const {
    return makeError(out_.label_ + ": pickle offset " + std::to_string(opPos_) + ": " + what);
  }
  llvm::Error truncated() const { return fail("data runs past the end (truncated?)"); }
  llvm::Error tooMany() const {
    return fail("more than " + std::to_string(limits_.maxValues) + " values");
  }
  static std::string hex(uint8_t op) {
    static const char digits[] = "0123456789abcdef";
    return std::string("0x") + digits[op >> 4] + digits[op & 15];
  }
  static std::string kindName(PyKind k) {
    switch (k) {
    case PyKind::None: return "None";
    case PyKind::Bool: return "bool";
    case PyKind::Int: return "int";
    case PyKind::Float: return "float";
    case PyKind::Str: return "str";
    case PyKind::Bytes: return "bytes";
    case PyKind::Tuple: return "tuple";
    case PyKind::List: return "list";
    case PyKind::Dict: return "dict";
    case PyKind::Set: return "set";
    case PyKind::Global: return "global";
    case PyKind::Object: return "object";
    case PyKind::PersistentId: return "persistent id";
    }
    return "?";
  }
  static std::string describe(const PyValue &v) {
    if (v.kind == PyKind::Global)
      return "'" + v.text.str() + "." + v.name.str() + "'";
    return "a " + kindName(v.kind);
  }

  PyValue *make(PyKind kind) {
    if (count_ >= limits_.maxValues)
      return nullptr;
    ++count_;
    PyValue *v = new (out_.arena_.Allocate()) PyValue();
    v->kind = kind;
    return v;
  }
  llvm::Error push(PyValue *v) {
    if (!v)
      return tooMany();
    if (stack_.size() >= limits_.maxStack)
      return fail("stack deeper than " + std::to_string(limits_.maxStack));
    stack_.push_back(v);
    return llvm::Error::success();
  }
  PyValue *pop() {
    PyValue *v = stack_.back();
    stack_.pop_back();
    return v;
  }
  size_t aboveMark() const { return marks_.empty() ? stack_.size() : stack_.size() - marks_.back(); }
  llvm::Error pushInt(int64_t value) {
    PyValue *v = make(PyKind::Int);
    if (!v)
      return tooMany();
    v->integer = value;
    return push(v);
  }
  llvm::Error pushSequence(PyKind kind, std::vector<PyValue *> items) {
    PyValue *v = make(kind);
    if (!v)
      return tooMany();
    v->items = std::move(items);
    return push(v);
  }
  llvm::Error popMark(std::vector<PyValue *> &items) {
    if (marks_.empty())
      return fail("no MARK to pop to");
    size_t m = marks_.back();
    marks_.pop_back();
    items.assign(stack_.begin() + m, stack_.end());
    stack_.resize(m);
    return llvm::Error::success();
  }
  llvm::Error setItems(PyValue *dict, llvm::ArrayRef<PyValue *> kv) {
    if (dict->kind != PyKind::Dict)
      return fail("SETITEM(S) on a " + kindName(dict->kind) + ", not a dict");
    // Later keys replace earlier equal ones, as in Python (for str and int keys, found
    // through a per-dict index so large dicts stay linear).
    KeyIndex &index = keyIndex_[dict];
    for (size_t i = 0; i < kv.size(); i += 2) {
      const PyValue *k = kv[i];
      size_t *slot = nullptr;
      if (k->kind == PyKind::Str)
        slot = &index.strs.try_emplace(k->text, SIZE_MAX).first->second;
      else if (k->kind == PyKind::Int)
        slot = &index.ints.try_emplace(k->integer, SIZE_MAX).first->second;
      if (slot && *slot != SIZE_MAX) {
        dict->items[*slot + 1] = kv[i + 1];
        continue;
      }
      if (slot)
        *slot = dict->items.size();
      dict->items.push_back(kv[i]);
      dict->items.push_back(kv[i + 1]);
    }
    return llvm::Error::success();
  }
  llvm::Error pushGlobal(llvm::StringRef module, llvm::StringRef name) {
    if (!findAllowed(module, name))
      return fail("global '" + module.str() + "." + name.str() +
                  "' is not allowed (only the classes and functions of torch checkpoints are)");
    PyValue *v = make(PyKind::Global);
    if (!v)
      return tooMany();
    v->text = module;
    v->name = name;
    return push(v);
  }
  llvm::Error call(PyValue *callee, PyValue *args, const char *op) {
    if (callee->kind != PyKind::Global)
      return fail(std::string(op) + " calls " + describe(*callee) + ", not an allowed global");
    const AllowedGlobal *g = findAllowed(callee->text, callee->name);
    if (g->role == GlobalRole::Constant)
      return fail(std::string(op) + " calls " + describe(*callee) + ", which is not callable here");
    if (args->kind != PyKind::Tuple)
      return fail(std::string(op) + " of " + describe(*callee) + " with " + kindName(args->kind) +
                  " arguments, not a tuple");
    if (callee->isGlobal("collections", "OrderedDict")) {
      if (!args->items.empty())
        return fail("OrderedDict with constructor arguments is not supported");
      PyValue *d = make(PyKind::Dict);
      if (!d)
        return tooMany();
      d->ordered = true;
      return push(d);
    }
    PyValue *v = make(PyKind::Object);
    if (!v)
      return tooMany();
    v->callee = callee;
    v->items = args->items;
    return push(v);
  }
  llvm::Error readU8(uint8_t &v) {
    if (pos_ >= out_.bytes_.size())
      return truncated();
    v = out_.bytes_[pos_++];
    return llvm::Error::success();
  }
  llvm::Error readLE(unsigned width, uint64_t &v) {
    if (out_.bytes_.size() - pos_ < width)
      return truncated();
    v = 0;
    for (unsigned i = 0; i < width; ++i)
      v |= uint64_t(out_.bytes_[pos_ + i]) << (8 * i);
    pos_ += width;
    return llvm::Error::success();
  }
  llvm::Error readLine(llvm::StringRef &line) {
    const auto &b = out_.bytes_;
    size_t end = pos_;
    while (end < b.size() && b[end] != '\n' && end - pos_ < 256)
      ++end;
    if (end >= b.size() || b[end] != '\n')
      return fail("GLOBAL name not terminated by a newline within 256 bytes");
    line = llvm::StringRef(reinterpret_cast<const char *>(b.data() + pos_), end - pos_);
    pos_ = end + 1;
    return llvm::Error::success();
  }

  Pickle &out_;
  const PickleLimits &limits_;
  size_t pos_ = 0, opPos_ = 0, count_ = 0;
  std::vector<PyValue *> stack_;
  std::vector<size_t> marks_;
  llvm::DenseMap<uint64_t, PyValue *> memo_;
  struct KeyIndex {
    llvm::StringMap<size_t> strs;
    std::map<int64_t, size_t> ints;
  };
  std::unordered_map<const PyValue *, KeyIndex> keyIndex_;
};

llvm::Expected<std::unique_ptr<Pickle>> Pickle::parse(llvm::ArrayRef<uint8_t> bytes, std::string label,
                                                      const PickleLimits &limits) {
  std::unique_ptr<Pickle> p(new Pickle());
  p->bytes_.assign(bytes.begin(), bytes.end());
  p->label_ = std::move(label);
  Unpickler u(*p, limits);
  if (auto err = u.run())
    return err;
  return p;
}

// ---------------------------------------------------------------------------------------------

namespace {

void quote(std::string &out, llvm::StringRef s, char prefix) {
  if (prefix)
    out += prefix;
  out += '\'';
  for (char c : s) {
    if (c == '\'' || c == '\\') {
      out += '\\';
      out += c;
    } else if (uint8_t(c) < 0x20 || (prefix == 'b' && uint8_t(c) >= 0x7f)) {
      static const char digits[] = "0123456789abcdef";
      out += "\\x";
      out += digits[uint8_t(c) >> 4];
      out += digits[uint8_t(c) & 15];
    } else {
      out += c;
    }
  }
  out += '\'';
}

void repr(std::string &out, const PyValue &v, unsigned depth, size_t maxLength,
          std::vector<const PyValue *> &open) {
  if (out.size() > maxLength) {
    return;
  }
  if (depth == 0) {
    out += "...";
    return;
  }
  if (std::find(open.begin(), open.end(), &v) != open.end()) { // a container inside itself
    out += v.kind == PyKind::List ? "[...]" : v.kind == PyKind::Dict ? "{...}" : "...";
    return;
  }
  open.push_back(&v);
  struct Pop {
    std::vector<const PyValue *> &open;
    ~Pop() { open.pop_back(); }
  } pop{open};
  auto seq = [&](llvm::ArrayRef<PyValue *> items, const char *openText, const char *closeText, bool trailingComma) {
    out += openText;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i)
        out += ", ";
      if (out.size() > maxLength) {
        out += "...";
        break;
      }
      repr(out, *items[i], depth - 1, maxLength, open);
    }
    if (trailingComma && items.size() == 1)
      out += ",";
    out += closeText;
  };
  switch (v.kind) {
  case PyKind::None: out += "None"; return;
  case PyKind::Bool: out += v.boolean ? "True" : "False"; return;
  case PyKind::Int: out += std::to_string(v.integer); return;
  case PyKind::Float: {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v.real);
    std::string s(buf, r.ptr);
    if (s.find_first_of(".eni") == std::string::npos)
      s += ".0";
    out += s;
    return;
  }
  case PyKind::Str: quote(out, v.text, 0); return;
  case PyKind::Bytes: quote(out, v.text, 'b'); return;
  case PyKind::Tuple: seq(v.items, "(", ")", true); return;
  case PyKind::List: seq(v.items, "[", "]", false); return;
  case PyKind::Set: seq(v.items, "{", "}", false); return;
  case PyKind::Dict: {
    out += v.ordered ? "OrderedDict({" : "{";
    for (size_t i = 0; i + 1 < v.items.size(); i += 2) {
      if (i)
        out += ", ";
      if (out.size() > maxLength) {
        out += "...";
        break;
      }
      repr(out, *v.items[i], depth - 1, maxLength, open);
      out += ": ";
      repr(out, *v.items[i + 1], depth - 1, maxLength, open);
    }
    out += v.ordered ? "})" : "}";
    return;
  }
  case PyKind::Global: out += (v.text + "." + v.name).str(); return;
  case PyKind::Object: {
    out += (v.callee->text + "." + v.callee->name).str();
    if (v.isObjectOf("torch", "Size") && v.items.size() == 1) {
      out += "(";
      seq(v.items[0]->items, "[", "]", false);
      out += ")";
      return;
    }
    seq(v.items, "(", ")", false);
    if (v.state) {
      out += " with state ";
      repr(out, *v.state, depth - 1, maxLength, open);
    }
    return;
  }
  case PyKind::PersistentId:
    out += "persistent_id(";
    repr(out, *v.state, depth - 1, maxLength, open);
    out += ")";
    return;
  }
}

} // namespace

std::string pyRepr(const PyValue &value, unsigned maxDepth, size_t maxLength) {
  std::string out;
  std::vector<const PyValue *> open;
  repr(out, value, maxDepth, maxLength, open);
  return out;
}

std::optional<std::vector<int64_t>> intSequence(const PyValue &value) {
  if (value.kind != PyKind::Tuple && value.kind != PyKind::List)
    return std::nullopt;
  std::vector<int64_t> out;
  out.reserve(value.items.size());
  for (const PyValue *v : value.items) {
    if (v->kind != PyKind::Int)
      return std::nullopt;
    out.push_back(v->integer);
  }
  return out;
}

} // namespace ckptmap::mcore
