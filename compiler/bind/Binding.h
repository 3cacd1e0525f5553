// What the binder produces: the rules of one mapping instantiated for one checkpoint and
// one direction, every loop unrolled, every choice made, every name concrete.
#pragma once

#include "compiler/ast/AST.h"
#include "compiler/bind/Eval.h"
#include "compiler/check/Ops.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"

#include <optional>
#include <string>
#include <vector>

namespace ckptmap {

/// A tensor name whose captures may still be open: "model.visual.{*rest}".
class NameTemplate {
public:
  struct Piece {
    enum class Kind { Literal, Int, Rest } kind = Kind::Literal;
    std::string text; ///< Literal: characters; Int/Rest: the capture's name
    /// Int: the piece is the index scale * capture + offset (`{layers + M}`); 1 and 0 for
    /// the capture itself.
    int64_t scale = 1, offset = 0;
  };

  void appendLiteral(llvm::StringRef text);
  void appendCapture(llvm::StringRef name, bool rest);
  /// An index computed from integer capture `name`: scale * name + offset (scale != 0).
  void appendIndex(llvm::StringRef name, int64_t scale, int64_t offset);

  bool concrete() const;
  /// The name; only meaningful when concrete().
  std::string str() const;
  /// "model.visual.{*rest}", "mtp.{M + 4}": for messages, and read back by fromDisplay.
  std::string display() const;
  static NameTemplate fromDisplay(llvm::StringRef text);
  bool hasCapture(llvm::StringRef name) const;
  /// Matches a whole name, filling `captures` (names already in it must match the same text).
  /// An index piece matches the number it gives for a whole, non-negative capture.
  bool match(llvm::StringRef name, llvm::StringMap<std::string> &captures) const;
  NameTemplate instantiate(const llvm::StringMap<std::string> &captures) const;
  /// An index these captures would make negative, as "{M - 1} with M = 0"; empty when none.
  std::string negativeIndex(const llvm::StringMap<std::string> &captures) const;

private:
  bool matchFrom(size_t piece, llvm::StringRef rest, llvm::StringMap<std::string> &captures) const;
  /// The text of index piece `p` when its capture is `value`; nullopt when negative or out of range.
  static std::optional<std::string> indexText(const Piece &p, llvm::StringRef value);
  std::vector<Piece> pieces_;
};

/// One side of a rule after binding: a tensor, or an op over bound terms.
struct BoundTerm {
  enum class Kind { Tensor, Op } kind = Kind::Tensor;
  SourceRange range;
  NameTemplate name;                      ///< Tensor
  const OpInfo *op = nullptr;             ///< Op
  std::vector<BoundTerm> operands;
  std::vector<std::optional<int64_t>> sizes; ///< per operand: the size its rule states, if any
  std::vector<SourceRange> sizeRanges;       ///< per operand: where that size is written
  std::vector<std::string> sizeValues;       ///< per operand: the values it was computed from, "nv = 4"
  std::vector<Value> params;              ///< parallel to op->params; null when not given

  bool isTensor() const { return kind == Kind::Tensor; }
  /// Every tensor leaf, left to right.
  void leaves(llvm::SmallVectorImpl<const BoundTerm *> &out) const;
  void leaves(llvm::SmallVectorImpl<BoundTerm *> &out);
};

/// A rule instance oriented by the direction of the run.
struct BoundRule {
  BoundTerm source, target;
  const ast::RuleStmt *stmt = nullptr; ///< null for the renames of `keep` and `otherwise`
  const ast::Stmt *fallback = nullptr;  ///< the `keep` or `otherwise` that made this rename
  std::string variantTrail; ///< "norms=te, experts=grouped": the choices that led here
};

/// A tensor a drop consumes (source side) or restores (target side).
struct BoundDrop {
  const ast::DropStmt *stmt = nullptr;
  std::string name;
  bool consumes = true;   ///< false: the drop's side is the target, so this is a restore
  /// `restore copy`: the tensor of the same side this one duplicates. When consuming, the
  /// plan compares the two and keeps this one aside if they differ; when restoring, it is
  /// copied (or taken from what was kept aside).
  std::string copyOf;
  bool fromStash = false; ///< restoring a tensor that a forward run kept aside
  // `restore fill(value, shape, dtype)`
  bool fill = false;
  double fillValue = 0;
  std::vector<int64_t> fillShape;
  std::string fillDType;
  std::string variantTrail;
};

/// A target-side pattern of `restore from base`: the --hf-base tensors matching one of
/// `sources` are stored under `target`, their captures filled in.
struct BaseRestore {
  NameTemplate target;
  std::vector<NameTemplate> sources; ///< `target` itself when the drop names none
  const ast::DropStmt *stmt = nullptr;
};

/// How one `choose` came out at one place.
struct ChoiceRecord {
  std::string choice;
  std::string where;   ///< the scope prefixes, "decoder.layers.3. = model.layers.3."
  std::string variant;
  std::string reason;  ///< "only match", "--variant", "recorded", "default (first)", ...
  SourceRange range;
};

struct Binding {
  std::string from, to;
  std::vector<BoundRule> rules;
  std::vector<BoundDrop> drops;
  std::vector<ChoiceRecord> choices;
  /// Target-side patterns a drop does not restore from the source: `restore from base`
  /// (taken from --hf-base) or no restore at all (lost on this way).
  std::vector<BaseRestore> fromBase;
  std::vector<std::pair<NameTemplate, const ast::DropStmt *>> notRestored;
  Value params = Value::object(); ///< the rulebook's global parameters as bound
};

} // namespace ckptmap
