// Evaluates rule-language expressions to JSON values (config.json is JSON, so parameters,
// lists of layer types and nested config objects all share one value type).
#pragma once

#include "compiler/ast/AST.h"
#include "compiler/bind/TensorTable.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Error.h"

#include <nlohmann/json.hpp>

#include <functional>

namespace ckptmap {

using Value = nlohmann::json;

/// An evaluation failure at a position. `missing` marks a config key that does not exist,
/// which `a ?? b` turns into b.
class EvalError : public llvm::ErrorInfo<EvalError> {
public:
  static char ID;
  EvalError(SourceRange range, std::string message, bool missing = false, std::vector<std::string> notes = {})
      : range(range), message(std::move(message)), missing(missing), notes(std::move(notes)) {}
  void log(llvm::raw_ostream &os) const override { os << message; }
  std::error_code convertToErrorCode() const override { return llvm::inconvertibleErrorCode(); }

  SourceRange range;
  std::string message;
  bool missing;
  std::vector<std::string> notes; ///< "did you mean 'hidden_size'?"
};

/// Variables visible during evaluation, chained outward like the checker's scopes.
class Env {
public:
  explicit Env(const Env *parent = nullptr) : parent_(parent) {}
  void set(llvm::StringRef name, Value value);
  const Value *lookup(llvm::StringRef name) const;

private:
  const Env *parent_;
  /// A scope holds a loop variable or a few parameters, and a lookup walks every scope out
  /// to the globals: scanning a short list is cheaper than hashing the name at each one.
  llvm::SmallVector<std::pair<std::string, Value>, 1> vars_;
};

class Evaluator {
public:
  /// `config` is what the name `config` evaluates to; `tensors`, what `shape("name")` reads
  /// (none: shape() is an error).
  explicit Evaluator(const Value &config, const TensorTable *tensors = nullptr) : config_(config), tensors_(tensors) {}

  llvm::Expected<Value> eval(const ast::Expr &expr, const Env &env) const;
  llvm::Expected<int64_t> evalInt(const ast::Expr &expr, const Env &env) const;
  llvm::Expected<bool> evalBool(const ast::Expr &expr, const Env &env) const;
  llvm::Expected<std::string> evalString(const ast::Expr &expr, const Env &env) const;

private:
  llvm::Expected<Value> evalCall(const ast::CallExpr &call, const Env &env) const;
  llvm::Expected<Value> evalBinary(const ast::BinaryExpr &bin, const Env &env) const;

  const Value &config_;
  const TensorTable *tensors_;
};

/// "42", "\"mamba\"", "[1, 2]": values as the rule language writes them, for messages.
std::string formatValue(const Value &v);

/// Normalizes a dtype spelling (safetensors "BF16" or torch "bfloat16") to the safetensors
/// name; empty when unknown.
std::string normalizeDTypeName(llvm::StringRef name);

} // namespace ckptmap
