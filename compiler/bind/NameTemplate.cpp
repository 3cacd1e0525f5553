#include "compiler/bind/Binding.h"

#include "llvm/ADT/StringExtras.h"

namespace ckptmap {

void NameTemplate::appendLiteral(llvm::StringRef text) {
  if (text.empty())
    return;
  if (!pieces_.empty() && pieces_.back().kind == Piece::Kind::Literal)
    pieces_.back().text += text.str();
  else
    pieces_.push_back({Piece::Kind::Literal, text.str()});
}

void NameTemplate::appendCapture(llvm::StringRef name, bool rest) {
  pieces_.push_back({rest ? Piece::Kind::Rest : Piece::Kind::Int, name.str()});
}

bool NameTemplate::concrete() const {
  return llvm::all_of(pieces_, [](const Piece &p) { return p.kind == Piece::Kind::Literal; });
}

std::string NameTemplate::str() const {
  std::string out;
  for (const Piece &p : pieces_)
    out += p.text;
  return out;
}

std::string NameTemplate::display() const {
  std::string out;
  for (const Piece &p : pieces_) {
    switch (p.kind) {
    case Piece::Kind::Literal: out += p.text; break;
    case Piece::Kind::Int: out += "{" + p.text + "}"; break;
    case Piece::Kind::Rest: out += "{*" + p.text + "}"; break;
    }
  }
  return out;
}

NameTemplate NameTemplate::fromDisplay(llvm::StringRef text) {
  NameTemplate out;
  while (!text.empty()) {
    size_t open = text.find('{');
    size_t close = open == llvm::StringRef::npos ? open : text.find('}', open);
    if (close == llvm::StringRef::npos) {
      out.appendLiteral(text);
      break;
    }
    out.appendLiteral(text.take_front(open));
    llvm::StringRef inner = text.slice(open + 1, close);
    bool rest = inner.consume_front("*");
    out.appendCapture(inner, rest);
    text = text.drop_front(close + 1);
  }
  return out;
}

bool NameTemplate::hasCapture(llvm::StringRef name) const {
  return llvm::any_of(pieces_, [&](const Piece &p) { return p.kind != Piece::Kind::Literal && p.text == name; });
}

bool NameTemplate::match(llvm::StringRef name, llvm::StringMap<std::string> &captures) const {
  llvm::StringMap<std::string> attempt = captures;
  if (!matchFrom(0, name, attempt))
    return false;
  captures = std::move(attempt);
  return true;
}

// Backtracking over pieces; names are short and patterns have one or two captures, so the
// search stays tiny.
bool NameTemplate::matchFrom(size_t i, llvm::StringRef rest, llvm::StringMap<std::string> &captures) const {
  if (i == pieces_.size())
    return rest.empty();
  const Piece &p = pieces_[i];
  if (p.kind == Piece::Kind::Literal)
    return rest.consume_front(p.text) && matchFrom(i + 1, rest, captures);
  auto bound = captures.find(p.text);
  if (bound != captures.end())
    return rest.consume_front(bound->second) && matchFrom(i + 1, rest, captures);
  size_t maxLen = rest.size();
  if (p.kind == Piece::Kind::Int) {
    maxLen = 0;
    while (maxLen < rest.size() && llvm::isDigit(rest[maxLen]))
      ++maxLen;
  }
  for (size_t len = maxLen; len >= 1; --len) {
    llvm::StringRef value = rest.take_front(len);
    // Integers are written without leading zeros; "03" is not layer 3.
    if (p.kind == Piece::Kind::Int && value.size() > 1 && value[0] == '0')
      continue;
    captures[p.text] = value.str();
    if (matchFrom(i + 1, rest.drop_front(len), captures))
      return true;
    captures.erase(p.text);
  }
  return false;
}

NameTemplate NameTemplate::instantiate(const llvm::StringMap<std::string> &captures) const {
  NameTemplate out;
  for (const Piece &p : pieces_) {
    if (p.kind == Piece::Kind::Literal) {
      out.appendLiteral(p.text);
      continue;
    }
    auto it = captures.find(p.text);
    if (it != captures.end())
      out.appendLiteral(it->second);
    else
      out.appendCapture(p.text, p.kind == Piece::Kind::Rest);
  }
  return out;
}

void BoundTerm::leaves(std::vector<const BoundTerm *> &out) const {
  if (isTensor()) {
    out.push_back(this);
    return;
  }
  for (const BoundTerm &t : operands)
    t.leaves(out);
}

void BoundTerm::leaves(std::vector<BoundTerm *> &out) {
  if (isTensor()) {
    out.push_back(this);
    return;
  }
  for (BoundTerm &t : operands)
    t.leaves(out);
}

} // namespace ckptmap
