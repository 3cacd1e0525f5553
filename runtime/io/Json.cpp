#include "runtime/io/Json.h"

#include "runtime/io/IoError.h"

#include "llvm/ADT/StringSet.h"

#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ckptmap {
namespace {

/// Tracks the open objects and arrays during a callback parse to spot repeated keys.
class DuplicateFinder {
public:
  bool onEvent(nlohmann::json::parse_event_t event, const nlohmann::json &parsed) {
    using Event = nlohmann::json::parse_event_t;
    if (found_)
      return true;
    switch (event) {
    case Event::object_start:
    case Event::array_start:
      enterChild();
      frames_.push_back({event == Event::object_start, pathElement(), {}, {}, 0});
      break;
    case Event::object_end:
    case Event::array_end:
      frames_.pop_back();
      break;
    case Event::key: {
      Frame &top = frames_.back();
      top.lastKey = parsed.get<std::string>();
      if (!top.keys.insert(top.lastKey).second) {
        JsonDuplicateKey dup;
        for (size_t i = 1; i < frames_.size(); ++i)
          dup.path.push_back(frames_[i].name);
        dup.key = top.lastKey;
        found_ = std::move(dup);
      }
      break;
    }
    case Event::value:
      enterChild();
      break;
    }
    return true;
  }

  std::optional<JsonDuplicateKey> &found() { return found_; }

private:
  struct Frame {
    bool isObject;
    std::string name; ///< how the parent refers to this container
    llvm::StringSet<> keys;
    std::string lastKey;
    size_t elements; ///< for arrays: children seen so far
  };

  void enterChild() {
    if (!frames_.empty() && !frames_.back().isObject)
      ++frames_.back().elements;
  }
  std::string pathElement() const {
    if (frames_.empty())
      return "";
    const Frame &top = frames_.back();
    return top.isObject ? top.lastKey : std::to_string(top.elements - 1);
  }

  std::vector<Frame> frames_;
  std::optional<JsonDuplicateKey> found_;
};

/// nlohmann's what() is "[json.exception.parse_error.101] parse error at line 1, column 2:
/// DETAIL" (other kinds: "[json.exception.out_of_range.406] DETAIL"); the position is
/// reported separately, so keep only DETAIL.
std::string parseErrorDetail(const char *what) {
  llvm::StringRef text(what);
  if (text.startswith("[json.exception."))
    text = text.split("] ").second;
  if (text.startswith("parse error"))
    text = text.split(": ").second;
  return text.str();
}

/// A SAX handler that keeps nothing and records where parsing stopped: nlohmann reports a
/// number too large for a double as out_of_range, which carries no position.
struct ErrorLocator {
  using json = nlohmann::json;
  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(json::number_integer_t) { return true; }
  bool number_unsigned(json::number_unsigned_t) { return true; }
  bool number_float(json::number_float_t, const json::string_t &) { return true; }
  bool string(json::string_t &) { return true; }
  bool binary(json::binary_t &) { return true; }
  bool start_object(std::size_t) { return true; }
  bool key(json::string_t &) { return true; }
  bool end_object() { return true; }
  bool start_array(std::size_t) { return true; }
  bool end_array() { return true; }
  bool parse_error(std::size_t position, const std::string &, const nlohmann::detail::exception &) {
    byte = position;
    return false;
  }
  size_t byte = 0;
};

} // namespace

std::optional<JsonParseFailure> parseJsonStrict(llvm::StringRef text, nlohmann::json &out) {
  DuplicateFinder finder;
  try {
    out = nlohmann::json::parse(
        text.begin(), text.end(),
        [&finder](int, nlohmann::json::parse_event_t event, nlohmann::json &parsed) {
          return finder.onEvent(event, parsed);
        });
  } catch (const nlohmann::json::parse_error &e) {
    return JsonParseFailure(JsonSyntaxError{e.byte, parseErrorDetail(e.what())});
  } catch (const nlohmann::json::exception &e) {
    // Well-formed text the parser still refuses, such as a number beyond a double's range.
    ErrorLocator locator;
    nlohmann::json::sax_parse(text.begin(), text.end(), &locator);
    return JsonParseFailure(JsonSyntaxError{locator.byte, parseErrorDetail(e.what())});
  }
  if (finder.found())
    return JsonParseFailure(std::move(*finder.found()));
  return std::nullopt;
}

std::string formatJsonPath(const std::vector<std::string> &path) {
  if (path.empty())
    return "/";
  std::string out;
  for (const std::string &p : path)
    out += "/" + p;
  return out;
}

llvm::Expected<std::string> readTextFile(llvm::StringRef path) {
  std::string p = path.str();
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return systemError(path, "read", errno);
  std::string text;
  struct stat st;
  if (::fstat(fd, &st) == 0 && st.st_size > 0)
    text.reserve(size_t(st.st_size));
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return systemError(path, "read", err);
    }
    if (n == 0)
      break;
    text.append(buf, size_t(n));
  }
  ::close(fd);
  return text;
}

llvm::Expected<nlohmann::json> readJsonFile(llvm::StringRef path) {
  llvm::Expected<std::string> text = readTextFile(path);
  if (!text)
    return text.takeError();
  return parseJsonFileText(path, *text);
}

llvm::Expected<nlohmann::json> parseJsonFileText(llvm::StringRef path, llvm::StringRef text) {
  nlohmann::json value;
  if (auto failure = parseJsonStrict(text, value)) {
    if (auto *syntax = std::get_if<JsonSyntaxError>(&*failure))
      return ioError(path + ": not valid JSON at byte " + llvm::Twine(syntax->byte) + ": " +
                     syntax->detail);
    auto &dup = std::get<JsonDuplicateKey>(*failure);
    return ioError(path + ": duplicate key '" + dup.key + "' in " + formatJsonPath(dup.path));
  }
  return value;
}

} // namespace ckptmap

namespace ckptmap {

void PlainJsonScanner::skipSpace() {
  while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t'))
    ++p_;
}

bool PlainJsonScanner::punct(char c) {
  skipSpace();
  if (p_ == end_ || *p_ != c)
    return false;
  ++p_;
  return true;
}

bool PlainJsonScanner::atEnd() {
  skipSpace();
  return p_ == end_;
}

bool PlainJsonScanner::string(llvm::StringRef &out) {
  if (!punct('"'))
    return false;
  const char *begin = p_;
  for (; p_ != end_ && *p_ != '"'; ++p_) {
    unsigned char c = static_cast<unsigned char>(*p_);
    if (c < 0x20 || c >= 0x7f || c == '\\')
      return false;
  }
  if (p_ == end_)
    return false;
  out = llvm::StringRef(begin, size_t(p_ - begin));
  ++p_;
  return true;
}

bool PlainJsonScanner::integer(uint64_t &out) {
  skipSpace();
  const char *begin = p_;
  out = 0;
  for (; p_ != end_ && *p_ >= '0' && *p_ <= '9'; ++p_)
    out = out * 10 + uint64_t(*p_ - '0');
  size_t digits = size_t(p_ - begin);
  if (digits == 0 || digits > 19 || (digits > 1 && *begin == '0'))
    return false;
  return p_ == end_ || (*p_ != '.' && *p_ != 'e' && *p_ != 'E');
}

bool PlainJsonScanner::literal(llvm::StringRef word) {
  if (size_t(end_ - p_) < word.size() || llvm::StringRef(p_, word.size()) != word)
    return false;
  p_ += word.size();
  return true;
}

bool PlainJsonScanner::skipValue() {
  skipSpace();
  if (p_ == end_)
    return false;
  switch (*p_) {
  case '"': {
    llvm::StringRef s;
    return string(s);
  }
  case '{': {
    llvm::StringSet<> keys;
    return object([&](llvm::StringRef key) { return keys.insert(key).second && skipValue(); });
  }
  case '[':
    return array([&] { return skipValue(); });
  case 't': return literal("true");
  case 'f': return literal("false");
  case 'n': return literal("null");
  default: {
    uint64_t v;
    return integer(v);
  }
  }
}

} // namespace ckptmap
