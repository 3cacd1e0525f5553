#include "runtime/io/IoError.h"

#include <cstring>

namespace ckptmap {

llvm::Error systemError(const llvm::Twine &path, const llvm::Twine &verb, int err) {
  // strerror_r's GNU variant may return a static string instead of filling the buffer.
  char buf[256];
  const char *text = strerror_r(err, buf, sizeof buf);
  return ioError(path + ": cannot " + verb + ": " + text);
}

} // namespace ckptmap
