#include "tools/cli/Args.h"

#include "compiler/diag/Diagnostics.h"

namespace ckptmap::cli {

std::string ParsedArgs::get(llvm::StringRef name, llvm::StringRef fallback) const {
  auto it = values_.find(name.str());
  return it == values_.end() || it->second.empty() ? fallback.str() : it->second.back();
}

const std::vector<std::string> &ParsedArgs::all(llvm::StringRef name) const {
  static const std::vector<std::string> none;
  auto it = values_.find(name.str());
  return it == values_.end() ? none : it->second;
}

std::optional<ParsedArgs> parseArgs(const CommandSpec &spec, const std::vector<std::string> &args, llvm::raw_ostream &err) {
  ParsedArgs out;
  auto find = [&](llvm::StringRef name, char shortName) -> const OptionSpec * {
    for (const OptionSpec &o : spec.options)
      if ((!name.empty() && o.name == name) || (shortName && o.shortName == shortName))
        return &o;
    return nullptr;
  };
  bool onlyPositionals = false;
  for (size_t i = 0; i < args.size(); ++i) {
    llvm::StringRef arg = args[i];
    if (onlyPositionals || arg == "-" || !arg.startswith("-")) {
      out.positionals_.push_back(arg.str());
      continue;
    }
    if (arg == "--") {
      onlyPositionals = true;
      continue;
    }
    if (arg == "--help" || arg == "-h") {
      out.values_["help"].push_back("");
      continue;
    }
    const OptionSpec *opt = nullptr;
    std::optional<std::string> inlineValue;
    if (arg.startswith("--")) {
      llvm::StringRef body = arg.drop_front(2);
      auto [name, value] = body.split('=');
      if (body.contains('='))
        inlineValue = value.str();
      opt = find(name, 0);
      if (!opt) {
        std::vector<std::string> names;
        for (const OptionSpec &o : spec.options)
          names.push_back(o.name);
        err << "ckptmap " << spec.name << ": unknown option '--" << name << "'";
        std::string guess = closestMatch(name, names);
        if (!guess.empty())
          err << "; did you mean '--" << guess << "'?";
        err << "\n";
        return std::nullopt;
      }
    } else {
      opt = find("", arg[1]);
      if (!opt) {
        err << "ckptmap " << spec.name << ": unknown option '" << arg.take_front(2) << "'\n";
        return std::nullopt;
      }
      if (arg.size() > 2)
        inlineValue = arg.drop_front(2).str(); // -Dname=value
    }
    std::string value;
    if (!opt->metavar.empty()) {
      if (inlineValue) {
        value = *inlineValue;
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        err << "ckptmap " << spec.name << ": option '--" << opt->name << "' needs a value (" << opt->metavar << ")\n";
        return std::nullopt;
      }
    } else if (inlineValue) {
      err << "ckptmap " << spec.name << ": option '--" << opt->name << "' takes no value\n";
      return std::nullopt;
    }
    auto &slot = out.values_[opt->name];
    if (!opt->repeated && !slot.empty()) {
      err << "ckptmap " << spec.name << ": option '--" << opt->name << "' given twice\n";
      return std::nullopt;
    }
    slot.push_back(value);
  }
  if (out.has("help"))
    return out;
  size_t n = out.positionals_.size();
  if (n < spec.minPositionals || n > spec.maxPositionals) {
    err << "ckptmap " << spec.name << ": expected " << spec.usage << "\n"
        << "run 'ckptmap " << spec.name << " --help' for details\n";
    return std::nullopt;
  }
  return out;
}

void printCommandHelp(const CommandSpec &spec, llvm::raw_ostream &os) {
  os << "usage: ckptmap " << spec.name << " " << spec.usage << "\n\n" << spec.description << "\n";
  os << "\noptions:\n";
  for (const OptionSpec &o : spec.options) {
    std::string left = "  ";
    if (o.shortName)
      left += std::string("-") + o.shortName + ", ";
    left += "--" + o.name;
    if (!o.metavar.empty())
      left += " " + o.metavar;
    os << left;
    if (left.size() < 30)
      os.indent(30 - left.size());
    else
      os << "\n" << std::string(30, ' ');
    os << o.help << "\n";
  }
  os << "  -h, --help                  show this help\n";
}

} // namespace ckptmap::cli
