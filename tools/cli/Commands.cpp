#include "tools/cli/Commands.h"

#include "compiler/check/Ops.h"
#include "compiler/plan/Shapes.h"
#include "compiler/quant/Grouping.h"
#include "runtime/Convert.h"
#include "runtime/exec/Partition.h"
#include "runtime/exec/Progress.h"
#include "runtime/io/ByteSize.h"
#include "runtime/io/Inspect.h"
#include "runtime/io/Safetensors.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"

#include <map>

namespace ckptmap::cli {

using json = nlohmann::json;

namespace {

int fail(const llvm::Twine &message) {
  llvm::errs() << "ckptmap: error: " << message << "\n";
  return 1;
}

int fail(llvm::Error err) { return fail(llvm::toString(std::move(err))); }

// Options shared by the commands that compile a rulebook.
std::vector<OptionSpec> compileOptions() {
  return {
      {"from", 0, "CONV", "convention of the input: mcore, hf or hf-mem (default: recorded in the input)"},
      {"to", 0, "CONV", "convention of the output (default: recorded in the input)"},
      {"define", 'D', "NAME=VALUE", "override a rulebook parameter (value as JSON, else a string)", true},
      {"variant", 0, "CHOICE=NAME", "prefer a variant where the input does not decide (e.g. norms=local)", true},
      {"layout", 0, "NAME", "write the layout the rulebook names so (e.g. official, saved; default: the one the "
                            "input came from, recorded in it, else the official release's)"},
      {"hf-config", 0, "PATH", "config.json to use when the input has none (Megatron checkpoints)"},
      {"hf-base", 0, "DIR", "the original HF checkpoint, for the parts MCore does not hold"},
      {"any-model-type", 0, "", "accept a config whose model_type the rulebook does not list"},
      {"quantize", 0, "FORMAT", "store eligible weights as nvfp4, fp8, fp8-block or mxfp8"},
      {"exclude", 0, "PATTERN", "with --quantize: leave tensors or modules matching this glob unquantized", true},
      {"dequantize", 0, "", "store every quantized weight as BF16"},
      {"quant-format", 0, "NAMING", "NVFP4 naming of the output: modelopt or compressed-tensors"},
      {"mcore-format", 0, "FORMAT", "how an MCore output is stored: torch_dist (Megatron-Core's dist_checkpointing "
                                    "format; the default) or safetensors (the default for an MCore safetensors input)"},
      {"iteration", 0, "N", "with torch_dist: write Megatron's save layout, iter_{N:07d}/ beside "
                            "latest_checkpointed_iteration.txt"},
  };
}

/// --quantize, --exclude, --dequantize, --quant-format.
llvm::Error quantOptions(const ParsedArgs &args, QuantPassOptions &q) {
  auto bad = [](const std::string &m) { return llvm::createStringError(llvm::inconvertibleErrorCode(), m.c_str()); };
  if (args.has("quantize")) {
    auto kind = parseQuantKind(args.get("quantize"));
    if (!kind || *kind == QuantKind::None)
      return bad("--quantize expects nvfp4, fp8, fp8-block or mxfp8, got '" + args.get("quantize") + "'");
    q.quantize.kind = *kind;
  }
  q.exclude = args.all("exclude");
  if (!q.exclude.empty() && !args.has("quantize"))
    return bad("--exclude applies to --quantize");
  q.dequantize = args.has("dequantize");
  if (q.dequantize && args.has("quantize"))
    return bad("--quantize and --dequantize exclude each other");
  if (args.has("quant-format")) {
    std::string n = args.get("quant-format");
    if (n != "modelopt" && n != "compressed-tensors")
      return bad("--quant-format expects modelopt or compressed-tensors, got '" + n + "'");
    q.naming = n == "modelopt" ? QuantNaming::ModelOpt : QuantNaming::CompressedTensors;
    q.quantize.naming = *q.naming;
  }
  return llvm::Error::success();
}

// Options of the commands that write a checkpoint.
std::vector<OptionSpec> executionOptions() {
  return {
      {"max-shard-size", 0, "SIZE", "largest output shard (default 5GB; KB/MB/GB or KiB/MiB/GiB)"},
      {"max-memory", 0, "SIZE", "working memory for ops that compute (default: no limit); casts, affines and transposes run in pieces of it"},
      {"threads", 'j', "N", "worker threads (default: one per core)"},
      {"device", 0, "DEVICE", "where casts and (de)quantization run: cpu, cuda (every op on the GPU) or auto "
                              "(default: the GPU for tensors of 1 MiB and more, when there is one); results are "
                              "identical"},
      {"max-gpu-memory", 0, "SIZE", "GPU memory for --device cuda/auto, and as much pinned host memory (default 8GiB)"},
      {"partition", 0, "I/N", "write share I of N of the output, run by N processes at once (default: the ranks "
                              "of mpirun or srun); the files are those one process writes"},
      {"force", 'f', "", "replace OUT if it exists"},
      {"json", 0, "", "print a JSON summary, no progress"},
      {"quiet", 'q', "", "print nothing on success"},
      {"no-progress", 0, "", "no progress line"},
  };
}

std::vector<OptionSpec> with(std::vector<OptionSpec> a, const std::vector<OptionSpec> &b,
                             const std::vector<OptionSpec> &c = {}) {
  a.insert(a.end(), b.begin(), b.end());
  a.insert(a.end(), c.begin(), c.end());
  return a;
}

/// Reads --from/--to/-D/--variant and friends; `input` fills in a recorded direction.
llvm::Expected<ConvertOptions> conversionOptions(const ParsedArgs &args, const OpenedCheckpoint *input,
                                                 const std::string &rulebook) {
  ConvertOptions o;
  o.rulebook = rulebook;
  o.bind.from = args.get("from");
  o.bind.to = args.get("to");
  // Megatron's own formats hold MCore names only.
  if (o.bind.from.empty() && input && input->format != CheckpointFormat::Safetensors)
    o.bind.from = "mcore";
  if (input && input->provenance) {
    // The way back from a checkpoint this tool wrote needs no direction.
    if (o.bind.from.empty())
      o.bind.from = input->provenance->to;
    if (o.bind.to.empty() && o.bind.from == input->provenance->to)
      o.bind.to = input->provenance->from;
    if (o.rulebook.empty() && !input->provenance->family.empty())
      o.rulebook = input->provenance->family;
  }
  if (o.bind.from.empty() || o.bind.to.empty())
    return llvm::createStringError(llvm::inconvertibleErrorCode(), "--from and --to are required (e.g. --from hf --to mcore)");
  for (const std::string &d : args.all("define")) {
    auto [name, value] = llvm::StringRef(d).split('=');
    if (!llvm::StringRef(d).contains('=') || name.empty())
      return llvm::createStringError(llvm::inconvertibleErrorCode(), "-D expects NAME=VALUE, got '%s'", d.c_str());
    o.bind.overrides[name.str()] = parseOverride(value);
  }
  for (const std::string &v : args.all("variant")) {
    auto [choice, name] = llvm::StringRef(v).split('=');
    if (!llvm::StringRef(v).contains('=') || choice.empty() || name.empty())
      return llvm::createStringError(llvm::inconvertibleErrorCode(), "--variant expects CHOICE=NAME, got '%s'", v.c_str());
    o.bind.variants[choice.str()] = name.str();
  }
  o.bind.layout = args.get("layout");
  o.bind.anyModelType = args.has("any-model-type");
  o.hfConfig = args.get("hf-config");
  o.hfBase = args.get("hf-base");
  if (args.has("mcore-format")) {
    o.mcoreFormat = args.get("mcore-format");
    if (o.mcoreFormat != "torch_dist" && o.mcoreFormat != "safetensors")
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "--mcore-format expects torch_dist or safetensors, got '%s'", o.mcoreFormat.c_str());
  }
  if (args.has("iteration")) {
    int64_t n = -1;
    if (llvm::StringRef(args.get("iteration")).getAsInteger(10, n) || n < 0)
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "--iteration expects a non-negative integer, got '%s'", args.get("iteration").c_str());
    o.iteration = n;
  }
  if (auto e = quantOptions(args, o.quant))
    return llvm::Expected<ConvertOptions>(std::move(e));
  return o;
}

/// Splits "[RULEBOOK] rest..." given how many trailing positionals the command needs.
std::pair<std::string, std::vector<std::string>> splitRulebook(const ParsedArgs &args, size_t rest) {
  const auto &p = args.positionals();
  if (p.size() > rest)
    return {p[0], std::vector<std::string>(p.begin() + 1, p.end())};
  return {args.get("rulebook"), p};
}

struct Compiled {
  SourceManager sources;
  DiagnosticEngine diags{sources};
  std::optional<OpenedCheckpoint> input;
  std::unique_ptr<TensorSource> base;
  ConvertOptions options;
  CompiledPlan compiled;
  /// Why there is no plan when the diagnostics do not say it (an input that does not open).
  std::string error;

  bool ok() const { return compiled.plan.has_value(); }
};

/// Keeps a command's large structures alive until the process exits, for the OS to reclaim at
/// once (as clang's -disable-free does): freeing the plans of a 46k-tensor check object by
/// object costs a sixth of the run. Reachable from a global, so leak checkers stay quiet.
void keepUntilExit(std::shared_ptr<void> p) {
  static auto *kept = new std::vector<std::shared_ptr<void>>;
  kept->push_back(std::move(p));
}

/// Opens the input and compiles the plan, printing the diagnostics and any error to stderr.
/// The result always comes back, so that --json can report a failure too.
std::unique_ptr<Compiled> compileFromArgs(const ParsedArgs &args, const std::string &rulebook, const std::string &ckpt) {
  auto c = std::make_unique<Compiled>();
  auto failed = [&](llvm::Error e) {
    c->error = llvm::toString(std::move(e));
    fail(c->error);
    return std::move(c);
  };
  auto input = openCheckpoint(ckpt, args.get("hf-config"));
  if (!input)
    return failed(input.takeError());
  c->input = std::move(*input);
  auto options = conversionOptions(args, &*c->input, rulebook);
  if (!options)
    return failed(options.takeError());
  c->options = std::move(*options);
  if (!c->options.hfBase.empty()) {
    auto b = openSafetensors(c->options.hfBase);
    if (!b)
      return failed(b.takeError());
    c->base = std::move(*b);
  }
  auto compiled = compileFor(*c->input, c->options, c->base.get(), c->sources, c->diags);
  c->diags.print(llvm::errs());
  if (!compiled)
    return failed(compiled.takeError());
  c->compiled = std::move(*compiled);
  return c;
}

/// How many rule instances of each kind the plan runs.
std::map<std::string, size_t> stepKinds(const Plan &plan) {
  std::map<std::string, size_t> kinds;
  for (const Step &s : plan.steps)
    for (llvm::StringRef summary : s.summaries())
      ++kinds[summary.str()];
  return kinds;
}

json planSummaryJson(const Plan &plan) {
  json j;
  j["rulebook"] = plan.rulebook;
  j["family"] = plan.family;
  j["from"] = plan.from;
  j["to"] = plan.to;
  uint64_t inBytes = 0;
  for (const TensorMeta &t : plan.inputs)
    inBytes += t.byteSize();
  j["inputs"] = {{"tensors", plan.inputs.size() + plan.drops.size()}, {"bytes", inBytes}};
  j["outputs"] = {{"tensors", plan.outputs.size()}, {"bytes", plan.outputBytes()}};
  j["steps"] = stepKinds(plan);
  j["drops"] = json::array();
  for (const PlanDrop &d : plan.drops)
    j["drops"].push_back({{"tensor", d.tensor}, {"reason", d.reason}, {"rule", d.rule}});
  j["choices"] = json::array();
  for (const ChoiceRecord &c : plan.choices)
    j["choices"].push_back({{"choice", c.choice}, {"where", c.where}, {"variant", c.variant}, {"reason", c.reason}});
  j["gaps"] = json::array();
  for (const PlanGap &g : plan.gaps)
    j["gaps"].push_back({{"pattern", g.pattern}, {"reason", g.reason}, {"rule", g.rule}, {"from_base", g.fromBase}});
  return j;
}

/// "  LABEL norms: fused (3x), separate (1x)": the variants chosen per choice, among `keep`.
void printChoices(const Plan &plan, llvm::StringRef label, llvm::function_ref<bool(const ChoiceRecord &)> keep,
                  llvm::raw_ostream &os) {
  std::map<std::string, std::map<std::string, size_t>> choices;
  for (const ChoiceRecord &c : plan.choices)
    if (keep(c))
      ++choices[c.choice][c.variant];
  for (const auto &[choice, variants] : choices) {
    std::vector<std::string> parts;
    for (const auto &[v, n] : variants)
      parts.push_back(v + " (" + std::to_string(n) + "x)");
    os << "  " << label << " " << choice << ": " << llvm::join(parts, ", ") << "\n";
  }
}

void printPlanSummary(const Plan &plan, llvm::raw_ostream &os) {
  // A plan made without a rulebook (quantize, dequantize in place) keeps every name.
  if (plan.rulebook.empty())
    os << plan.from << ", every name kept: ";
  else
    os << plan.from << " -> " << plan.to << " with " << plan.rulebook << " (" << plan.family << "): ";
  os << plan.inputs.size() << " tensors read, " << plan.outputs.size() << " written ("
     << formatBytes(plan.outputBytes()) << ")\n";
  std::vector<std::string> kinds;
  for (const auto &[kind, n] : stepKinds(plan))
    kinds.push_back(kind + " " + std::to_string(n));
  os << "  steps: " << llvm::join(kinds, ", ") << "\n";
  if (!plan.drops.empty()) {
    std::map<std::string, size_t> reasons;
    for (const PlanDrop &d : plan.drops)
      ++reasons[d.reason];
    for (const auto &[reason, n] : reasons)
      os << "  dropped " << n << " tensor" << (n == 1 ? "" : "s") << ": " << reason << "\n";
  }
  printChoices(plan, "variant", [](const ChoiceRecord &) { return true; }, os);
  for (const PlanGap &g : plan.gaps)
    os << "  not produced: " << g.pattern << ": " << g.reason << (g.fromBase ? " (pass --hf-base DIR to restore it)" : "")
       << "\n";
}

/// Runs a conversion with the execution options of run/quantize and prints its summary.
int executeConversion(const ParsedArgs &args, ConvertOptions options, const std::string &in, const std::string &out) {
  if (args.has("max-shard-size")) {
    auto size = parseByteSize(args.get("max-shard-size"));
    if (!size)
      return fail(size.takeError());
    options.write.maxShardSize = *size;
  }
  if (args.has("max-memory")) {
    auto size = parseByteSize(args.get("max-memory"));
    if (!size)
      return fail(size.takeError());
    options.exec.maxMemory = *size;
  }
  if (args.has("threads")) {
    unsigned n = 0;
    if (llvm::StringRef(args.get("threads")).getAsInteger(10, n) || n == 0)
      return fail("--threads expects a positive integer, got '" + args.get("threads") + "'");
    options.exec.threads = n;
  }
  if (args.has("device")) {
    auto device = parseDeviceChoice(args.get("device"));
    if (!device)
      return fail("--device expects cpu, cuda or auto, got '" + args.get("device") + "'");
    options.device.device = *device;
  }
  if (args.has("max-gpu-memory")) {
    auto size = parseByteSize(args.get("max-gpu-memory"));
    if (!size)
      return fail(size.takeError());
    options.device.gpu.maxGpuMemory = *size;
  }
  options.write.force = args.has("force");
  if (args.has("partition")) {
    auto share = parsePartition(args.get("partition"));
    if (!share)
      return fail(share.takeError());
    options.share = *share;
  }

  SourceManager sources;
  DiagnosticEngine diags(sources);
  auto summary = convert(in, out, options, sources, diags);
  diags.print(llvm::errs());
  if (!summary)
    return fail(summary.takeError());
  const Plan &plan = summary->plan;
  if (args.has("json")) {
    json j = planSummaryJson(plan);
    j["output"] = out;
    j["seconds"] = summary->seconds;
    j["bytes_written"] = summary->exec.bytesWritten;
    j["kept_aside"] = summary->exec.stash;
    j["not_converted"] = summary->notConverted;
    j["share"] = {{"index", summary->share.index}, {"count", summary->share.count}};
    j["lossy"] = summary->exec.lossy;
    j["quantized"] = summary->quant.quantized;
    j["dequantized"] = summary->quant.dequantized;
    j["excluded_modules"] = summary->quant.excludedModules;
    const BackendStats &k = summary->kernels;
    j["device"] = {{"backend", summary->device},
                   {"gpus", k.devices},
                   {"gpu_ops", k.deviceOps},
                   {"cpu_ops", k.hostOps},
                   {"bytes_to_gpu", k.bytesToDevice},
                   {"bytes_from_gpu", k.bytesToHost}};
    llvm::outs() << j.dump(2) << "\n";
    return 0;
  }
  for (const std::string &s : summary->exec.lossy)
    llvm::errs() << "ckptmap: warning: " << s << "\n";
  if (!args.has("quiet")) {
    printPlanSummary(plan, llvm::outs());
    for (const std::string &s : summary->exec.stash)
      llvm::outs() << "  kept aside (differs from the tensor that would restore it): " << s << "\n";
    if (size_t n = summary->notConverted.size())
      llvm::outs() << "  not converted: " << n << " entr" << (n == 1 ? "y" : "ies")
                   << " of training state and non-tensor state (e.g. '" << summary->notConverted.front() << "')\n";
    const QuantPassReport &q = summary->quant;
    if (q.quantized || q.dequantized || q.renamed)
      llvm::outs() << "  quantization: " << q.quantized << " weights quantized, " << q.dequantized << " dequantized, "
                   << q.renamed << " renamed; " << q.excludedModules.size() << " matrices left unquantized\n";
    const BackendStats &k = summary->kernels;
    if (k.devices)
      llvm::outs() << "  device: " << summary->device << " (" << k.devices << " GPU" << (k.devices == 1 ? "" : "s")
                   << "): " << k.deviceOps << " ops on the GPU, " << k.hostOps << " small ones on the CPU; "
                   << formatBytes(k.bytesToDevice) << " to the GPU, " << formatBytes(k.bytesToHost) << " back\n";
    double rate = summary->seconds > 0 ? double(summary->exec.bytesWritten) / summary->seconds : 0;
    if (summary->share.active())
      llvm::outs() << "share " << summary->share.index << " of " << summary->share.count
                   << (summary->share.finishes() ? " (finished the output)" : "") << ": ";
    llvm::outs() << "wrote " << out << ": " << summary->exec.tensorsWritten << " tensors, "
                 << formatBytes(summary->exec.bytesWritten) << " in " << llvm::format("%.2f", summary->seconds) << " s ("
                 << formatBytes(uint64_t(rate)) << "/s)\n";
  }
  return 0;
}

} // namespace

/// What `inspect` says beyond the tensors: the family, the layout variant the checkpoint shows
/// for each kind of block, and the quantized format of each group of tensors. Found by binding
/// the rulebook its config (or provenance) names, as a conversion would; silent when there is
/// none or it does not bind (the tensor list is the answer then).
void printLayoutSummary(const OpenedCheckpoint &input, llvm::raw_ostream &os) {
  ConvertOptions o;
  const bool megatron = input.format != CheckpointFormat::Safetensors;
  o.bind.from = input.provenance ? input.provenance->to : megatron ? "mcore" : "hf";
  o.bind.to = input.provenance ? input.provenance->from : megatron ? "hf" : "mcore";
  if (o.bind.to == "mcore")
    o.mcoreFormat = "safetensors"; // the names of an MCore output do not matter here
  if (input.provenance)
    o.rulebook = input.provenance->family;
  SourceManager sources;
  DiagnosticEngine diags(sources);
  auto compiled = compileFor(input, o, nullptr, sources, diags);
  if (!compiled) {
    llvm::consumeError(compiled.takeError());
    return;
  }
  const Plan &plan = *compiled->plan;
  os << "family: " << plan.family << " (rulebook " << plan.rulebook << ", read as " << plan.from << ")\n";
  // Only the choices the tensors decide describe the checkpoint; the others are about the output.
  printChoices(plan, "layout", [](const ChoiceRecord &c) {
    return c.reason == "the only variant the checkpoint matches" || c.reason == "matches the most tensors";
  }, os);
  std::map<std::string, std::pair<size_t, std::string>> formats; ///< format -> count, an example
  for (const TensorMeta &t : plan.inputs) {
    auto &[n, example] = formats[t.quant.quantized() ? quantKindName(t.quant.kind).str()
                                 : isKvCacheScale(t)   ? std::string("fp8 kv-cache scales")
                                                       : std::string("unquantized")];
    if (n++ == 0)
      example = t.name;
  }
  for (const auto &[format, entry] : formats)
    os << "  format " << format << ": " << entry.first << " tensor" << (entry.first == 1 ? "" : "s") << ", e.g. '"
       << entry.second << "'\n";
}

int runInspect(const ParsedArgs &args) {
  auto source = openCheckpoint(args.positionals()[0], args.get("hf-config"));
  if (!source)
    return fail(source.takeError());
  if (args.has("json")) {
    json j = describeCheckpoint(*source->tensors);
    j["format"] = mcore::formatName(source->format).str();
    j["not_converted"] = source->notConverted;
    llvm::outs() << j.dump(2) << "\n";
    return 0;
  }
  printCheckpoint(llvm::outs(), *source->tensors);
  llvm::outs() << "storage: " << mcore::formatName(source->format);
  if (size_t n = source->notConverted.size())
    llvm::outs() << "; besides the tensors " << n << " entr" << (n == 1 ? "y" : "ies")
                 << " of training or non-tensor state, which conversions leave";
  llvm::outs() << "\n";
  printLayoutSummary(*source, llvm::outs());
  return 0;
}

int runDiff(const ParsedArgs &args) {
  // 1 answers the question ("they differ"); a failure to answer it is 2, as cmp and diff do.
  constexpr int kCannotCompare = 2;
  auto a = openCheckpoint(args.positionals()[0]);
  if (!a)
    return fail(a.takeError()), kCannotCompare;
  auto b = openCheckpoint(args.positionals()[1]);
  if (!b)
    return fail(b.takeError()), kCannotCompare;
  DiffOptions options;
  options.compareBytes = !args.has("headers-only");
  auto diff = diffCheckpoints(*a->tensors, *b->tensors, options);
  if (!diff)
    return fail(diff.takeError()), kCannotCompare;
  if (args.has("json"))
    llvm::outs() << diffToJson(*diff).dump(2) << "\n";
  else
    printDiff(llvm::outs(), *diff);
  return diff->same() ? 0 : 1;
}

int runCheck(const ParsedArgs &args) {
  auto [rulebook, rest] = splitRulebook(args, 1);
  auto c = compileFromArgs(args, rulebook, rest[0]);
  if (!c->ok()) {
    if (args.has("json")) {
      // What failed, for tools: the error and every diagnostic, as on stderr.
      json j{{"ok", false}, {"diagnostics", c->diags.toJson()}};
      if (!c->error.empty())
        j["error"] = c->error;
      llvm::outs() << j.dump(2) << "\n";
    }
    return 1;
  }
  const Plan &plan = *c->compiled.plan;
  DiagnosticEngine reverseDiags(c->sources);
  auto kept = std::make_shared<RoundTrip>(checkRoundTrip(*c->compiled.rulebook, c->compiled.rulebookPath, plan,
                                                         c->compiled.inputs, c->compiled.options, reverseDiags));
  const RoundTrip &trip = *kept;
  keepUntilExit(std::move(kept));
  const Compiled &compiled = *c;
  keepUntilExit(std::shared_ptr<Compiled>(std::move(c)));
  reverseDiags.print(llvm::errs());
  bool ok = trip.reverse && trip.mismatches.empty();
  if (args.has("json")) {
    json j = planSummaryJson(plan);
    j["round_trip"] = {{"compiled", bool(trip.reverse)},
                       {"restored", trip.restored},
                       {"mismatches", trip.mismatches},
                       {"stated_gaps", trip.statedGaps},
                       {"lossy", trip.lossy}};
    json diagnostics = compiled.diags.toJson();
    for (json &d : reverseDiags.toJson())
      diagnostics.push_back(std::move(d));
    j["diagnostics"] = std::move(diagnostics);
    j["ok"] = ok;
    llvm::outs() << j.dump(2) << "\n";
    return ok ? 0 : 1;
  }
  printPlanSummary(plan, llvm::outs());
  if (!trip.reverse) {
    llvm::outs() << "the way back (" << plan.to << " -> " << plan.from << ") does not compile: see the errors above\n";
    return 1;
  }
  llvm::outs() << "way back " << plan.to << " -> " << plan.from << ": " << trip.restored << " of "
               << trip.total << " tensors restored with their names, dtypes and shapes\n";
  for (const std::string &m : trip.mismatches)
    llvm::outs() << "  mismatch: " << m << "\n";
  size_t shown = 0;
  for (const std::string &g : trip.statedGaps)
    if (shown++ < 10)
      llvm::outs() << "  by rule: " << g << "\n";
  if (trip.statedGaps.size() > 10)
    llvm::outs() << "  by rule: ... and " << trip.statedGaps.size() - 10 << " more\n";
  if (trip.lossy.empty())
    llvm::outs() << "every step is lossless\n";
  for (const std::string &l : trip.lossy)
    llvm::outs() << "  may lose bits: " << l << "\n";
  llvm::outs() << (ok ? "ok\n" : "FAILED\n");
  return ok ? 0 : 1;
}

int runCompile(const ParsedArgs &args) {
  auto [rulebook, rest] = splitRulebook(args, 1);
  if (!args.has("output"))
    return fail("compile needs -o PLAN.json");
  auto c = compileFromArgs(args, rulebook, rest[0]);
  if (!c->ok())
    return 1;
  std::string out = args.get("output");
  std::error_code ec;
  std::string tmp = out + ".tmp";
  {
    llvm::raw_fd_ostream os(tmp, ec);
    if (ec)
      return fail("cannot write '" + tmp + "': " + ec.message());
    os << planToJson(*c->compiled.plan).dump(1) << "\n";
    os.close();
    if (os.has_error())
      return fail("cannot write '" + tmp + "': " + os.error().message());
  }
  if (auto e = llvm::sys::fs::rename(tmp, out)) {
    llvm::sys::fs::remove(tmp);
    return fail("cannot write '" + out + "': " + e.message());
  }
  if (!args.has("quiet"))
    printPlanSummary(*c->compiled.plan, llvm::errs());
  return 0;
}

int runRun(const ParsedArgs &args) {
  auto [rulebook, rest] = splitRulebook(args, 2);
  bool quiet = args.has("quiet") || args.has("json");
  ProgressDisplay::setQuiet(quiet || args.has("no-progress"));
  auto input = openCheckpoint(rest[0], args.get("hf-config"));
  if (!input)
    return fail(input.takeError());
  ConvertOptions options;
  if (args.has("plan")) {
    options.planPath = args.get("plan");
  } else {
    auto o = conversionOptions(args, &*input, rulebook);
    if (!o)
      return fail(o.takeError());
    options = std::move(*o);
    // One convention on both sides (e.g. --dequantize --from hf --to hf): names stay as they
    // are and only the storage passes apply.
    options.identity = options.bind.from == options.bind.to;
  }
  input = llvm::Expected<OpenedCheckpoint>(llvm::createStringError(llvm::inconvertibleErrorCode(), "closed"));
  llvm::consumeError(input.takeError());
  return executeConversion(args, std::move(options), rest[0], rest[1]);
}

int runQuantize(const ParsedArgs &args) {
  ConvertOptions options;
  options.identity = true;
  options.bind.from = options.bind.to = "hf";
  if (!args.has("format"))
    return fail("--format is required (nvfp4, fp8, fp8-block or mxfp8)");
  auto kind = parseQuantKind(args.get("format"));
  if (!kind || *kind == QuantKind::None)
    return fail("--format expects nvfp4, fp8, fp8-block or mxfp8, got '" + args.get("format") + "'");
  options.quant.quantize.kind = *kind;
  options.quant.exclude = args.all("exclude");
  if (args.has("quant-format")) {
    std::string n = args.get("quant-format");
    if (n != "modelopt" && n != "compressed-tensors")
      return fail("--quant-format expects modelopt or compressed-tensors, got '" + n + "'");
    options.quant.quantize.naming = n == "modelopt" ? QuantNaming::ModelOpt : QuantNaming::CompressedTensors;
  }
  ProgressDisplay::setQuiet(args.has("quiet") || args.has("json") || args.has("no-progress"));
  return executeConversion(args, std::move(options), args.positionals()[0], args.positionals()[1]);
}

int runDequantize(const ParsedArgs &args) {
  ConvertOptions options;
  options.identity = true;
  options.bind.from = options.bind.to = "hf";
  options.quant.dequantize = true;
  ProgressDisplay::setQuiet(args.has("quiet") || args.has("json") || args.has("no-progress"));
  return executeConversion(args, std::move(options), args.positionals()[0], args.positionals()[1]);
}

namespace {

/// The whole statement at `location` ("path:line:col"), as its lines stand in the rulebook
/// (indented as they are, less the first line's indentation).
std::vector<std::string> ruleText(llvm::StringRef location, const Compiled &c) {
  SourceLoc loc = c.sources.parse(location);
  if (!loc.valid())
    return {};
  const ast::Stmt *stmt = c.compiled.rulebook->ast().statementAt(loc);
  uint32_t last = stmt ? stmt->lastLine() : loc.line;
  std::vector<std::string> lines;
  size_t indent = std::string::npos;
  for (uint32_t line = loc.line; line <= last; ++line) {
    llvm::StringRef text = c.sources.line(loc.file, line).rtrim();
    if (indent == std::string::npos)
      indent = text.size() - text.ltrim().size();
    size_t own = text.size() - text.ltrim().size();
    lines.push_back(text.drop_front(std::min(indent, own)).str());
  }
  return lines;
}

void printRule(llvm::StringRef location, const Compiled &c, llvm::raw_ostream &os) {
  os << "  rule " << location << "\n";
  for (const std::string &line : ruleText(location, c))
    os << "    | " << line << "\n";
}

void printStep(const Step &step, const Compiled &c, llvm::raw_ostream &os) {
  printRule(step.rule, c, os);
  if (!step.variants.empty())
    os << "  variants: " << step.variants << "\n";
  for (const Instr &i : step.instrs) {
    std::string outs;
    for (uint32_t v : i.out)
      outs += (outs.empty() ? "%" : ", %") + std::to_string(v);
    std::string ins;
    for (uint32_t v : i.in)
      ins += (ins.empty() ? "%" : ", %") + std::to_string(v);
    os << "    " << (outs.empty() ? "" : outs + " = ") << instrOpName(i.op);
    if (!i.tensor.empty())
      os << " '" << i.tensor << "'";
    if (i.op == InstrOp::Load && i.source != LoadSource::Input)
      os << (i.source == LoadSource::Stash ? " from the tensors kept aside" : " from --hf-base");
    if (!ins.empty())
      os << " " << ins;
    switch (i.op) {
    case InstrOp::Concat: os << " dim=" << i.dim; break;
    case InstrOp::Split: os << " dim=" << i.dim << " sizes=" << formatShape(i.sizes); break;
    case InstrOp::QkvFuse:
    case InstrOp::QkvSplit:
      os << " heads=" << i.heads << " groups=" << i.groups << " head_dim=" << i.headDim << (i.gate ? " gate" : "");
      break;
    case InstrOp::Transpose: os << " perm=" << formatShape(i.perm); break;
    case InstrOp::Affine: os << " scale=" << i.scale << " shift=" << i.shift; break;
    case InstrOp::Fill: os << " value=" << i.value; break;
    default: break;
    }
    if (i.out.size() == 1)
      os << "    : " << formatType(step.values[i.out[0]]);
    os << "\n";
  }
  // The tensors the step writes, with their types.
  for (const Instr &i : step.instrs)
    if (i.op == InstrOp::Store)
      os << "  -> " << i.tensor << "  " << formatType(step.values[i.in[0]]) << "\n";
}

/// Steps of `plan` that read or write `tensor`.
std::vector<const Step *> stepsTouching(const Plan &plan, llvm::StringRef tensor) {
  std::vector<const Step *> out;
  for (const Step &s : plan.steps)
    for (const Instr &i : s.instrs)
      if ((i.op == InstrOp::Load || i.op == InstrOp::Store) && i.tensor == tensor) {
        out.push_back(&s);
        break;
      }
  return out;
}

/// Steps of `plan` that write `tensor`.
std::vector<const Step *> stepsStoring(const Plan &plan, llvm::StringRef tensor) {
  std::vector<const Step *> out;
  for (const Step &s : plan.steps)
    if (llvm::any_of(s.instrs, [&](const Instr &i) { return i.op == InstrOp::Store && i.tensor == tensor; }))
      out.push_back(&s);
  return out;
}

} // namespace

int runExplain(const ParsedArgs &args) {
  auto [rulebook, rest] = splitRulebook(args, 2);
  auto c = compileFromArgs(args, rulebook, rest[0]);
  if (!c->ok())
    return 1;
  const std::string &tensor = rest[1];
  const Plan &plan = *c->compiled.plan;
  llvm::raw_ostream &os = llvm::outs();
  auto forward = stepsTouching(plan, tensor);
  auto dropped = llvm::find_if(plan.drops, [&](const PlanDrop &d) { return d.tensor == tensor; });
  if (forward.empty() && dropped == plan.drops.end()) {
    std::vector<std::string> names;
    for (const TensorMeta &t : c->compiled.inputs.source)
      names.push_back(t.name);
    std::string guess = NameSuggester(names).closest(tensor);
    return fail("'" + tensor + "' is not a tensor of " + rest[0] + (guess.empty() ? "" : "; did you mean '" + guess + "'?"));
  }
  if (dropped != plan.drops.end()) {
    os << plan.from << " -> " << plan.to << ": dropped: " << dropped->reason << "\n";
    printRule(dropped->rule, *c, os);
  }
  for (const Step *s : forward) {
    os << plan.from << " -> " << plan.to << ": " << s->summary << "\n";
    printStep(*s, *c, os);
  }
  // The way back, compiled from the forward plan's outputs: how this tensor comes back.
  DiagnosticEngine reverseDiags(c->sources);
  RoundTrip trip = checkRoundTrip(*c->compiled.rulebook, c->compiled.rulebookPath, plan, c->compiled.inputs,
                                  c->compiled.options, reverseDiags);
  if (!trip.reverse) {
    reverseDiags.print(llvm::errs());
    return 1;
  }
  auto back = stepsStoring(*trip.reverse, tensor);
  for (const Step *s : back) {
    os << plan.to << " -> " << plan.from << ": " << s->summary << "\n";
    printStep(*s, *c, os);
  }
  if (back.empty()) {
    // Not produced on the way back: the rule that says so.
    std::string why = "no rule restores it";
    for (const PlanGap &g : trip.reverse->gaps) {
      llvm::StringMap<std::string> captures;
      if (NameTemplate::fromDisplay(g.pattern).match(tensor, captures))
        why = g.reason + " (" + g.rule + ")";
    }
    os << plan.to << " -> " << plan.from << ": not restored: " << why << "\n";
  }
  return 0;
}

int runOps(const ParsedArgs &) {
  for (const OpInfo &op : allOps()) {
    llvm::outs() << op.name << " (inverse: " << op.inverseName << (op.lossless ? "" : "; may round") << ")\n    "
                 << op.summary << "\n";
    for (const OpParam &p : op.params)
      llvm::outs() << "    " << p.name << (p.required ? "" : " (optional)") << ": " << p.doc << "\n";
  }
  return 0;
}

const std::vector<CommandSpec> &commandSpecs() {
  static const std::vector<CommandSpec> specs = {
      {"inspect", "CKPT [--json]", "list a checkpoint's tensors, dtypes, shapes and sizes; its family, layout and formats",
       "Lists every tensor of a checkpoint with its dtype, shape, size and file, then totals per\n"
       "dtype. CKPT is a safetensors file or directory (with or without model.safetensors.index.json),\n"
       "a torch_dist directory or a legacy Megatron checkpoint (latest_checkpointed_iteration.txt\n"
       "with iter_*/mp_rank_*/model_optim_rng.pt), read without Python or torch.",
       {{"json", 0, "", "print JSON instead of a table"},
        {"hf-config", 0, "PATH", "config.json naming the family of a Megatron checkpoint"}},
       1, 1},
      {"diff", "A B [--json] [--headers-only]", "compare two checkpoints tensor by tensor",
       "Reports tensors only in A, only in B, and those whose dtype, shape or bytes differ. Either\n"
       "may be in any format inspect reads.\n"
       "Exits 0 when the checkpoints hold the same tensors, 1 when they differ, 2 when either\n"
       "cannot be read (or the arguments are wrong).",
       {{"json", 0, "", "print JSON"}, {"headers-only", 0, "", "compare names, dtypes and shapes, not bytes"}},
       2, 2},
      {"check", "[RULEBOOK] --from X --to Y CKPT", "verify a rulebook against a checkpoint, both ways",
       "Compiles the plan from the checkpoint's headers alone (no tensor data is read): every\n"
       "tensor must be covered by exactly one rule or an explicit drop, every output produced\n"
       "once, every shape and dtype consistent. Then compiles the way back from the result and\n"
       "proves it restores every name, dtype and shape, and lists the steps that may lose bits.\n"
       "RULEBOOK is a path or a family name; without it, the shipped rulebook whose model_types\n"
       "include the config's model_type is used. Exits 0 only when everything holds.",
       with(compileOptions(), {{"json", 0, "", "print JSON"}, {"rulebook", 0, "PATH", "the rulebook (instead of the first argument)"}}),
       1, 2},
      {"compile", "[RULEBOOK] --from X --to Y CKPT -o PLAN.json", "write the execution plan as JSON",
       "Compiles as check does and writes the plan (every op on concrete tensors, with shapes and\n"
       "dtypes; schema in docs/plan.md). `ckptmap run --plan PLAN.json IN OUT` executes it.",
       with(compileOptions(), {{"output", 'o', "PLAN.json", "where to write the plan"},
                               {"quiet", 'q', "", "do not print the summary"},
                               {"rulebook", 0, "PATH", "the rulebook (instead of the first argument)"}}),
       1, 2},
      {"run", "[RULEBOOK] --from X --to Y IN OUT", "convert a checkpoint",
       "Compiles the plan, checks it, and converts IN into OUT: tensors streamed shard by shard,\n"
       "renames copied without decoding, output built in a temporary directory beside OUT and\n"
       "moved into place only when complete. config.json, tokenizer and generation files are\n"
       "carried over. The choices made are recorded in OUT/ckptmap.json, so converting OUT back\n"
       "needs neither a direction nor a rulebook.",
       with(compileOptions(), {{"plan", 0, "PLAN.json", "run a compiled plan instead of a rulebook"},
                               {"rulebook", 0, "PATH", "the rulebook (instead of the first argument)"}},
                          executionOptions()),
       2, 3},
      {"quantize", "--format F [--exclude PATTERN]... IN OUT", "quantize a checkpoint's weights, keeping every name",
       "Writes IN's tensors under their own names, the eligible linear weights quantized to F\n"
       "(nvfp4, fp8, fp8-block or mxfp8): X.weight becomes X.weight with its scales beside it\n"
       "(X.weight_scale, ...). Embeddings, lm_head, routers, norms, biases, conv1d, A_log, D, dt_bias\n"
       "and MTP heads stay as they are. Writes hf_quant_config.json and config.json's\n"
       "quantization_config, listing the modules left out.",
       with({{"format", 0, "F", "nvfp4, fp8, fp8-block or mxfp8"},
             {"exclude", 0, "PATTERN", "leave tensors or modules matching this glob unquantized", true},
             {"quant-format", 0, "NAMING", "NVFP4 naming: modelopt (default) or compressed-tensors"}},
            executionOptions()),
       2, 2},
      {"dequantize", "IN OUT", "store a quantized checkpoint's weights as BF16, keeping every name",
       "Writes IN's tensors under their own names, every quantized weight (NVFP4, FP8, FP8 blocks,\n"
       "MXFP8, in ModelOpt or compressed-tensors naming) as one BF16 X.weight without its scales.\n"
       "The output's config.json no longer claims quantization and hf_quant_config.json is left out.",
       executionOptions(), 2, 2},
      {"explain", "[RULEBOOK] --from X --to Y CKPT TENSOR", "show how one tensor is converted, both ways",
       "Prints the rule that maps TENSOR (with its source line), the ops it goes through and the\n"
       "tensors it becomes, then the same for the way back.",
       with(compileOptions(), {{"rulebook", 0, "PATH", "the rulebook (instead of the first argument)"}}),
       2, 3},
      {"ops", "", "list the ops of the rule language", "Lists every op, its inverse and its parameters.", {}, 0, 0},
  };
  return specs;
}

} // namespace ckptmap::cli
