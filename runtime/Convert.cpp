#include "runtime/Convert.h"

#include "compiler/parse/Parser.h"
#include "compiler/plan/Planner.h"
#include "compiler/plan/Shapes.h"
#include "compiler/quant/Grouping.h"
#include "runtime/QuantConfig.h"
#include "runtime/exec/Partition.h"
#include "runtime/exec/Progress.h"
#include "runtime/io/Json.h"
#include "runtime/io/Safetensors.h"
#include "runtime/mcore/Legacy.h"
#include "runtime/mcore/TorchDist.h"
#include "runtime/mcore/TorchDistSink.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"

#include <chrono>

namespace ckptmap {

using json = nlohmann::json;

static llvm::Error error(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message.str().c_str());
}

std::vector<TensorMeta> OpenedCheckpoint::metasOf(const TensorSource &source) {
  std::vector<TensorMeta> out;
  for (const SourceTensor &t : source.tensors())
    out.push_back(t.meta);
  return out;
}

std::vector<TensorMeta> OpenedCheckpoint::metas() const { return metasOf(*tensors); }

static llvm::Expected<Provenance> readProvenance(llvm::StringRef path) {
  auto j = readJsonFile(path);
  if (!j)
    return j.takeError();
  if (!j->is_object())
    return error(path + ": not a JSON object");
  // Fields of the wrong type read as absent, like the fields a newer writer may add.
  auto text = [](const json &o, const char *key) {
    auto it = o.find(key);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  Provenance p;
  p.family = text(*j, "family");
  p.from = text(*j, "from");
  p.to = text(*j, "to");
  if (j->contains("fp8_row_groups") && (*j)["fp8_row_groups"].is_object())
    for (const auto &[name, groups] : (*j)["fp8_row_groups"].items())
      if (groups.is_array() && llvm::all_of(groups, [](const json &g) { return g.is_number_integer() && g.get<int64_t>() > 0; }))
        p.fp8RowGroups[name] = groups.get<std::vector<int64_t>>();
  if (j->contains("original_files") && (*j)["original_files"].is_object())
    for (const auto &[file, text] : (*j)["original_files"].items())
      if (text.is_string())
        p.originalFiles[file] = text.get<std::string>();
  if (j->contains("choices") && (*j)["choices"].is_array())
    for (const json &c : (*j)["choices"])
      if (c.is_object())
        p.choices.push_back(ChoiceRecord{text(c, "choice"), text(c, "where"), text(c, "variant"), "", {}});
  return p;
}

llvm::Expected<OpenedCheckpoint> openCheckpoint(llvm::StringRef path, llvm::StringRef configOverride) {
  OpenedCheckpoint out;
  out.path = path.str();
  if (!llvm::sys::fs::exists(path))
    return error("'" + path + "' does not exist");
  // Megatron's own formats are recognized by their marker files; anything else is read as
  // safetensors, whose reader explains what is wrong with it.
  auto detected = mcore::detectFormat(path.str());
  CheckpointFormat format = detected ? detected->format : CheckpointFormat::Safetensors;
  llvm::consumeError(detected.takeError());
  out.format = format;
  // Both Megatron readers list what they leave (training state, non-tensor entries).
  auto take = [&](auto opened) -> llvm::Error {
    if (!opened)
      return opened.takeError();
    llvm::ArrayRef<std::string> skipped = (*opened)->skipped();
    out.notConverted.assign(skipped.begin(), skipped.end());
    out.tensors = std::move(*opened);
    return llvm::Error::success();
  };
  if (format == CheckpointFormat::TorchDist) {
    if (auto e = take(mcore::TorchDistSource::open(path.str())))
      return e;
  } else if (format == CheckpointFormat::Legacy) {
    if (auto e = take(mcore::LegacySource::open(path.str())))
      return e;
  } else {
    auto tensors = openSafetensors(path);
    if (!tensors)
      return tensors.takeError();
    out.tensors = std::move(*tensors);
  }
  // The files beside the tensors; for a Megatron save directory, those of its iteration.
  std::string dir = format == CheckpointFormat::Safetensors
                        ? (llvm::sys::fs::is_directory(path) ? path.str() : llvm::sys::path::parent_path(path).str())
                        : out.tensors->root();
  if (dir.empty())
    dir = ".";
  out.dir = dir;

  out.configPath = configOverride.empty() ? dir + "/config.json" : configOverride.str();
  if (!configOverride.empty() || llvm::sys::fs::exists(out.configPath)) {
    auto config = readJsonFile(out.configPath);
    if (!config)
      return config.takeError();
    out.config = std::move(*config);
  } else {
    out.configPath.clear();
  }
  std::string provenance = dir + "/" + kProvenanceFile.str();
  if (llvm::sys::fs::exists(provenance)) {
    auto p = readProvenance(provenance);
    if (!p)
      return p.takeError();
    out.provenance = std::move(*p);
  }
  std::string stash = dir + "/" + kStashDir.str();
  if (llvm::sys::fs::is_directory(stash)) {
    auto s = openSafetensors(stash);
    if (!s)
      return s.takeError();
    out.stash = std::move(*s);
  }
  return out;
}

std::vector<std::string> rulebookSearchPath() {
  std::vector<std::string> dirs;
  if (auto env = llvm::sys::Process::GetEnv("CKPTMAP_RULEBOOKS"))
    dirs.push_back(*env);
  dirs.push_back(CKPTMAP_RULEBOOK_DIR);
  return dirs;
}

llvm::Expected<std::string> resolveRulebook(llvm::StringRef arg, const json &config) {
  if (!arg.empty()) {
    if (llvm::sys::fs::exists(arg))
      return arg.str();
    for (const std::string &dir : rulebookSearchPath()) {
      std::string candidate = dir + "/" + arg.str() + ".rules";
      if (llvm::sys::fs::exists(candidate))
        return candidate;
    }
    return error("no rulebook '" + arg + "': not a file, and no " + arg + ".rules in " + rulebookSearchPath().back());
  }
  std::string type = config.is_object() && config.contains("model_type") && config["model_type"].is_string()
                         ? config["model_type"].get<std::string>()
                         : "";
  if (config.is_null())
    return error("no rulebook given, and no config.json whose model_type would name one; pass RULEBOOK and "
                 "--hf-config PATH");
  if (type.empty())
    return error("no rulebook given and the checkpoint's config.json names no model_type; pass RULEBOOK");
  std::vector<std::string> matches;
  for (const std::string &dir : rulebookSearchPath()) {
    std::error_code ec;
    for (llvm::sys::fs::directory_iterator it(dir, ec), end; it != end && !ec; it.increment(ec)) {
      if (llvm::sys::path::extension(it->path()) != ".rules")
        continue;
      // Only a rulebook whose text names the model_type can accept it: the others need no parse.
      auto text = llvm::MemoryBuffer::getFile(it->path());
      if (text && (*text)->getBuffer().find("\"" + type + "\"") == llvm::StringRef::npos)
        continue;
      SourceManager sources;
      DiagnosticEngine diags(sources);
      auto rb = parseRulebookFile(it->path(), sources, diags);
      if (rb && llvm::is_contained(rb->modelTypes, type))
        matches.push_back(it->path());
    }
    if (!matches.empty())
      break;
  }
  std::sort(matches.begin(), matches.end());
  if (matches.empty())
    return error("no shipped rulebook accepts model_type '" + type + "'; pass RULEBOOK");
  if (matches.size() > 1)
    return error("several rulebooks accept model_type '" + type + "' (" + llvm::join(matches, ", ") + "); pass one");
  return matches.front();
}

llvm::Expected<bool> writesTorchDist(const ConvertOptions &options, const OpenedCheckpoint &input, llvm::StringRef to) {
  if (to != "mcore") {
    if (!options.mcoreFormat.empty())
      return error("--mcore-format applies to an MCore output (--to mcore)");
    if (options.iteration)
      return error("--iteration applies to a torch_dist output (--to mcore)");
    return false;
  }
  // By default Megatron-Core's own format, except that MCore-named safetensors stay so.
  bool torchDist = options.mcoreFormat.empty()
                       ? !(input.format == CheckpointFormat::Safetensors && options.bind.from == "mcore")
                       : options.mcoreFormat == "torch_dist";
  if (options.iteration && !torchDist)
    return error("--iteration applies to a torch_dist output, not --mcore-format safetensors");
  return torchDist;
}

llvm::Expected<CompiledPlan> compileFor(const OpenedCheckpoint &input, const ConvertOptions &options,
                                        const TensorSource *base, SourceManager &sources, DiagnosticEngine &diags) {
  CompiledPlan out;
  auto path = resolveRulebook(options.rulebook, input.config);
  if (!path)
    return path.takeError();
  out.rulebookPath = *path;
  out.rulebook = loadRulebook(*path, sources, diags);
  if (!out.rulebook)
    return out;
  if (input.config.is_null())
    return error("'" + input.path + "' has no config.json; pass --hf-config PATH");
  out.inputs.config = input.config;
  out.inputs.source = input.metas();
  if (input.stash)
    for (const SourceTensor &t : input.stash->tensors())
      out.inputs.stash.push_back(t.meta);
  if (base) {
    out.inputs.haveBase = true;
    for (const SourceTensor &t : base->tensors())
      out.inputs.base.push_back(t.meta);
  }
  out.options = options.bind;
  auto torchDist = writesTorchDist(options, input, options.bind.to);
  if (!torchDist)
    return torchDist.takeError();
  if (*torchDist)
    out.options.storageLayout = "torch_dist";
  if (input.provenance)
    out.inputs.rowGroups = input.provenance->fp8RowGroups;
  // A checkpoint this tool wrote says which variants it was written with; going back
  // prefers the same ones.
  if (input.provenance && input.provenance->to == options.bind.from)
    out.options.recorded = input.provenance->choices;
  out.plan = compilePlan(*out.rulebook, out.rulebookPath, out.inputs, out.options, diags);
  if (out.plan) {
    auto report = applyQuantPasses(*out.plan, options.quant);
    if (!report)
      return report.takeError();
    out.quant = std::move(*report);
    if (auto e = verifyPlanTypes(*out.plan))
      return e;
  }
  return out;
}

/// A plan read from JSON must describe the input it is run on.
static llvm::Error checkPlanInputs(const Plan &plan, const TensorSource &input) {
  for (const TensorMeta &t : expandQuantized(plan.inputs)) {
    const SourceTensor *s = input.find(t.name);
    if (!s)
      return error("the plan reads '" + t.name + "', which the input does not have");
    if (s->meta.dtype != t.dtype || s->meta.shape != t.shape)
      return error("the plan expects '" + t.name + "' as " + dtypeName(t.dtype).data() + " " + formatShape(t.shape) +
                   " but the input has " + dtypeName(s->meta.dtype).data() + " " + formatShape(s->meta.shape));
  }
  return llvm::Error::success();
}

static llvm::Error writeStash(const std::vector<std::string> &names, const TensorSource &input, TensorSink &main) {
  // A kept-aside quantized weight keeps every part.
  std::vector<TensorMeta> metas;
  std::vector<TensorMeta> logical = groupQuantized(OpenedCheckpoint::metasOf(input));
  for (const std::string &name : names)
    for (const TensorMeta &t : logical)
      if (t.name == name)
        for (const TensorMeta &part : expandQuantized(t))
          metas.push_back(part);
  WriteOptions options;
  options.outDir = main.stagingDir() + "/" + kStashDir.str();
  auto writer = CheckpointWriter::create(metas, options);
  if (!writer)
    return writer.takeError();
  for (size_t i = 0; i < metas.size(); ++i) {
    auto bytes = input.read(*input.find(metas[i].name));
    if (!bytes)
      return bytes.takeError();
    if (auto e = (*writer)->write(i, bytes->bytes()))
      return e;
  }
  return (*writer)->finish();
}

/// A configuration file whose module lists were renamed: verbatim as the input's provenance
/// recorded it when that is the same JSON (a way back), else as nlohmann writes it.
static std::string renamedFileText(const OpenedCheckpoint &input, llvm::StringRef file, const json &renamed) {
  if (input.provenance) {
    auto original = input.provenance->originalFiles.find(file.str());
    if (original != input.provenance->originalFiles.end() &&
        json::parse(original->second, nullptr, /*allow_exceptions=*/false) == renamed)
      return original->second;
  }
  return renamed.dump(2) + "\n";
}

/// The quantization files of the output: kept byte for byte when the run leaves the weights'
/// formats and module names alone, rewritten when it quantizes, dequantizes or renames them.
/// `originals` receives the text of each file whose module lists were renamed.
static llvm::Error declareQuantization(const OpenedCheckpoint &input, const Plan &plan, const QuantPassReport &report,
                                       const QuantPassOptions &options, TensorSink &writer,
                                       std::map<std::string, std::string> &originals) {
  std::string hfQuantPath = input.dir + "/hf_quant_config.json";
  json inputHfQuant;
  if (llvm::sys::fs::exists(hfQuantPath)) {
    auto j = readJsonFile(hfQuantPath);
    if (!j)
      return j.takeError();
    inputHfQuant = std::move(*j);
  }
  bool changed = report.quantized || report.dequantized || report.renamed;
  if (!changed) {
    // Same formats; a new convention still renames the modules the lists leave unquantized.
    auto keepOrRename = [&](const std::string &file, const std::string &path, const json &in) -> llvm::Error {
      if (in.is_null())
        return llvm::Error::success();
      auto bytes = llvm::MemoryBuffer::getFile(path);
      if (!bytes)
        return error(path + ": " + bytes.getError().message());
      json renamed = in;
      if (renameExclusionLists(renamed, plan)) {
        originals[file] = (*bytes)->getBuffer().str();
        writer.addFile(file, renamedFileText(input, file, renamed));
      } else if (file != "config.json") {
        writer.addFile(file, (*bytes)->getBuffer().str());
      }
      return llvm::Error::success();
    };
    if (auto e = keepOrRename("config.json", input.configPath, input.config))
      return e;
    return keepOrRename("hf_quant_config.json", hfQuantPath, inputHfQuant);
  }
  // What the output holds now: the format of its quantized weights, if any is left.
  std::optional<QuantType> format;
  for (const TensorMeta &t : plan.outputs)
    if (t.quant.quantized()) {
      format = t.quant;
      format->inputScale = false;
      format->rowGroups.clear();
      break;
    }
  json config = input.config;
  if (config.is_object())
    config.erase("quantization_config");
  if (format) {
    QuantDeclaration d{*format, report.quantized ? report.excludedModules
                                                 : renameExcludedModules(declaredExclusions(input.config, inputHfQuant), plan)};
    if (config.is_object())
      config["quantization_config"] = quantizationConfig(d);
    if (auto hf = hfQuantConfig(d))
      writer.addFile("hf_quant_config.json", hf->dump(2) + "\n");
  }
  if (!config.is_null())
    writer.addFile("config.json", config.dump(2) + "\n");
  return llvm::Error::success();
}

llvm::Expected<ConvertSummary> convert(llvm::StringRef inputPath, llvm::StringRef output, const ConvertOptions &options,
                                       SourceManager &sources, DiagnosticEngine &diags) {
  auto start = std::chrono::steady_clock::now();
  auto input = openCheckpoint(inputPath, options.hfConfig);
  if (!input)
    return input.takeError();
  std::unique_ptr<TensorSource> base;
  if (!options.hfBase.empty()) {
    auto b = openSafetensors(options.hfBase);
    if (!b)
      return b.takeError();
    base = std::move(*b);
  }

  ConvertSummary summary;
  if (!options.planPath.empty()) {
    auto j = readJsonFile(options.planPath);
    if (!j)
      return j.takeError();
    auto plan = planFromJson(*j);
    if (!plan)
      return plan.takeError();
    if (auto e = verifyPlanTypes(*plan))
      return e;
    if (auto e = checkPlanInputs(*plan, *input->tensors))
      return e;
    summary.plan = std::move(*plan);
  } else if (options.identity) {
    summary.plan = identityPlan(input->metas(), options.bind.from,
                                input->provenance ? input->provenance->fp8RowGroups : RowGroupHints{});
    auto report = applyQuantPasses(summary.plan, options.quant);
    if (!report)
      return report.takeError();
    summary.quant = std::move(*report);
    if (auto e = verifyPlanTypes(summary.plan))
      return e;
  } else {
    auto compiled = compileFor(*input, options, base.get(), sources, diags);
    if (!compiled)
      return compiled.takeError();
    if (!compiled->plan)
      return error("the rulebook does not compile for this checkpoint (see the errors above)");
    summary.plan = std::move(*compiled->plan);
    summary.quant = std::move(compiled->quant);
  }
  summary.notConverted = input->notConverted;
  const Plan &plan = summary.plan;
  for (const TensorMeta &t : plan.inputs)
    summary.inputBytes += t.byteSize();

  auto torchDist = writesTorchDist(options, *input, plan.to);
  if (!torchDist)
    return torchDist.takeError();
  // Several processes: each runs its share of the steps into the same files.
  OutputShare share = options.share ? *options.share : shareFromLauncher().value_or(OutputShare{});
  std::vector<bool> shareSteps, shareTensors;
  if (share.active()) {
    shareSteps = stepsOfShare(plan, share);
    shareTensors = storedBySteps(plan, shareSteps);
  }
  summary.share = share;
  llvm::Expected<std::unique_ptr<TensorSink>> writer = [&]() -> llvm::Expected<std::unique_ptr<TensorSink>> {
    if (*torchDist) {
      mcore::TorchDistWriteOptions td;
      td.force = options.write.force;
      td.copyFilesFrom = input->dir;
      td.iteration = options.iteration;
      td.share = share;
      td.shareTensors = shareTensors;
      return mcore::TorchDistSink::create(expandQuantized(plan.outputs), output.str(), std::move(td));
    }
    WriteOptions write = options.write;
    write.outDir = output.str();
    write.copyFilesFrom = input->dir;
    write.share = share;
    write.shareTensors = shareTensors;
    return CheckpointWriter::create(expandQuantized(plan.outputs), write);
  }();
  if (!writer)
    return writer.takeError();

  ExecSources execSources{input->tensors.get(), input->stash.get(), base.get()};
  ExecProgress progress;
  ExecOptions exec = options.exec;
  if (share.active())
    exec.steps = &shareSteps;
  if (!exec.progress)
    exec.progress = &progress;
  auto kernels = openKernels(options.device, plan);
  if (!kernels)
    return kernels.takeError();
  if (*kernels)
    exec.kernels = kernels->get();
  ProgressDisplay display(*exec.progress);
  auto result = executePlan(plan, execSources, **writer, exec);
  display.stop();
  if (!result)
    return result.takeError();
  summary.exec = std::move(*result);
  if (*kernels) {
    summary.device = (*kernels)->name();
    summary.kernels = (*kernels)->stats();
  }
  if (!summary.exec.stash.empty() && share.active())
    return error("'" + summary.exec.stash.front() +
                 "' differs from the tensor that would restore it, and a partitioned run cannot keep it aside; "
                 "convert in one process");
  if (!summary.exec.stash.empty())
    if (auto e = writeStash(summary.exec.stash, *input->tensors, **writer))
      return e;

  // A config given on the command line (a Megatron checkpoint has none) goes with the output
  // as if it had been found beside the input.
  if (!options.hfConfig.empty()) {
    auto bytes = llvm::MemoryBuffer::getFile(options.hfConfig);
    if (!bytes)
      return error(options.hfConfig + ": " + bytes.getError().message());
    (*writer)->addFile("config.json", (*bytes)->getBuffer().str());
  }
  std::map<std::string, std::string> originalFiles;
  if (auto e = declareQuantization(*input, plan, summary.quant, options.quant, **writer, originalFiles))
    return e;

  // A conversion between conventions records how it was made; a plan that keeps every name
  // (quantize, dequantize in place) leaves the input's record as it was.
  if (!options.identity) {
    json provenance;
    provenance["family"] = plan.family;
    provenance["from"] = plan.from;
    provenance["to"] = plan.to;
    provenance["choices"] = json::array();
    for (const ChoiceRecord &c : plan.choices)
      provenance["choices"].push_back({{"choice", c.choice}, {"where", c.where}, {"variant", c.variant}});
    if (!summary.exec.stash.empty())
      provenance["kept_aside"] = summary.exec.stash;
    for (const TensorMeta &t : plan.outputs)
      if (!t.quant.rowGroups.empty())
        provenance["fp8_row_groups"][t.name] = t.quant.rowGroups;
    if (!originalFiles.empty())
      provenance["original_files"] = originalFiles;
    (*writer)->addFile(kProvenanceFile.str(), provenance.dump(2) + "\n");
  } else if (input->provenance) {
    std::string path = input->dir + "/" + kProvenanceFile.str();
    auto bytes = llvm::MemoryBuffer::getFile(path);
    if (!bytes)
      return error(path + ": " + bytes.getError().message());
    (*writer)->addFile(kProvenanceFile.str(), (*bytes)->getBuffer().str());
  }
  if (auto e = (*writer)->finish())
    return e;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

} // namespace ckptmap
