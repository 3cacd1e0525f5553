#include "compiler/bind/Eval.h"

#include "base/DType.h"

#include <cmath>

namespace ckptmap {

using namespace ast;
using llvm::cast;

char EvalError::ID = 0;

void Env::set(llvm::StringRef name, Value value) {
  for (auto &[n, v] : vars_)
    if (n == name) {
      v = std::move(value);
      return;
    }
  vars_.emplace_back(name.str(), std::move(value));
}

const Value *Env::lookup(llvm::StringRef name) const {
  for (const Env *e = this; e; e = e->parent_)
    for (const auto &[n, v] : e->vars_)
      if (n == name)
        return &v;
  return nullptr;
}

std::string formatValue(const Value &v) {
  if (v.is_string())
    return "\"" + v.get<std::string>() + "\"";
  if (v.is_null())
    return "null";
  return v.dump();
}

std::string normalizeDTypeName(llvm::StringRef name) {
  if (parseDType(name))
    return name.str();
  static const std::pair<const char *, const char *> torchNames[] = {
      {"float64", "F64"}, {"double", "F64"}, {"float32", "F32"}, {"float", "F32"},
      {"float16", "F16"}, {"half", "F16"}, {"bfloat16", "BF16"}, {"float8_e4m3fn", "F8_E4M3"},
      {"float8_e5m2", "F8_E5M2"}, {"float8_e8m0fnu", "F8_E8M0"}, {"int64", "I64"}, {"int32", "I32"},
      {"int16", "I16"}, {"int8", "I8"}, {"uint8", "U8"}, {"bool", "BOOL"}};
  llvm::StringRef bare = name;
  bare.consume_front("torch.");
  for (auto [torch, st] : torchNames)
    if (bare == torch)
      return st;
  return "";
}

static llvm::Error fail(SourceRange range, std::string message, bool missing = false,
                        std::vector<std::string> notes = {}) {
  return llvm::make_error<EvalError>(range, std::move(message), missing, std::move(notes));
}

/// "did you mean 'x'?" for a key `object` lacks, when one of its keys is close.
static std::vector<std::string> suggestKey(const Value &object, llvm::StringRef key) {
  std::vector<std::string> keys;
  for (auto it = object.begin(); it != object.end(); ++it)
    keys.push_back(it.key());
  std::string guess = closestMatch(key, keys);
  if (guess.empty())
    return {};
  return {"did you mean '" + guess + "'?"};
}

static std::string describe(const Value &v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "a list";
  return "an object";
}

/// The source text of a config path, for "config.json has no key 'text_config.x'" messages.
static std::string pathOf(const Expr &expr) {
  if (auto *m = llvm::dyn_cast<MemberExpr>(&expr)) {
    std::string base = pathOf(*m->base);
    return base.empty() ? "" : base + "." + m->member;
  }
  if (auto *n = llvm::dyn_cast<NameExpr>(&expr))
    return n->name;
  return "";
}

llvm::Expected<Value> Evaluator::eval(const Expr &expr, const Env &env) const {
  switch (expr.kind()) {
  case Expr::Kind::Int: return Value(cast<IntExpr>(expr).value);
  case Expr::Kind::Float: return Value(cast<FloatExpr>(expr).value);
  case Expr::Kind::Bool: return Value(cast<BoolExpr>(expr).value);
  case Expr::Kind::Null: return Value(nullptr);
  case Expr::Kind::String: {
    std::string out;
    for (const StringPiece &piece : cast<StringExpr>(expr).pieces) {
      if (piece.kind == StringPiece::Kind::Literal) {
        out += piece.text;
        continue;
      }
      if (piece.kind == StringPiece::Kind::RestCapture)
        return fail(piece.range, "capture '" + piece.text + "' has no value here");
      auto v = eval(*piece.expr, env);
      if (!v)
        return v.takeError();
      if (v->is_number_integer())
        out += std::to_string(v->get<int64_t>());
      else if (v->is_string())
        out += v->get<std::string>();
      else
        return fail(piece.range, "a name can only interpolate integers and strings, not " + describe(*v));
    }
    return Value(out);
  }
  case Expr::Kind::List: {
    Value list = Value::array();
    for (const ExprPtr &e : cast<ListExpr>(expr).elements) {
      auto v = eval(*e, env);
      if (!v)
        return v.takeError();
      list.push_back(std::move(*v));
    }
    return list;
  }
  case Expr::Kind::Name: {
    const auto &name = cast<NameExpr>(expr);
    if (const Value *v = env.lookup(name.name))
      return *v;
    if (name.name == "config")
      return config_;
    if (parseDType(name.name))
      return Value(name.name);
    return fail(expr.range(), "unknown name '" + name.name + "'");
  }
  case Expr::Kind::Member: {
    const auto &m = cast<MemberExpr>(expr);
    auto base = eval(*m.base, env);
    if (!base)
      return base.takeError();
    if (!base->is_object())
      return fail(m.memberRange, "'" + m.member + "': " + describe(*base) + " has no members");
    auto it = base->find(m.member);
    if (it == base->end()) {
      std::string path = pathOf(expr);
      bool fromConfig = llvm::StringRef(path).startswith("config.");
      return fail(expr.range(),
                  fromConfig ? "config.json has no key '" + path.substr(7) + "'" : "no member '" + m.member + "'",
                  /*missing=*/true, suggestKey(*base, m.member));
    }
    return *it;
  }
  case Expr::Kind::Index: {
    const auto &ix = cast<IndexExpr>(expr);
    auto base = eval(*ix.base, env);
    if (!base)
      return base.takeError();
    auto index = eval(*ix.index, env);
    if (!index)
      return index.takeError();
    if (base->is_object() && index->is_string()) {
      auto it = base->find(index->get<std::string>());
      if (it == base->end())
        return fail(expr.range(), "no key " + formatValue(*index), /*missing=*/true,
                    suggestKey(*base, index->get<std::string>()));
      return *it;
    }
    if (!index->is_number_integer())
      return fail(ix.index->range(), "an index must be an integer, not " + describe(*index));
    int64_t i = index->get<int64_t>();
    if (base->is_array()) {
      if (i < 0 || i >= int64_t(base->size()))
        return fail(expr.range(), "index " + std::to_string(i) + " is out of range (the list has " +
                                      std::to_string(base->size()) + " entries)", /*missing=*/true);
      return (*base)[size_t(i)];
    }
    if (base->is_string()) {
      std::string s = base->get<std::string>();
      if (i < 0 || i >= int64_t(s.size()))
        return fail(expr.range(), "index " + std::to_string(i) + " is out of range (the string has " +
                                      std::to_string(s.size()) + " characters)", /*missing=*/true);
      return Value(std::string(1, s[size_t(i)]));
    }
    return fail(ix.base->range(), describe(*base) + " cannot be indexed");
  }
  case Expr::Kind::Unary: {
    const auto &u = cast<UnaryExpr>(expr);
    auto v = eval(*u.operand, env);
    if (!v)
      return v.takeError();
    if (u.op == UnaryOp::Not) {
      if (!v->is_boolean())
        return fail(u.operand->range(), "'not' needs a boolean, not " + describe(*v));
      return Value(!v->get<bool>());
    }
    if (v->is_number_integer())
      return Value(-v->get<int64_t>());
    if (v->is_number())
      return Value(-v->get<double>());
    return fail(u.operand->range(), "'-' needs a number, not " + describe(*v));
  }
  case Expr::Kind::Binary:
    return evalBinary(cast<BinaryExpr>(expr), env);
  case Expr::Kind::Call:
    return evalCall(cast<CallExpr>(expr), env);
  }
  return fail(expr.range(), "cannot evaluate");
}

llvm::Expected<Value> Evaluator::evalBinary(const BinaryExpr &bin, const Env &env) const {
  if (bin.op == BinaryOp::Default) {
    auto lhs = eval(*bin.lhs, env);
    if (lhs && !lhs->is_null())
      return lhs;
    if (!lhs) {
      // Only a missing key falls back to the default; real errors stay errors.
      llvm::Error err = llvm::handleErrors(lhs.takeError(), [](std::unique_ptr<EvalError> e) -> llvm::Error {
        if (e->missing)
          return llvm::Error::success();
        return llvm::Error(std::move(e));
      });
      if (err)
        return err;
    }
    return eval(*bin.rhs, env);
  }
  if (bin.op == BinaryOp::And || bin.op == BinaryOp::Or) {
    auto lhs = evalBool(*bin.lhs, env);
    if (!lhs)
      return lhs.takeError();
    // Short circuit, so `L < len(types) and types[L] == "moe"` is safe.
    if (bin.op == BinaryOp::And ? !*lhs : *lhs)
      return Value(*lhs);
    auto rhs = evalBool(*bin.rhs, env);
    if (!rhs)
      return rhs.takeError();
    return Value(*rhs);
  }
  auto lhs = eval(*bin.lhs, env);
  if (!lhs)
    return lhs.takeError();
  auto rhs = eval(*bin.rhs, env);
  if (!rhs)
    return rhs.takeError();
  const Value &a = *lhs, &b = *rhs;
  std::string opText = spelling(bin.op).str();

  if (bin.op == BinaryOp::Eq || bin.op == BinaryOp::Ne) {
    bool equal = (a.is_number() && b.is_number()) ? a.get<double>() == b.get<double>() : a == b;
    return Value(bin.op == BinaryOp::Eq ? equal : !equal);
  }
  if (bin.op == BinaryOp::Add && a.is_string() && b.is_string())
    return Value(a.get<std::string>() + b.get<std::string>());
  if (!a.is_number() || !b.is_number())
    return fail(bin.range(), "'" + opText + "' needs numbers, got " + describe(a) + " and " + describe(b));

  if (a.is_number_integer() && b.is_number_integer()) {
    int64_t x = a.get<int64_t>(), y = b.get<int64_t>(), r = 0;
    switch (bin.op) {
    case BinaryOp::Add: if (__builtin_add_overflow(x, y, &r)) return fail(bin.range(), "integer overflow"); return Value(r);
    case BinaryOp::Sub: if (__builtin_sub_overflow(x, y, &r)) return fail(bin.range(), "integer overflow"); return Value(r);
    case BinaryOp::Mul: if (__builtin_mul_overflow(x, y, &r)) return fail(bin.range(), "integer overflow"); return Value(r);
    case BinaryOp::Div:
    case BinaryOp::Mod:
      if (y == 0)
        return fail(bin.range(), "division by zero");
      // Shapes are whole numbers: a division that leaves a remainder is a mistake.
      if (bin.op == BinaryOp::Div && x % y != 0)
        return fail(bin.range(), std::to_string(x) + " / " + std::to_string(y) + " is not a whole number");
      return Value(bin.op == BinaryOp::Div ? x / y : x % y);
    case BinaryOp::Lt: return Value(x < y);
    case BinaryOp::Le: return Value(x <= y);
    case BinaryOp::Gt: return Value(x > y);
    case BinaryOp::Ge: return Value(x >= y);
    default: break;
    }
  }
  double x = a.get<double>(), y = b.get<double>();
  switch (bin.op) {
  case BinaryOp::Add: return Value(x + y);
  case BinaryOp::Sub: return Value(x - y);
  case BinaryOp::Mul: return Value(x * y);
  case BinaryOp::Div:
    if (y == 0)
      return fail(bin.range(), "division by zero");
    return Value(x / y);
  case BinaryOp::Mod: return Value(std::fmod(x, y));
  case BinaryOp::Lt: return Value(x < y);
  case BinaryOp::Le: return Value(x <= y);
  case BinaryOp::Gt: return Value(x > y);
  case BinaryOp::Ge: return Value(x >= y);
  default: break;
  }
  return fail(bin.range(), "cannot evaluate '" + opText + "'");
}

llvm::Expected<Value> Evaluator::evalCall(const CallExpr &call, const Env &env) const {
  // ifelse(c, a, b) evaluates only the branch it takes, so the other may name a missing key.
  if (call.callee == "ifelse") {
    if (call.args.size() != 3)
      return fail(call.range(), "ifelse() takes 3 arguments, got " + std::to_string(call.args.size()));
    auto cond = evalBool(*call.args[0].value, env);
    if (!cond)
      return cond.takeError();
    return eval(*call.args[*cond ? 1 : 2].value, env);
  }
  std::vector<Value> args;
  for (const Argument &arg : call.args) {
    auto v = eval(*arg.value, env);
    if (!v)
      return v.takeError();
    args.push_back(std::move(*v));
  }
  auto arity = [&](size_t n) -> llvm::Error {
    if (args.size() != n)
      return fail(call.range(), call.callee + "() takes " + std::to_string(n) + " argument" + (n == 1 ? "" : "s") +
                                    ", got " + std::to_string(args.size()));
    return llvm::Error::success();
  };
  const std::string &fn = call.callee;
  if (fn == "len") {
    if (auto e = arity(1)) return e;
    if (args[0].is_string()) return Value(int64_t(args[0].get<std::string>().size()));
    if (args[0].is_array() || args[0].is_object()) return Value(int64_t(args[0].size()));
    return fail(call.range(), "len() needs a list, string or object, not " + describe(args[0]));
  }
  if (fn == "chars") {
    if (auto e = arity(1)) return e;
    if (!args[0].is_string())
      return fail(call.range(), "chars() needs a string, not " + describe(args[0]));
    Value list = Value::array();
    for (char c : args[0].get<std::string>())
      list.push_back(std::string(1, c));
    return list;
  }
  if (fn == "contains" || fn == "count") {
    if (auto e = arity(2)) return e;
    if (!args[0].is_array() && !args[0].is_string())
      return fail(call.range(), fn + "() needs a list first, not " + describe(args[0]));
    Value list = args[0];
    if (list.is_string()) {
      Value chars = Value::array();
      for (char c : list.get<std::string>())
        chars.push_back(std::string(1, c));
      list = chars;
    }
    int64_t n = 0;
    for (const Value &v : list)
      n += v == args[1];
    return fn == "contains" ? Value(n > 0) : Value(n);
  }
  if (fn == "min" || fn == "max") {
    std::vector<Value> items = args;
    if (items.size() == 1 && items[0].is_array())
      items = std::vector<Value>(items[0].begin(), items[0].end());
    if (items.empty())
      return fail(call.range(), fn + "() of nothing");
    Value best = items[0];
    for (const Value &v : items) {
      if (!v.is_number())
        return fail(call.range(), fn + "() needs numbers, not " + describe(v));
      if (fn == "min" ? v.get<double>() < best.get<double>() : v.get<double>() > best.get<double>())
        best = v;
    }
    return best;
  }
  if (fn == "dtype") {
    if (auto e = arity(1)) return e;
    if (!args[0].is_string())
      return fail(call.range(), "dtype() needs a string, not " + describe(args[0]));
    std::string name = normalizeDTypeName(args[0].get<std::string>());
    if (name.empty())
      return fail(call.range(), "unknown dtype " + formatValue(args[0]));
    return Value(name);
  }
  if (fn == "shape") {
    if (auto e = arity(1)) return e;
    if (!args[0].is_string())
      return fail(call.range(), "shape() needs a tensor name, not " + describe(args[0]));
    std::string name = args[0].get<std::string>();
    if (!tensors_)
      return fail(call.range(), "shape(): no checkpoint is being read here");
    const TensorMeta *t = tensors_->find(name);
    if (!t) {
      // Missing, so that `shape("a") ?? shape("b")` reads whichever convention is the source.
      std::string note = tensors_->suggestion(name);
      return fail(call.range(), "shape(): the checkpoint has no tensor '" + name + "'", /*missing=*/true,
                  note.empty() ? std::vector<std::string>{} : std::vector<std::string>{note});
    }
    Value dims = Value::array();
    for (int64_t d : t->shape)
      dims.push_back(d);
    return dims;
  }
  return fail(call.calleeRange, "unknown function '" + fn + "'");
}

llvm::Expected<int64_t> Evaluator::evalInt(const Expr &expr, const Env &env) const {
  auto v = eval(expr, env);
  if (!v)
    return v.takeError();
  if (v->is_number_integer())
    return v->get<int64_t>();
  if (v->is_number_float()) {
    double d = v->get<double>();
    if (std::floor(d) == d && std::fabs(d) < 9e15)
      return int64_t(d);
  }
  return fail(expr.range(), "expected an integer, got " + describe(*v) + " (" + formatValue(*v) + ")");
}

llvm::Expected<bool> Evaluator::evalBool(const Expr &expr, const Env &env) const {
  auto v = eval(expr, env);
  if (!v)
    return v.takeError();
  if (!v->is_boolean())
    return fail(expr.range(), "expected a boolean, got " + describe(*v) + " (" + formatValue(*v) + ")");
  return v->get<bool>();
}

llvm::Expected<std::string> Evaluator::evalString(const Expr &expr, const Env &env) const {
  auto v = eval(expr, env);
  if (!v)
    return v.takeError();
  if (!v->is_string())
    return fail(expr.range(), "expected a string, got " + describe(*v) + " (" + formatValue(*v) + ")");
  return v->get<std::string>();
}

} // namespace ckptmap
