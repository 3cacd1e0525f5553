#include "compiler/bind/Binding.h"

#include "llvm/ADT/StringExtras.h"

namespace ckptmap {

void NameTemplate::appendLiteral(llvm::StringRef text) {
  if (text.empty())
    return;
  if (!pieces_.empty() && pieces_.back().kind == Piece::Kind::Literal)
    pieces_.back().text.append(text.data(), text.size());
  else
    pieces_.push_back({Piece::Kind::Literal, text.str()});
}

void NameTemplate::appendCapture(llvm::StringRef name, bool rest) {
  pieces_.push_back({rest ? Piece::Kind::Rest : Piece::Kind::Int, name.str()});
}

void NameTemplate::appendIndex(llvm::StringRef name, int64_t scale, int64_t offset) {
  pieces_.push_back({Piece::Kind::Int, name.str(), scale, offset});
}

static bool isIdentity(const NameTemplate::Piece &p) { return p.scale == 1 && p.offset == 0; }

/// "{M}", "{M + 4}", "{2 * E - 1}"
static std::string indexDisplay(const NameTemplate::Piece &p) {
  std::string out = p.scale == 1 ? p.text : std::to_string(p.scale) + " * " + p.text;
  if (p.offset > 0)
    out += " + " + std::to_string(p.offset);
  else if (p.offset < 0)
    out += " - " + std::to_string(uint64_t(0) - uint64_t(p.offset));
  return "{" + out + "}";
}

std::optional<std::string> NameTemplate::indexText(const Piece &p, llvm::StringRef value) {
  if (isIdentity(p))
    return value.str();
  int64_t x = 0, r = 0;
  if (value.getAsInteger(10, x) || __builtin_mul_overflow(x, p.scale, &r) || __builtin_add_overflow(r, p.offset, &r) ||
      r < 0)
    return std::nullopt;
  return std::to_string(r);
}

bool NameTemplate::concrete() const {
  return llvm::all_of(pieces_, [](const Piece &p) { return p.kind == Piece::Kind::Literal; });
}

std::string NameTemplate::str() const {
  if (pieces_.size() == 1)
    return pieces_.front().text;
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
    case Piece::Kind::Int: out += indexDisplay(p); break;
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
    text = text.drop_front(close + 1);
    if (inner.consume_front("*")) {
      out.appendCapture(inner, /*rest=*/true);
      continue;
    }
    // An index as display writes it: [SCALE * ]NAME[ + OFFSET | - OFFSET].
    std::string compact;
    for (char c : inner)
      if (c != ' ')
        compact += c;
    llvm::StringRef body = compact;
    int64_t scale = 1, offset = 0;
    if (size_t star = body.find('*'); star != llvm::StringRef::npos) {
      body.take_front(star).getAsInteger(10, scale);
      body = body.drop_front(star + 1);
    }
    size_t sign = body.find_first_of("+-");
    llvm::StringRef name = body.take_front(sign);
    if (sign != llvm::StringRef::npos) {
      llvm::StringRef amount = body.drop_front(sign + 1);
      amount.getAsInteger(10, offset);
      if (body[sign] == '-')
        offset = -offset;
    }
    out.appendIndex(name, scale, offset);
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
  if (bound != captures.end()) {
    if (p.kind == Piece::Kind::Rest)
      return rest.consume_front(bound->second) && matchFrom(i + 1, rest, captures);
    std::optional<std::string> text = indexText(p, bound->second);
    return text && rest.consume_front(*text) && matchFrom(i + 1, rest, captures);
  }
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
    std::string captured = value.str();
    if (p.kind == Piece::Kind::Int && !isIdentity(p)) {
      // The capture whose index this is: (value - offset) / scale, whole and not negative.
      int64_t v = 0, x = 0;
      if (value.getAsInteger(10, v) || __builtin_sub_overflow(v, p.offset, &x) || x % p.scale != 0 || x / p.scale < 0)
        continue;
      captured = std::to_string(x / p.scale);
    }
    captures[p.text] = std::move(captured);
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
    std::optional<std::string> text;
    if (it != captures.end())
      text = p.kind == Piece::Kind::Rest ? std::optional(it->second) : indexText(p, it->second);
    if (text)
      out.appendLiteral(*text);
    else
      out.pieces_.push_back(p); // unbound, or an index the captures would make negative
  }
  return out;
}

std::string NameTemplate::negativeIndex(const llvm::StringMap<std::string> &captures) const {
  for (const Piece &p : pieces_) {
    if (p.kind != Piece::Kind::Int || isIdentity(p))
      continue;
    auto it = captures.find(p.text);
    if (it != captures.end() && !indexText(p, it->second))
      return indexDisplay(p) + " with " + p.text + " = " + it->second;
  }
  return "";
}

void BoundTerm::leaves(llvm::SmallVectorImpl<const BoundTerm *> &out) const {
  if (isTensor()) {
    out.push_back(this);
    return;
  }
  for (const BoundTerm &t : operands)
    t.leaves(out);
}

void BoundTerm::leaves(llvm::SmallVectorImpl<BoundTerm *> &out) {
  if (isTensor()) {
    out.push_back(this);
    return;
  }
  for (BoundTerm &t : operands)
    t.leaves(out);
}

} // namespace ckptmap
