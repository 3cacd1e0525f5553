// An output directory built under a temporary name beside its destination and renamed into
// place only when complete: a failure, a destructor run before commit(), or a
// SIGINT/SIGTERM/SIGHUP leaves nothing at the destination (and no temporary behind). Every
// checkpoint writer builds its output in one, whatever the format.
#pragma once

#include "runtime/io/OutputShare.h"
#include "runtime/io/TempDirs.h"

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <map>
#include <memory>
#include <string>

namespace ckptmap {

class OutputDir {
public:
  struct Options {
    /// Replace an existing destination instead of refusing.
    bool force = false;
    /// Directory whose carried files (see isCarriedFile) are copied in at commit; empty for none.
    std::string copyFilesFrom;
    /// Subdirectory of the output the side files go to ("" for the top).
    std::string filesSubdir;
    /// When several processes write the output: which part this one writes.
    OutputShare share;
  };

  /// Checks that `destination` can be written (absent, or `force`; its parent writable) and
  /// creates the temporary directory.
  static llvm::Expected<std::unique_ptr<OutputDir>> create(llvm::StringRef destination, Options options);
  ~OutputDir();
  OutputDir(const OutputDir &) = delete;
  OutputDir &operator=(const OutputDir &) = delete;

  /// The destination, absolute.
  const std::string &destination() const { return destination_; }
  /// Where to write until commit().
  const std::string &path() const { return temp_; }

  /// Adds a side file, replacing a carried file of the same name. The name must be a plain
  /// file name; commit() reports a bad one.
  void addFile(std::string name, std::string contents);

  /// Writes the side files (carried, then added; none that `reserved` claims for the
  /// format's own files), syncs, and renames the output into place. Of a shared output, the
  /// finishing share first waits for the others' shareDone().
  llvm::Error commit(llvm::function_ref<bool(llvm::StringRef)> reserved);
  /// A share other than the finishing one: its files are written and synced; says so.
  llvm::Error shareDone();
  const OutputShare &share() const { return options_.share; }

private:
  OutputDir() = default;
  llvm::Error writeSideFiles(llvm::function_ref<bool(llvm::StringRef)> reserved);
  llvm::Error moveIntoPlace();
  llvm::Error awaitShares();
  std::string markerOf(unsigned share) const;

  Options options_;
  std::string destination_, temp_;
  TempDirRegistration registration_;
  std::map<std::string, std::string> files_;
  bool committed_ = false;
};

} // namespace ckptmap
