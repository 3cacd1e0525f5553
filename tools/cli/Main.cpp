// ckptmap: compile checkpoint-mapping rulebooks and run the plans they produce.

#include "tools/cli/Commands.h"

#include "compiler/diag/Diagnostics.h"

#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <csignal>
#include <functional>

using namespace ckptmap;
using namespace ckptmap::cli;

static void printUsage(llvm::raw_ostream &os) {
  os << "usage: ckptmap COMMAND [ARGS]\n\n"
        "Converts LLM checkpoints between Megatron-Core and HuggingFace layouts with declarative\n"
        "rulebooks, checked before a byte moves.\n\ncommands:\n";
  size_t width = 0;
  for (const CommandSpec &spec : commandSpecs())
    width = std::max(width, spec.name.size());
  for (const CommandSpec &spec : commandSpecs()) {
    os << "  " << spec.name;
    os.indent(unsigned(width + 2 - spec.name.size())) << spec.summary << "\n";
  }
  os << "\nRun 'ckptmap COMMAND --help' for a command's options.\n";
}

/// A reader that stops early (`ckptmap inspect CKPT | head`) has seen what it wanted: the
/// command keeps its exit status and says nothing. Other write errors are reported.
static int finishOutput(int status) {
  llvm::outs().flush();
  std::error_code error = llvm::outs().error();
  if (!error)
    return status;
  llvm::outs().clear_error(); // else its destructor aborts the process
  if (error == std::errc::broken_pipe)
    return status;
  llvm::errs() << "ckptmap: error: cannot write the output: " << error.message() << "\n";
  return status ? status : 1;
}

int main(int argc, char **argv) {
  // A closed pipe shows as a write error (see finishOutput) rather than killing the process.
  std::signal(SIGPIPE, SIG_IGN);
  // Past a file-size limit (ulimit -f) a write then fails with EFBIG, which the writers report
  // and clean up after, instead of the signal killing the process mid-write.
  std::signal(SIGXFSZ, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    printUsage(llvm::outs());
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version" || args[0] == "version") {
    llvm::outs() << "ckptmap 0.1.0\n";
    return 0;
  }
  static const std::pair<const char *, std::function<int(const ParsedArgs &)>> handlers[] = {
      {"inspect", runInspect}, {"diff", runDiff},       {"check", runCheck}, {"compile", runCompile},
      {"run", runRun},         {"quantize", runQuantize}, {"dequantize", runDequantize}, {"explain", runExplain}, {"ops", runOps},
  };
  for (const CommandSpec &spec : commandSpecs()) {
    if (spec.name != args[0])
      continue;
    auto parsed = parseArgs(spec, std::vector<std::string>(args.begin() + 1, args.end()), llvm::errs());
    if (!parsed)
      return 2;
    if (parsed->has("help")) {
      printCommandHelp(spec, llvm::outs());
      return 0;
    }
    for (const auto &[name, handler] : handlers)
      if (spec.name == name)
        return finishOutput(handler(*parsed));
  }
  std::vector<std::string> names;
  for (const CommandSpec &spec : commandSpecs())
    names.push_back(spec.name);
  llvm::errs() << "ckptmap: unknown command '" << args[0] << "'";
  std::string guess = closestMatch(args[0], names);
  if (!guess.empty())
    llvm::errs() << "; did you mean '" << guess << "'?";
  llvm::errs() << "\nrun 'ckptmap --help' for the list of commands\n";
  return 2;
}
