#include "compiler/diag/SourceManager.h"

#include "llvm/Support/MemoryBuffer.h"

namespace ckptmap {

llvm::Expected<uint32_t> SourceManager::load(llvm::StringRef path) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer)
    return llvm::createStringError(buffer.getError(), "cannot read rulebook '%s': %s",
                                   path.str().c_str(), buffer.getError().message().c_str());
  return add(path.str(), (*buffer)->getBuffer().str());
}

uint32_t SourceManager::add(std::string name, std::string text) {
  auto file = std::make_unique<File>();
  file->name = std::move(name);
  file->text = std::move(text);
  file->lineStarts.push_back(0);
  for (uint32_t i = 0; i < file->text.size(); ++i)
    if (file->text[i] == '\n')
      file->lineStarts.push_back(i + 1);
  files_.push_back(std::move(file));
  return uint32_t(files_.size());
}

llvm::StringRef SourceManager::line(uint32_t file, uint32_t line) const {
  if (file == 0 || file > files_.size())
    return {};
  const File &f = *files_[file - 1];
  if (line == 0 || line > f.lineStarts.size())
    return {};
  llvm::StringRef rest = llvm::StringRef(f.text).substr(f.lineStarts[line - 1]);
  return rest.take_until([](char c) { return c == '\n' || c == '\r'; });
}

std::string SourceManager::format(SourceLoc loc) const {
  if (!loc.valid())
    return "<unknown>";
  return name(loc.file).str() + ":" + std::to_string(loc.line) + ":" + std::to_string(loc.col);
}

SourceLoc SourceManager::parse(llvm::StringRef text) const {
  auto [rest, col] = text.rsplit(':');
  auto [path, line] = rest.rsplit(':');
  SourceLoc loc;
  if (line.getAsInteger(10, loc.line) || col.getAsInteger(10, loc.col))
    return {};
  for (uint32_t i = 0; i < files_.size(); ++i)
    if (files_[i]->name == path)
      loc.file = i + 1;
  return loc;
}

} // namespace ckptmap
