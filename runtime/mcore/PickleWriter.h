// Emits pickle opcodes the way CPython's C pickler does (integer and string encodings, memo
// opcodes, protocol 4 framing), for writers that must reproduce PyTorch's files byte for byte.
// Callers decide what is memoized and when an object's save() ends, mirroring the object
// graph they describe.
#pragma once

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <vector>

namespace ckptmap::mcore {

class PickleOut {
public:
  /// Protocol 2 (torch.save's data.pkl) or 4 (framed; torch.distributed.checkpoint's .metadata).
  explicit PickleOut(int protocol);

  void op(uint8_t code);
  void none() { op('N'); }
  void boolean(bool v) { op(v ? 0x88 : 0x89); }
  void integer(int64_t v);
  void real(double v);
  /// The string opcode alone; follow with memoize() as CPython does for every str.
  void str(llvm::StringRef s);
  /// GLOBAL (protocol 2) or the module and name strings + STACK_GLOBAL (protocol 4, where
  /// the caller memoizes the two strings itself: use stackGlobal instead).
  void global2(llvm::StringRef module, llvm::StringRef name);
  /// Stores the stack top in the memo (BINPUT / LONG_BINPUT / MEMOIZE); returns its index.
  uint32_t memoize();
  void get(uint32_t index);
  /// End of one object's save(): where CPython may close a protocol 4 frame.
  void endSave();
  /// STOP, the last frame committed; the finished bytes.
  std::vector<uint8_t> finish();

private:
  void raw(llvm::ArrayRef<uint8_t> bytes);
  void startFrameIfNeeded();
  void commitFrame();

  int protocol_;
  std::vector<uint8_t> out_;
  uint32_t memoCount_ = 0;
  int64_t frameStart_ = -1; ///< offset of the reserved 9-byte frame header; -1 when none open
};

/// Protocol 2 pickle of plain JSON-like data (null, bool, number, string, array -> list,
/// object -> dict), as CPython's pickler writes the equivalent Python value.
std::vector<uint8_t> pickleJson(const nlohmann::json &value);

} // namespace ckptmap::mcore
