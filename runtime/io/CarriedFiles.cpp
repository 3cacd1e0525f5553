#include "runtime/io/CarriedFiles.h"

#include "runtime/io/IoError.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <cerrno>
#include <dirent.h>
#include <sys/stat.h>

namespace ckptmap {

bool isCarriedFile(llvm::StringRef name) {
  static constexpr llvm::StringLiteral kExact[] = {
      "config.json",       "generation_config.json",   "special_tokens_map.json",
      "added_tokens.json", "vocab.json",               "vocab.txt",
      "merges.txt",        "preprocessor_config.json", "processor_config.json",
      "video_preprocessor_config.json"};
  for (llvm::StringRef e : kExact)
    if (name == e)
      return true;
  if (name.startswith("tokenizer") || name.startswith("chat_template") ||
      name.endswith(".tiktoken"))
    return true;
  if (name.endswith(".py"))
    return name.startswith("configuration_") || name.startswith("modeling_") ||
           name.startswith("tokenization_");
  return false;
}

llvm::Expected<std::vector<std::string>> listCarriedFiles(llvm::StringRef dir) {
  std::string d = dir.str();
  DIR *handle = ::opendir(d.c_str());
  if (!handle)
    return systemError(dir, "list", errno);
  std::vector<std::string> names;
  while (struct dirent *e = ::readdir(handle)) {
    llvm::StringRef name(e->d_name);
    if (!isCarriedFile(name))
      continue;
    llvm::SmallString<256> path(dir);
    llvm::sys::path::append(path, name);
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode))
      names.push_back(name.str());
  }
  ::closedir(handle);
  std::sort(names.begin(), names.end());
  return names;
}

} // namespace ckptmap
