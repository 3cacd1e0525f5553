// A small declarative command-line parser: each subcommand lists its options once, and the
// same list drives parsing, validation and --help.
#pragma once

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/raw_ostream.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ckptmap::cli {

struct OptionSpec {
  std::string name;    ///< long name without dashes: "from"
  char shortName = 0;  ///< 'D' for -D, 0 for none
  std::string metavar; ///< empty: a flag without value
  std::string help;
  bool repeated = false;
};

struct CommandSpec {
  std::string name;
  std::string usage;   ///< "[RULEBOOK] --from X --to Y CKPT"
  std::string summary; ///< one line for the command list
  std::string description;
  std::vector<OptionSpec> options;
  size_t minPositionals = 0, maxPositionals = 0;
};

class ParsedArgs {
public:
  bool has(llvm::StringRef name) const { return values_.count(name.str()) != 0; }
  std::string get(llvm::StringRef name, llvm::StringRef fallback = "") const;
  const std::vector<std::string> &all(llvm::StringRef name) const;
  const std::vector<std::string> &positionals() const { return positionals_; }

private:
  friend std::optional<ParsedArgs> parseArgs(const CommandSpec &, const std::vector<std::string> &, llvm::raw_ostream &);
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positionals_;
};

/// Parses the arguments after the subcommand name; reports problems to `err` and returns
/// nullopt. `--help` is answered by the caller (check has("help")).
std::optional<ParsedArgs> parseArgs(const CommandSpec &spec, const std::vector<std::string> &args, llvm::raw_ostream &err);

void printCommandHelp(const CommandSpec &spec, llvm::raw_ostream &os);

} // namespace ckptmap::cli
