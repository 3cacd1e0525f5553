// Helpers shared by the end-to-end tests: fixture paths, temporary directories, compiling a
// shipped rulebook against a checkpoint (or a synthetic header), converting, and comparing
// checkpoints and files.
#pragma once

#include "compiler/Compiler.h"
#include "runtime/Convert.h"
#include "runtime/io/Inspect.h"
#include "runtime/io/Safetensors.h"
#include "runtime/io/TempDirs.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <sys/wait.h>

namespace ckptmap::e2e {

using json = nlohmann::json;
namespace fs = std::filesystem;

/// The families whose hub fixtures the tests convert.
inline const std::vector<std::string> &families() {
  static const std::vector<std::string> names = {"nemotron_h", "qwen3_5_moe", "deepseek_v3", "minimax_m3"};
  return names;
}

/// Families whose HF checkpoint holds a vision tower MCore does not.
inline bool isVl(const std::string &family) { return family == "qwen3_5_moe" || family == "minimax_m3"; }

inline std::string sourceDir() { return CKPTMAP_SOURCE_DIR; }
inline std::string fixture(const std::string &relative) { return sourceDir() + "/tests/fixtures/" + relative; }
inline std::string hubDir(const std::string &family) { return fixture("hf/" + family + "/hub"); }
inline std::string inmemFile(const std::string &family) { return fixture("hf/" + family + "/inmem.safetensors"); }
inline std::string rulebookFile(const std::string &family) { return sourceDir() + "/rulebooks/" + family + ".rules"; }
inline std::string ckptmapBinary() { return std::string(CKPTMAP_BINARY_DIR) + "/ckptmap"; }

/// A fresh directory, removed with its contents at scope exit.
class TempDir {
public:
  TempDir() {
    const char *base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/ckptmap-e2e-XXXXXX";
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;

  const std::string &path() const { return path_; }
  std::string operator/(const std::string &name) const { return path_ + "/" + name; }

private:
  std::string path_;
};

inline std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot read " << path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void writeFile(const std::string &path, const std::string &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  REQUIRE_MESSAGE(out.good(), "cannot write " << path);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  REQUIRE(out.good());
}

inline void copyFile(const std::string &from, const std::string &to) { writeFile(to, readFile(from)); }

inline json readJson(const std::string &path) { return json::parse(readFile(path)); }

template <class T> T requireValue(llvm::Expected<T> value) {
  if (!value)
    FAIL(llvm::toString(value.takeError()));
  return std::move(*value);
}

inline void requireOk(llvm::Error e) {
  if (e)
    FAIL(llvm::toString(std::move(e)));
}

template <class T> std::string errorText(llvm::Expected<T> value) {
  REQUIRE_MESSAGE(!value, "expected an error");
  return llvm::toString(value.takeError());
}

/// Names of the regular files directly in `dir`, sorted.
inline std::vector<std::string> listFiles(const std::string &dir) {
  std::vector<std::string> out;
  for (const auto &entry : fs::directory_iterator(dir))
    if (entry.is_regular_file())
      out.push_back(entry.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

/// The tensors of a checkpoint in any format ckptmap reads.
inline std::unique_ptr<TensorSource> openTensors(const std::string &path) {
  auto input = requireValue(openCheckpoint(path));
  return std::move(input.tensors);
}

/// Every tensor of a checkpoint (file or directory), by name.
inline std::map<std::string, TensorMeta> tensorsOf(const TensorSource &source) {
  std::map<std::string, TensorMeta> out;
  for (const SourceTensor &t : source.tensors())
    out[t.meta.name] = t.meta;
  return out;
}

inline std::map<std::string, TensorMeta> tensorsOf(const std::string &path) {
  auto input = requireValue(openCheckpoint(path));
  return tensorsOf(*input.tensors);
}

inline std::map<std::string, TensorMeta> tensorsOf(const std::vector<TensorMeta> &metas) {
  std::map<std::string, TensorMeta> out;
  for (const TensorMeta &t : metas)
    out[t.name] = t;
  return out;
}

/// Compares two checkpoints tensor by tensor (names, dtypes, shapes, bytes); the text of the
/// differences when they are not the same.
inline DiffResult diffPaths(const std::string &a, const std::string &b, bool bytes = true) {
  auto sa = openTensors(a);
  auto sb = openTensors(b);
  DiffOptions options;
  options.compareBytes = bytes;
  return requireValue(diffCheckpoints(*sa, *sb, options));
}

inline std::string diffText(const DiffResult &diff) {
  std::string text;
  llvm::raw_string_ostream os(text);
  printDiff(os, diff);
  return os.str();
}

#define E2E_REQUIRE_SAME(a, b)                                                                                         \
  do {                                                                                                                 \
    auto e2eDiff_ = ::ckptmap::e2e::diffPaths(a, b);                                                                   \
    REQUIRE_MESSAGE(e2eDiff_.same(), ::ckptmap::e2e::diffText(e2eDiff_));                                              \
    REQUIRE(e2eDiff_.identical > 0);                                                                                   \
  } while (0)

/// A rulebook compiled against a checkpoint on disk, as `check` does it.
struct Compiled {
  SourceManager sources;
  DiagnosticEngine diags{sources};
  std::optional<OpenedCheckpoint> input;
  std::unique_ptr<TensorSource> base;
  CompiledPlan compiled;

  const Plan &plan() const { return *compiled.plan; }
  std::string errors() const { return diags.render(); }
};

inline ConvertOptions options(const std::string &family, const std::string &from, const std::string &to) {
  ConvertOptions o;
  o.rulebook = rulebookFile(family);
  o.bind.from = from;
  o.bind.to = to;
  // MCore-named safetensors, whose names the tests check; McoreFormatTest covers torch_dist.
  if (to == "mcore")
    o.mcoreFormat = "safetensors";
  return o;
}

/// Compiles; REQUIREs a plan (diagnostics in the failure message).
inline std::unique_ptr<Compiled> compileCheckpoint(const std::string &path, const ConvertOptions &o) {
  auto c = std::make_unique<Compiled>();
  c->input = requireValue(openCheckpoint(path, o.hfConfig));
  if (!o.hfBase.empty())
    c->base = requireValue(openSafetensors(o.hfBase));
  c->compiled = requireValue(compileFor(*c->input, o, c->base.get(), c->sources, c->diags));
  REQUIRE_MESSAGE(c->compiled.plan.has_value(), c->errors());
  return c;
}

/// The way back from a compiled plan, from its output header alone.
inline RoundTrip roundTrip(Compiled &c) {
  DiagnosticEngine diags(c.sources);
  RoundTrip trip = checkRoundTrip(*c.compiled.rulebook, c.compiled.rulebookPath, c.plan(), c.compiled.inputs,
                                  c.compiled.options, diags);
  REQUIRE_MESSAGE(trip.reverse.has_value(), diags.render());
  return trip;
}

inline std::string joinLines(const std::vector<std::string> &lines) {
  std::string out;
  for (const std::string &l : lines)
    out += l + "\n";
  return out;
}

/// Converts; REQUIREs success.
inline ConvertSummary convertOk(const std::string &in, const std::string &out, ConvertOptions o) {
  SourceManager sources;
  DiagnosticEngine diags(sources);
  auto summary = convert(in, out, o, sources, diags);
  if (!summary)
    FAIL(llvm::toString(summary.takeError()) << "\n" << diags.render());
  return std::move(*summary);
}

/// The bytes of one tensor of a checkpoint.
inline std::vector<uint8_t> bytesOf(const TensorSource &source, const std::string &name) {
  const SourceTensor *t = source.find(name);
  REQUIRE_MESSAGE(t != nullptr, "no tensor " << name);
  auto b = requireValue(source.read(*t));
  return std::vector<uint8_t>(b.bytes().begin(), b.bytes().end());
}

/// What `ckptmap quantize` does: every name kept, the eligible weights quantized to `kind`.
inline ConvertOptions quantizeOptions(QuantKind kind, QuantNaming naming = QuantNaming::ModelOpt) {
  ConvertOptions o;
  o.identity = true;
  o.bind.from = o.bind.to = "hf";
  o.quant.quantize.kind = kind;
  o.quant.quantize.naming = naming;
  o.write.maxShardSize = 200'000;
  return o;
}

/// Quantizes a checkpoint into `out` (REQUIREs success) and returns the run's summary.
inline ConvertSummary quantizeInto(const std::string &in, const std::string &out, QuantKind kind,
                                   QuantNaming naming = QuantNaming::ModelOpt) {
  return convertOk(in, out, quantizeOptions(kind, naming));
}

/// A directory holding one checkpoint file as model.safetensors and the config files of
/// `configDir`, so it opens like a checkpoint directory (the in-memory fixture has its config
/// in hub/).
inline std::string stageSingleFile(const TempDir &tmp, const std::string &name, const std::string &file,
                                   const std::string &configDir) {
  std::string dir = tmp / name;
  fs::create_directories(dir);
  copyFile(file, dir + "/model.safetensors");
  for (const char *f : {"config.json", "generation_config.json"})
    copyFile(configDir + "/" + f, dir + "/" + f);
  return dir;
}

/// One tensor of a checkpoint written by hand: its name, dtype and shape, and the source
/// tensors whose bytes, one after another, make it (one for a rename, several for a stack).
struct HandTensor {
  TensorMeta meta;
  std::vector<std::string> parts;
  std::optional<std::vector<uint8_t>> bytes; ///< instead of the parts' bytes
};

/// Writes `tensors` (bytes taken from `sourcePath`) to `outDir`, with `files` copied from `filesFrom`.
inline void writeByHand(const std::string &sourcePath, const std::string &outDir, const std::vector<HandTensor> &tensors,
                        const std::vector<std::string> &files, const std::string &filesFrom) {
  auto source = requireValue(openSafetensors(sourcePath));
  std::vector<TensorMeta> metas;
  for (const HandTensor &t : tensors)
    metas.push_back(t.meta);
  WriteOptions w;
  w.outDir = outDir;
  w.maxShardSize = 200'000;
  auto writer = requireValue(CheckpointWriter::create(metas, w));
  for (size_t i = 0; i < tensors.size(); ++i) {
    std::vector<uint8_t> bytes = tensors[i].bytes.value_or(std::vector<uint8_t>{});
    for (const std::string &part : tensors[i].parts) {
      const SourceTensor *s = source->find(part);
      REQUIRE_MESSAGE(s != nullptr, "no tensor " << part << " in " << sourcePath);
      auto b = requireValue(source->read(*s));
      bytes.insert(bytes.end(), b.bytes().begin(), b.bytes().end());
    }
    REQUIRE(bytes.size() == tensors[i].meta.byteSize());
    requireOk(writer->write(i, bytes));
  }
  for (const std::string &f : files)
    writer->addFile(f, readFile(filesFrom + "/" + f));
  requireOk(writer->finish());
}

/// Replaces every occurrence of `from` in `s` with `to`.
inline std::string replaceAll(std::string s, const std::string &from, const std::string &to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
    s.replace(pos, from.size(), to);
  return s;
}

inline bool startsWith(const std::string &s, const std::string &prefix) { return s.rfind(prefix, 0) == 0; }
inline bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// Runs the ckptmap binary with `args` (shell words), output to `log`; its exit code.
inline int runCli(const std::string &args, const std::string &log) {
  std::string command = "'" + ckptmapBinary() + "' " + args + " >'" + log + "' 2>&1";
  int status = std::system(command.c_str());
  REQUIRE(status != -1);
  REQUIRE(WIFEXITED(status));
  return WEXITSTATUS(status);
}

inline std::string q(const std::string &path) { return "'" + path + "'"; }

} // namespace ckptmap::e2e
