#include "runtime/io/SafetensorsHeader.h"

#include "runtime/io/IoError.h"
#include "runtime/io/Json.h"

#include <algorithm>

namespace ckptmap {
namespace {

using nlohmann::json;

std::string inQuotes(llvm::StringRef s) { return "'" + s.str() + "'"; }

llvm::Error tensorError(llvm::StringRef label, llvm::StringRef name, const llvm::Twine &what) {
  return ioError(label + ": tensor " + inQuotes(name) + ": " + what);
}

std::string formatRange(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

// The checks of an entry once its fields are read, shared by both parsers.

/// The bytes `meta`'s shape and dtype need.
llvm::Expected<uint64_t> checkShape(llvm::StringRef label, const TensorMeta &meta) {
  for (int64_t d : meta.shape)
    if (d < 0)
      return tensorError(label, meta.name, "shape " + formatShape(meta.shape) +
                                               " has a negative dimension");
  uint64_t needed = dtypeSize(meta.dtype);
  for (int64_t d : meta.shape)
    if (__builtin_mul_overflow(needed, uint64_t(d), &needed))
      return tensorError(label, meta.name, "shape " + formatShape(meta.shape) + " of " +
                                               std::string(dtypeName(meta.dtype)) +
                                               " needs more than 2^64 bytes");
  // numel() is int64_t: keep byteSize() meaningful for every accepted tensor.
  if (needed / dtypeSize(meta.dtype) > uint64_t(INT64_MAX))
    return tensorError(label, meta.name, "shape " + formatShape(meta.shape) +
                                             " has more than 2^63-1 elements");
  return needed;
}

/// The byte range against the `needed` bytes and the data section's `dataSize`.
llvm::Error checkRange(llvm::StringRef label, const HeaderTensor &t, uint64_t needed,
                       uint64_t dataSize) {
  const std::string &name = t.meta.name;
  if (t.begin > t.end)
    return tensorError(label, name, "data_offsets " + formatRange(t.begin, t.end) +
                                        " begin after they end");
  if (t.end - t.begin != needed)
    return tensorError(label, name,
                       "shape " + formatShape(t.meta.shape) + " of " +
                           std::string(dtypeName(t.meta.dtype)) + " needs " +
                           std::to_string(needed) + " bytes but data_offsets span " +
                           std::to_string(t.end - t.begin));
  if (t.end > dataSize)
    return tensorError(label, name, "data_offsets " + formatRange(t.begin, t.end) +
                                        " run past the end of the data section (" +
                                        std::to_string(dataSize) + " bytes)");
  return llvm::Error::success();
}

/// One header entry into a HeaderTensor; `dataSize` bounds the offsets.
llvm::Expected<HeaderTensor> parseEntry(llvm::StringRef label, const std::string &name,
                                        const json &entry, uint64_t dataSize) {
  if (!entry.is_object())
    return tensorError(label, name, "entry is not an object");
  for (const char *key : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(key))
      return tensorError(label, name, llvm::Twine("missing '") + key + "'");

  HeaderTensor t;
  t.meta.name = name;
  const json &dtype = entry["dtype"];
  if (!dtype.is_string())
    return tensorError(label, name, "'dtype' is not a string");
  const std::string &dtypeText = dtype.get_ref<const std::string &>();
  std::optional<DType> parsed = parseDType(dtypeText);
  if (!parsed)
    return tensorError(label, name, "unknown dtype " + inQuotes(dtypeText));
  t.meta.dtype = *parsed;

  const json &shape = entry["shape"];
  if (!shape.is_array())
    return tensorError(label, name, "'shape' is not an array of integers");
  for (const json &d : shape) {
    if (d.is_number_unsigned()) {
      uint64_t v = d.get<uint64_t>();
      if (v > uint64_t(INT64_MAX))
        return tensorError(label, name, "shape dimension " + std::to_string(v) + " is too large");
      t.meta.shape.push_back(int64_t(v));
    } else if (d.is_number_integer()) {
      t.meta.shape.push_back(d.get<int64_t>());
    } else {
      return tensorError(label, name, "'shape' is not an array of integers");
    }
  }
  llvm::Expected<uint64_t> needed = checkShape(label, t.meta);
  if (!needed)
    return needed.takeError();

  const json &offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    return tensorError(label, name,
                       "'data_offsets' is not an array of two non-negative integers");
  t.begin = offsets[0].get<uint64_t>();
  t.end = offsets[1].get<uint64_t>();
  if (llvm::Error e = checkRange(label, t, *needed, dataSize))
    return e;
  return t;
}

llvm::Error parseMetadata(llvm::StringRef label, const json &value,
                          std::map<std::string, std::string> &out) {
  if (!value.is_object())
    return ioError(label + ": __metadata__ is not an object");
  for (const auto &[key, v] : value.items()) {
    if (!v.is_string())
      return ioError(label + ": __metadata__: " + inQuotes(key) + " is not a string");
    out[key] = v.get<std::string>();
  }
  return llvm::Error::success();
}

/// Byte ranges must not share bytes. Empty ranges share none, wherever they sit.
llvm::Error checkOverlaps(llvm::StringRef label, const std::vector<HeaderTensor> &tensors) {
  std::vector<const HeaderTensor *> byBegin;
  for (const HeaderTensor &t : tensors)
    if (t.begin != t.end)
      byBegin.push_back(&t);
  std::sort(byBegin.begin(), byBegin.end(), [](const HeaderTensor *a, const HeaderTensor *b) {
    return a->begin != b->begin ? a->begin < b->begin : a->meta.name < b->meta.name;
  });
  const HeaderTensor *reach = nullptr; // the range ending furthest so far
  for (const HeaderTensor *t : byBegin) {
    if (reach && t->begin < reach->end)
      return ioError(label + ": tensors " + inQuotes(reach->meta.name) + " and " +
                     inQuotes(t->meta.name) + " overlap: data_offsets " +
                     formatRange(reach->begin, reach->end) + " and " +
                     formatRange(t->begin, t->end));
    if (!reach || t->end > reach->end)
      reach = t;
  }
  return llvm::Error::success();
}

/// A header of the form every writer emits (see scanPlainSafetensorsHeader), read without a
/// JSON tree: a header of 90,000 tensors takes milliseconds instead of a good part of a second.
std::optional<SafetensorsHeader> scanPlainHeader(llvm::StringRef text, uint64_t dataSize) {
  PlainJsonScanner in(text);
  SafetensorsHeader header;
  bool sawMetadata = false;
  auto entry = [&](HeaderTensor &t) {
    bool dtype = false, shape = false, offsets = false;
    size_t n = 0;
    uint64_t range[2] = {0, 0};
    auto dimension = [&] {
      uint64_t d;
      if (!in.integer(d) || d > uint64_t(INT64_MAX))
        return false;
      t.meta.shape.push_back(int64_t(d));
      return true;
    };
    auto offset = [&] { return n < 2 && in.integer(range[n++]); };
    bool read = in.object([&](llvm::StringRef key) {
      if (key == "dtype" && !dtype) {
        llvm::StringRef name;
        std::optional<DType> parsed;
        if (!in.string(name) || !(parsed = parseDType(name)))
          return false;
        t.meta.dtype = *parsed;
        return dtype = true;
      }
      if (key == "shape" && !shape)
        return shape = in.array(dimension);
      if (key == "data_offsets" && !offsets)
        return offsets = in.array(offset) && n == 2;
      return false; // another key, or one repeated
    });
    t.begin = range[0];
    t.end = range[1];
    return read && dtype && shape && offsets;
  };
  bool plain = in.object([&](llvm::StringRef key) {
    if (key != "__metadata__") {
      HeaderTensor &t = header.tensors.emplace_back();
      t.meta.name = key.str();
      return entry(t);
    }
    if (sawMetadata)
      return false;
    sawMetadata = true;
    return in.object([&](llvm::StringRef name) {
      llvm::StringRef value;
      return in.string(value) && header.metadata.emplace(name.str(), value.str()).second;
    });
  }) && in.atEnd();
  if (!plain)
    return std::nullopt;

  // Valid as well as plain: the general parser's checks, in its order (by name).
  std::vector<HeaderTensor> &tensors = header.tensors;
  auto byName = [](const HeaderTensor &a, const HeaderTensor &b) { return a.meta.name < b.meta.name; };
  if (!std::is_sorted(tensors.begin(), tensors.end(), byName))
    std::sort(tensors.begin(), tensors.end(), byName);
  for (size_t i = 1; i < tensors.size(); ++i)
    if (tensors[i - 1].meta.name == tensors[i].meta.name)
      return std::nullopt;
  auto declined = [](llvm::Error e) {
    llvm::consumeError(std::move(e));
    return std::nullopt;
  };
  for (const HeaderTensor &t : tensors) {
    llvm::Expected<uint64_t> needed = checkShape("", t.meta);
    if (!needed)
      return declined(needed.takeError());
    if (llvm::Error e = checkRange("", t, *needed, dataSize))
      return declined(std::move(e));
  }
  if (llvm::Error e = checkOverlaps("", tensors))
    return declined(std::move(e));
  return header;
}

/// The JSON text of a safetensors file's header, after checking its length prefix.
llvm::Expected<llvm::StringRef> headerText(llvm::ArrayRef<uint8_t> file, llvm::StringRef label) {
  if (file.size() < 8)
    return ioError(label + ": file is " + llvm::Twine(file.size()) +
                   " bytes, too short for the 8-byte header length");
  uint64_t headerSize = 0;
  for (int i = 7; i >= 0; --i)
    headerSize = (headerSize << 8) | file[i]; // little-endian on every host
  if (headerSize > kMaxSafetensorsHeaderSize)
    return ioError(label + ": header length " + llvm::Twine(headerSize) + " exceeds the limit of " +
                   llvm::Twine(kMaxSafetensorsHeaderSize) + " bytes");
  if (headerSize > file.size() - 8)
    return ioError(label + ": header length " + llvm::Twine(headerSize) +
                   " runs past the end of the file (" + llvm::Twine(file.size() - 8) +
                   " bytes follow the length)");
  return llvm::StringRef(reinterpret_cast<const char *>(file.data() + 8), headerSize);
}

} // namespace

std::optional<SafetensorsHeader> scanPlainSafetensorsHeader(llvm::ArrayRef<uint8_t> file) {
  llvm::Expected<llvm::StringRef> text = headerText(file, "");
  if (!text) {
    llvm::consumeError(text.takeError());
    return std::nullopt;
  }
  uint64_t dataStart = 8 + text->size();
  std::optional<SafetensorsHeader> header = scanPlainHeader(*text, file.size() - dataStart);
  if (header)
    header->dataStart = dataStart;
  return header;
}

llvm::Expected<SafetensorsHeader> parseSafetensorsHeaderJson(llvm::ArrayRef<uint8_t> file,
                                                             llvm::StringRef label) {
  llvm::Expected<llvm::StringRef> text = headerText(file, label);
  if (!text)
    return text.takeError();
  SafetensorsHeader header;
  header.dataStart = 8 + text->size();
  uint64_t dataSize = file.size() - header.dataStart;

  json root;
  if (auto failure = parseJsonStrict(*text, root)) {
    if (auto *syntax = std::get_if<JsonSyntaxError>(&*failure))
      return ioError(label + ": header is not valid JSON at byte " + llvm::Twine(syntax->byte) +
                     ": " + syntax->detail);
    auto &dup = std::get<JsonDuplicateKey>(*failure);
    if (dup.path.empty())
      return ioError(label + ": duplicate tensor " + inQuotes(dup.key));
    if (dup.path.front() == "__metadata__")
      return ioError(label + ": __metadata__: duplicate key " + inQuotes(dup.key));
    return tensorError(label, dup.path.front(), "duplicate key " + inQuotes(dup.key));
  }
  if (!root.is_object())
    return ioError(label + ": header is not a JSON object");

  for (const auto &[name, entry] : root.items()) {
    if (name == "__metadata__") {
      if (llvm::Error e = parseMetadata(label, entry, header.metadata))
        return e;
      continue;
    }
    llvm::Expected<HeaderTensor> t = parseEntry(label, name, entry, dataSize);
    if (!t)
      return t.takeError();
    header.tensors.push_back(std::move(*t));
  }
  if (llvm::Error e = checkOverlaps(label, header.tensors))
    return e;
  return header;
}

llvm::Expected<SafetensorsHeader> parseSafetensorsHeader(llvm::ArrayRef<uint8_t> file,
                                                         llvm::StringRef label) {
  if (std::optional<SafetensorsHeader> header = scanPlainSafetensorsHeader(file))
    return std::move(*header);
  return parseSafetensorsHeaderJson(file, label);
}

} // namespace ckptmap
