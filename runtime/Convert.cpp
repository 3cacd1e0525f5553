#include "runtime/Convert.h"

#include "compiler/parse/Parser.h"
#include "compiler/plan/Shapes.h"
#include "runtime/exec/Progress.h"
#include "runtime/io/Json.h"
#include "runtime/io/Safetensors.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"

#include <chrono>

namespace ckptmap {

using json = nlohmann::json;

static llvm::Error error(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message.str().c_str());
}

std::vector<TensorMeta> OpenedCheckpoint::metas() const {
  std::vector<TensorMeta> out;
  for (const SourceTensor &t : tensors->tensors())
    out.push_back(t.meta);
  return out;
}

static llvm::Expected<Provenance> readProvenance(llvm::StringRef path) {
  auto j = readJsonFile(path);
  if (!j)
    return j.takeError();
  Provenance p;
  p.family = j->value("family", "");
  p.from = j->value("from", "");
  p.to = j->value("to", "");
  if (j->contains("choices") && (*j)["choices"].is_array())
    for (const json &c : (*j)["choices"])
      if (c.is_object())
        p.choices.push_back(ChoiceRecord{c.value("choice", ""), c.value("where", ""), c.value("variant", ""), "", {}});
  return p;
}

llvm::Expected<OpenedCheckpoint> openCheckpoint(llvm::StringRef path, llvm::StringRef configOverride) {
  OpenedCheckpoint out;
  out.path = path.str();
  if (!llvm::sys::fs::exists(path))
    return error("'" + path + "' does not exist");
  auto tensors = openSafetensors(path);
  if (!tensors)
    return tensors.takeError();
  out.tensors = std::move(*tensors);
  std::string dir = llvm::sys::fs::is_directory(path) ? path.str() : llvm::sys::path::parent_path(path).str();
  if (dir.empty())
    dir = ".";

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
  if (type.empty())
    return error("no rulebook given and the checkpoint's config.json names no model_type; pass RULEBOOK");
  std::vector<std::string> matches;
  for (const std::string &dir : rulebookSearchPath()) {
    std::error_code ec;
    for (llvm::sys::fs::directory_iterator it(dir, ec), end; it != end && !ec; it.increment(ec)) {
      if (llvm::sys::path::extension(it->path()) != ".rules")
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
  // A checkpoint this tool wrote says which variants it was written with; going back
  // prefers the same ones.
  if (input.provenance && input.provenance->to == options.bind.from)
    out.options.recorded = input.provenance->choices;
  out.plan = compilePlan(*out.rulebook, out.rulebookPath, out.inputs, out.options, diags);
  return out;
}

/// A plan read from JSON must describe the input it is run on.
static llvm::Error checkPlanInputs(const Plan &plan, const TensorSource &input) {
  for (const TensorMeta &t : plan.inputs) {
    const SourceTensor *s = input.find(t.name);
    if (!s)
      return error("the plan reads '" + t.name + "', which the input does not have");
    if (s->meta.dtype != t.dtype || s->meta.shape != t.shape)
      return error("the plan expects '" + t.name + "' as " + dtypeName(t.dtype).data() + " " + formatShape(t.shape) +
                   " but the input has " + dtypeName(s->meta.dtype).data() + " " + formatShape(s->meta.shape));
  }
  return llvm::Error::success();
}

static llvm::Error writeStash(const std::vector<std::string> &names, const TensorSource &input, CheckpointWriter &main) {
  std::vector<TensorMeta> metas;
  for (const std::string &name : names)
    metas.push_back(input.find(name)->meta);
  WriteOptions options;
  options.outDir = main.tempDir() + "/" + kStashDir.str();
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
  } else {
    auto compiled = compileFor(*input, options, base.get(), sources, diags);
    if (!compiled)
      return compiled.takeError();
    if (!compiled->plan)
      return error("the rulebook does not compile for this checkpoint (see the errors above)");
    summary.plan = std::move(*compiled->plan);
  }
  const Plan &plan = summary.plan;
  for (const TensorMeta &t : plan.inputs)
    summary.inputBytes += t.byteSize();

  WriteOptions write = options.write;
  write.outDir = output.str();
  write.copyFilesFrom = llvm::sys::fs::is_directory(inputPath) ? inputPath.str() : llvm::sys::path::parent_path(inputPath).str();
  auto writer = CheckpointWriter::create(plan.outputs, write);
  if (!writer)
    return writer.takeError();

  ExecSources execSources{input->tensors.get(), input->stash.get(), base.get()};
  ExecProgress progress;
  ExecOptions exec = options.exec;
  if (!exec.progress)
    exec.progress = &progress;
  ProgressDisplay display(*exec.progress);
  auto result = executePlan(plan, execSources, **writer, exec);
  display.stop();
  if (!result)
    return result.takeError();
  summary.exec = std::move(*result);
  if (!summary.exec.stash.empty())
    if (auto e = writeStash(summary.exec.stash, *input->tensors, **writer))
      return e;

  json provenance;
  provenance["family"] = plan.family;
  provenance["from"] = plan.from;
  provenance["to"] = plan.to;
  provenance["choices"] = json::array();
  for (const ChoiceRecord &c : plan.choices)
    provenance["choices"].push_back({{"choice", c.choice}, {"where", c.where}, {"variant", c.variant}});
  if (!summary.exec.stash.empty())
    provenance["kept_aside"] = summary.exec.stash;
  (*writer)->addFile(kProvenanceFile.str(), provenance.dump(2) + "\n");
  if (auto e = (*writer)->finish())
    return e;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

} // namespace ckptmap
