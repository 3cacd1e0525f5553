// Helpers shared by the runtime tests: temporary directories, file bytes, error text, and
// hand-made safetensors files.
#pragma once

#include "runtime/io/TempDirs.h"

#include "llvm/Support/Error.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace ckptmap::test {

inline std::string fixture(const std::string &relative) {
  return std::string(CKPTMAP_SOURCE_DIR) + "/tests/fixtures/" + relative;
}

/// A fresh directory, removed with its contents at scope exit.
class TempDir {
public:
  TempDir() {
    const char *base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/ckptmap-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() { llvm::consumeError(removeTree(path_)); }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;

  const std::string &path() const { return path_; }
  std::string operator/(const std::string &name) const { return path_ + "/" + name; }

private:
  std::string path_;
};

inline std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void writeFile(const std::string &path, const std::string &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  REQUIRE(out.good());
  out.write(bytes.data(), std::streamsize(bytes.size()));
  REQUIRE(out.good());
}

inline bool exists(const std::string &path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

/// The 8-byte little-endian length prefix for a header of `n` bytes.
inline std::string lengthPrefix(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[i] = char((n >> (8 * i)) & 0xff);
  return out;
}

/// A safetensors file: prefix, `header` verbatim, then `dataSize` bytes counting up.
inline std::string safetensorsBytes(const std::string &header, size_t dataSize) {
  std::string out = lengthPrefix(header.size()) + header;
  for (size_t i = 0; i < dataSize; ++i)
    out += char(i & 0xff);
  return out;
}

inline std::string errorText(llvm::Error e) {
  REQUIRE_MESSAGE(bool(e), "expected an error");
  return llvm::toString(std::move(e));
}

template <class T> std::string errorText(llvm::Expected<T> value) {
  REQUIRE_MESSAGE(!value, "expected an error");
  return llvm::toString(value.takeError());
}

/// Fails the test with the error's text when `e` holds one.
inline void requireOk(llvm::Error e) {
  if (e)
    FAIL(llvm::toString(std::move(e)));
}

template <class T> T requireValue(llvm::Expected<T> value) {
  if (!value)
    FAIL(llvm::toString(value.takeError()));
  return std::move(*value);
}

} // namespace ckptmap::test
