// Conversion as the command line runs it: open the input (whatever its format), find and
// compile the rulebook, execute the plan into an atomic output, and leave beside the tensors
// what the way back needs (the choices made, the tensors kept aside).
#pragma once

#include "compiler/Compiler.h"
#include "compiler/plan/QuantPasses.h"
#include "runtime/exec/Device.h"
#include "runtime/exec/Interpreter.h"
#include "runtime/io/CheckpointWriter.h"
#include "runtime/mcore/Format.h"

#include <map>
#include <memory>
#include <optional>

namespace ckptmap {

/// Written into every output: which rulebook and direction made it, and which variant each
/// choice took, so converting back needs no options and restores the same layout.
inline constexpr llvm::StringLiteral kProvenanceFile = "ckptmap.json";
/// Subdirectory holding dropped tensors that differed from the copy meant to restore them.
inline constexpr llvm::StringLiteral kStashDir = "ckptmap-stash";

struct Provenance {
  std::string family, from, to;
  std::vector<ChoiceRecord> choices;
  RowGroupHints fp8RowGroups; ///< fused FP8 block weights whose grid keeps one part per row group
  /// Configuration files whose module lists the run renamed, as they were before: the way back
  /// writes them verbatim when its renaming gives the same JSON (key order, indentation and
  /// number spelling are the producer's, not nlohmann's).
  std::map<std::string, std::string> originalFiles;
};

/// A checkpoint opened as the input of a conversion.
using mcore::CheckpointFormat;

struct OpenedCheckpoint {
  std::string path;
  CheckpointFormat format = CheckpointFormat::Safetensors;
  /// The directory holding the non-tensor files (config.json, ckptmap.json).
  std::string dir;
  /// What the input holds that no conversion reads: training state, non-tensor entries.
  std::vector<std::string> notConverted;
  std::unique_ptr<TensorSource> tensors;
  nlohmann::json config;          ///< null when there is no config.json
  std::string configPath;
  std::optional<Provenance> provenance;
  std::unique_ptr<TensorSource> stash;

  std::vector<TensorMeta> metas() const;
  static std::vector<TensorMeta> metasOf(const TensorSource &source);
};

/// Opens a checkpoint directory or file. `configOverride` (e.g. --hf-config) replaces the
/// config.json found beside the tensors.
llvm::Expected<OpenedCheckpoint> openCheckpoint(llvm::StringRef path, llvm::StringRef configOverride = "");

/// Directories searched for rulebooks named by family or chosen by model_type: $CKPTMAP_RULEBOOKS,
/// then the rulebooks/ shipped with this build.
std::vector<std::string> rulebookSearchPath();

/// A rulebook argument: a path, a family name ("deepseek_v3"), or empty to pick the shipped
/// rulebook whose model_types list `config`'s model_type.
llvm::Expected<std::string> resolveRulebook(llvm::StringRef arg, const nlohmann::json &config);

struct ConvertOptions {
  std::string rulebook; ///< as resolveRulebook takes it
  std::string planPath; ///< run a plan from JSON instead of compiling
  BindOptions bind;     ///< from/to, -D, --variant
  std::string hfConfig; ///< --hf-config
  std::string hfBase;   ///< --hf-base
  QuantPassOptions quant; ///< --quantize, --exclude, --dequantize, --quant-format
  bool identity = false;  ///< keep every name (`ckptmap quantize`): no rulebook
  /// --mcore-format torch_dist|safetensors for an MCore output; empty: torch_dist, except
  /// that an MCore safetensors input stays safetensors.
  std::string mcoreFormat;
  /// --iteration N: a torch_dist output in Megatron's save layout (iter_{N:07d}/ and
  /// latest_checkpointed_iteration.txt).
  std::optional<int64_t> iteration;
  /// --partition I/N: this process's share of the output; unset: the launcher's ranks, if any.
  std::optional<OutputShare> share;
  WriteOptions write;
  ExecOptions exec;
  DeviceOptions device; ///< --device, --max-gpu-memory
};

struct ConvertSummary {
  Plan plan;
  QuantPassReport quant;
  ExecResult exec;
  double seconds = 0;
  uint64_t inputBytes = 0;
  std::string device = "cpu"; ///< the backend the compute ops ran on
  std::vector<std::string> notConverted; ///< the input's training state and other non-tensor entries
  OutputShare share;                     ///< the part of the output this process wrote
  BackendStats kernels;
};

/// Compiles (or loads) and runs a plan. Diagnostics of the compile go to `diags`; I/O and
/// execution errors come back as the error. Nothing is left at the output on failure.
llvm::Expected<ConvertSummary> convert(llvm::StringRef input, llvm::StringRef output, const ConvertOptions &options,
                                       SourceManager &sources, DiagnosticEngine &diags);

/// Whether an output of convention `to` is written as torch_dist (see mcoreFormat); an
/// option that does not apply to that output is an error.
llvm::Expected<bool> writesTorchDist(const ConvertOptions &options, const OpenedCheckpoint &input, llvm::StringRef to);

/// The compile half of convert(), for check/compile/explain.
struct CompiledPlan {
  std::unique_ptr<CheckedRulebook> rulebook;
  std::string rulebookPath;
  CompileInputs inputs;
  BindOptions options;
  std::optional<Plan> plan;
  QuantPassReport quant;
};
llvm::Expected<CompiledPlan> compileFor(const OpenedCheckpoint &input, const ConvertOptions &options,
                                        const TensorSource *base, SourceManager &sources, DiagnosticEngine &diags);

} // namespace ckptmap
