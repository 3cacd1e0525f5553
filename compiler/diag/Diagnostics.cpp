#include "compiler/diag/Diagnostics.h"

#include "llvm/ADT/StringExtras.h"

#include <algorithm>
#include <numeric>

namespace ckptmap {

Diagnostic &Diagnostic::note(std::string text, SourceRange where) {
  notes.push_back(Diagnostic{Severity::Note, where, std::move(text), {}});
  return *this;
}

Diagnostic &DiagnosticEngine::error(SourceRange range, std::string message) {
  diags_.push_back(Diagnostic{Severity::Error, range, std::move(message), {}});
  return diags_.back();
}

Diagnostic &DiagnosticEngine::warning(SourceRange range, std::string message) {
  diags_.push_back(Diagnostic{Severity::Warning, range, std::move(message), {}});
  return diags_.back();
}

unsigned DiagnosticEngine::errorCount() const {
  return unsigned(std::count_if(diags_.begin(), diags_.end(),
                                [](const Diagnostic &d) { return d.severity == Severity::Error; }));
}

unsigned DiagnosticEngine::warningCount() const {
  return unsigned(diags_.size()) - errorCount();
}

static llvm::StringRef severityName(Severity s) {
  switch (s) {
  case Severity::Error: return "error";
  case Severity::Warning: return "warning";
  case Severity::Note: return "note";
  }
  return "";
}

void DiagnosticEngine::printOne(llvm::raw_ostream &os, const Diagnostic &diag) const {
  if (diag.range.valid())
    os << sources_.format(diag.range.begin) << ": ";
  os << severityName(diag.severity) << ": " << diag.message << "\n";
  if (diag.range.valid()) {
    llvm::StringRef text = sources_.line(diag.range.begin.file, diag.range.begin.line);
    if (!text.empty()) {
      std::string number = std::to_string(diag.range.begin.line);
      os << llvm::format_decimal(diag.range.begin.line, std::max<size_t>(5, number.size()))
         << " | " << text << "\n";
      os << std::string(std::max<size_t>(5, number.size()), ' ') << " | ";
      uint32_t col = diag.range.begin.col;
      // Tabs in the prefix keep their width so the caret lines up.
      for (uint32_t i = 1; i < col && i - 1 < text.size(); ++i)
        os << (text[i - 1] == '\t' ? '\t' : ' ');
      uint32_t maxLen = col - 1 < text.size() ? uint32_t(text.size() - (col - 1)) : 1;
      uint32_t len = std::max<uint32_t>(1, std::min(diag.range.length, maxLen));
      os << "^" << std::string(len - 1, '~') << "\n";
    }
  }
  for (const Diagnostic &note : diag.notes)
    printOne(os, note);
}

std::vector<size_t> DiagnosticEngine::order() const {
  std::vector<size_t> order(diags_.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const SourceRange &ra = diags_[a].range, &rb = diags_[b].range;
    if (ra.valid() != rb.valid())
      return ra.valid();
    return ra.valid() && ra.begin < rb.begin;
  });
  return order;
}

nlohmann::json DiagnosticEngine::toJson() const {
  auto one = [&](const Diagnostic &d) {
    nlohmann::json j{{"severity", severityName(d.severity).str()}};
    if (d.range.valid())
      j["location"] = sources_.format(d.range.begin);
    j["message"] = d.message;
    return j;
  };
  nlohmann::json out = nlohmann::json::array();
  for (size_t i : order()) {
    nlohmann::json j = one(diags_[i]);
    j["notes"] = nlohmann::json::array();
    for (const Diagnostic &note : diags_[i].notes)
      j["notes"].push_back(one(note));
    out.push_back(std::move(j));
  }
  return out;
}

void DiagnosticEngine::print(llvm::raw_ostream &os) const {
  for (size_t i : order())
    printOne(os, diags_[i]);
  unsigned errors = errorCount(), warnings = warningCount();
  if (errors || warnings) {
    auto plural = [](unsigned n, const char *word) {
      return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
    };
    if (errors && warnings)
      os << plural(errors, "error") << " and " << plural(warnings, "warning");
    else if (errors)
      os << plural(errors, "error");
    else
      os << plural(warnings, "warning");
    os << " generated.\n";
  }
}

std::string DiagnosticEngine::render() const {
  std::string out;
  llvm::raw_string_ostream os(out);
  print(os);
  return os.str();
}

/// Edit distance where swapping two adjacent characters counts as one edit, like inserting,
/// deleting or replacing one (optimal string alignment): "gatde" is one typo from "gated".
static unsigned typoDistance(llvm::StringRef a, llvm::StringRef b) {
  std::vector<std::vector<unsigned>> d(a.size() + 1, std::vector<unsigned>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i)
    d[i][0] = unsigned(i);
  for (size_t j = 0; j <= b.size(); ++j)
    d[0][j] = unsigned(j);
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

std::string closestMatch(llvm::StringRef name, llvm::ArrayRef<std::string> candidates) {
  std::string best;
  unsigned bestDistance = std::max<unsigned>(1, unsigned(name.size()) / 3) + 1;
  for (const std::string &candidate : candidates) {
    unsigned d = typoDistance(name, candidate);
    if (d < bestDistance) {
      bestDistance = d;
      best = candidate;
    }
  }
  return best;
}

std::string numberPattern(llvm::StringRef name) {
  std::string out;
  for (size_t i = 0; i < name.size();) {
    if (llvm::isDigit(name[i])) {
      while (i < name.size() && llvm::isDigit(name[i]))
        ++i;
      out += "{N}";
    } else {
      out += name[i++];
    }
  }
  return out;
}

std::string NameSuggester::closest(llvm::StringRef name) const {
  if (patterns_.empty() && !names_.empty()) {
    for (const std::string &n : names_) {
      auto [it, inserted] = byPattern_.try_emplace(numberPattern(n));
      if (inserted)
        patterns_.push_back(it->getKey().str());
      it->getValue().push_back(n);
    }
  }
  std::string pattern = closestMatch(numberPattern(name), patterns_);
  if (pattern.empty())
    return "";
  return closestMatch(name, byPattern_[pattern]);
}

std::string NameSuggester::suggestion(llvm::StringRef name) const {
  std::string guess = closest(name);
  if (guess.empty())
    return "";
  std::string pattern = numberPattern(name);
  if (pattern == numberPattern(guess))
    return "the checkpoint has '" + pattern + "' only with other numbers, e.g. '" + guess + "'";
  return "did you mean '" + guess + "'?";
}

} // namespace ckptmap
