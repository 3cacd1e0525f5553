// The subcommands of `ckptmap`. Each returns the process exit code: 0 success, 1 failure
// (or, for diff, "different"), 2 bad usage.
#pragma once

#include "tools/cli/Args.h"

namespace ckptmap::cli {

int runInspect(const ParsedArgs &args);
int runDiff(const ParsedArgs &args);
int runCheck(const ParsedArgs &args);
int runCompile(const ParsedArgs &args);
int runRun(const ParsedArgs &args);
int runQuantize(const ParsedArgs &args);
int runDequantize(const ParsedArgs &args);
int runExplain(const ParsedArgs &args);
int runOps(const ParsedArgs &args);

/// Every subcommand's spec, in the order `ckptmap --help` lists them.
const std::vector<CommandSpec> &commandSpecs();

} // namespace ckptmap::cli
