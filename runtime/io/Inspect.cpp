#include "runtime/io/Inspect.h"

#include "llvm/Support/Format.h"

#include <algorithm>
#include <cstring>
#include <map>

namespace ckptmap {
namespace {

nlohmann::json metaToJson(const TensorMeta &m) {
  return {{"dtype", std::string(dtypeName(m.dtype))},
          {"shape", std::vector<int64_t>(m.shape.begin(), m.shape.end())}};
}

std::string describeMeta(const TensorMeta &m) {
  return std::string(dtypeName(m.dtype)) + " " + formatShape(m.shape);
}

const char *kindName(TensorDiff::Kind kind) {
  switch (kind) {
  case TensorDiff::Kind::DType: return "dtype";
  case TensorDiff::Kind::Shape: return "shape";
  case TensorDiff::Kind::Bytes: return "bytes";
  }
  return "?";
}

/// Counts elements whose bytes differ; the caller knows the buffers differ somewhere.
void countDifferences(llvm::ArrayRef<uint8_t> a, llvm::ArrayRef<uint8_t> b, size_t elemSize,
                      TensorDiff &out) {
  bool first = true;
  for (size_t off = 0; off < a.size(); off += elemSize) {
    if (std::memcmp(a.data() + off, b.data() + off, elemSize) == 0)
      continue;
    if (first)
      out.firstDifference = off / elemSize;
    first = false;
    ++out.differingElements;
  }
}

} // namespace

std::string formatBytes(uint64_t bytes) {
  static const char *kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024)
    return std::to_string(bytes) + " B";
  double v = double(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 5) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f %s", v, kUnits[unit]);
  return buf;
}

nlohmann::json describeCheckpoint(const TensorSource &source) {
  nlohmann::json tensors = nlohmann::json::array();
  std::map<std::string, std::pair<uint64_t, uint64_t>> perDType; // count, bytes
  uint64_t total = 0;
  for (const SourceTensor &t : source.tensors()) {
    nlohmann::json entry = metaToJson(t.meta);
    entry["name"] = t.meta.name;
    entry["bytes"] = t.meta.byteSize();
    entry["file"] = t.file;
    tensors.push_back(std::move(entry));
    auto &[count, bytes] = perDType[std::string(dtypeName(t.meta.dtype))];
    ++count;
    bytes += t.meta.byteSize();
    total += t.meta.byteSize();
  }
  nlohmann::json dtypes = nlohmann::json::object();
  for (const auto &[name, cb] : perDType)
    dtypes[name] = {{"count", cb.first}, {"bytes", cb.second}};
  return {{"root", source.root()},     {"count", source.tensors().size()},
          {"total_bytes", total},      {"dtypes", std::move(dtypes)},
          {"tensors", std::move(tensors)}};
}

void printCheckpoint(llvm::raw_ostream &os, const TensorSource &source) {
  nlohmann::json d = describeCheckpoint(source);
  struct Row {
    std::string name, dtype, shape, bytes, file;
  };
  std::vector<Row> rows = {{"NAME", "DTYPE", "SHAPE", "BYTES", "FILE"}};
  for (const SourceTensor &t : source.tensors())
    rows.push_back({t.meta.name, std::string(dtypeName(t.meta.dtype)), formatShape(t.meta.shape),
                    std::to_string(t.meta.byteSize()), t.file});
  size_t wName = 0, wDType = 0, wShape = 0, wBytes = 0;
  for (const Row &r : rows) {
    wName = std::max(wName, r.name.size());
    wDType = std::max(wDType, r.dtype.size());
    wShape = std::max(wShape, r.shape.size());
    wBytes = std::max(wBytes, r.bytes.size());
  }
  for (const Row &r : rows)
    os << llvm::left_justify(r.name, wName) << "  " << llvm::left_justify(r.dtype, wDType)
       << "  " << llvm::left_justify(r.shape, wShape) << "  "
       << llvm::right_justify(r.bytes, wBytes) << "  " << r.file << "\n";
  os << "\n";
  for (const auto &[name, v] : d["dtypes"].items())
    os << name << ": " << v["count"].get<uint64_t>() << " tensors, "
       << formatBytes(v["bytes"].get<uint64_t>()) << "\n";
  os << "total: " << d["count"].get<uint64_t>() << " tensors, "
     << formatBytes(d["total_bytes"].get<uint64_t>()) << " ("
     << d["total_bytes"].get<uint64_t>() << " bytes)\n";
}

llvm::Expected<DiffResult> diffCheckpoints(const TensorSource &a, const TensorSource &b,
                                           DiffOptions options) {
  DiffResult result;
  result.bytesCompared = options.compareBytes;
  llvm::ArrayRef<SourceTensor> ta = a.tensors(), tb = b.tensors();
  size_t i = 0, j = 0;
  // Both lists are sorted by name: walk them together.
  while (i < ta.size() || j < tb.size()) {
    if (j == tb.size() || (i < ta.size() && ta[i].meta.name < tb[j].meta.name)) {
      result.onlyInA.push_back(ta[i++].meta.name);
      continue;
    }
    if (i == ta.size() || tb[j].meta.name < ta[i].meta.name) {
      result.onlyInB.push_back(tb[j++].meta.name);
      continue;
    }
    const SourceTensor &x = ta[i++], &y = tb[j++];
    TensorDiff diff{TensorDiff::Kind::DType, x.meta.name, x.meta, y.meta};
    if (x.meta.dtype != y.meta.dtype) {
      result.differences.push_back(std::move(diff));
      continue;
    }
    if (x.meta.shape != y.meta.shape) {
      diff.kind = TensorDiff::Kind::Shape;
      result.differences.push_back(std::move(diff));
      continue;
    }
    if (options.compareBytes) {
      llvm::Expected<TensorBytes> bx = a.read(x);
      if (!bx)
        return bx.takeError();
      llvm::Expected<TensorBytes> by = b.read(y);
      if (!by)
        return by.takeError();
      if (bx->size() != by->size() ||
          (bx->size() && std::memcmp(bx->data(), by->data(), bx->size()) != 0)) {
        diff.kind = TensorDiff::Kind::Bytes;
        countDifferences(bx->bytes(), by->bytes(), dtypeSize(x.meta.dtype), diff);
        result.differences.push_back(std::move(diff));
        continue;
      }
    }
    ++result.identical;
  }
  return result;
}

void printDiff(llvm::raw_ostream &os, const DiffResult &diff) {
  for (const std::string &n : diff.onlyInA)
    os << "only in A: " << n << "\n";
  for (const std::string &n : diff.onlyInB)
    os << "only in B: " << n << "\n";
  for (const TensorDiff &d : diff.differences) {
    os << kindName(d.kind) << (d.kind == TensorDiff::Kind::Bytes ? " differ: " : " differs: ")
       << d.name << ": ";
    if (d.kind == TensorDiff::Kind::Bytes)
      os << d.differingElements << " of " << d.a.numel() << " elements differ, first at element "
         << d.firstDifference << "\n";
    else
      os << describeMeta(d.a) << " vs " << describeMeta(d.b) << "\n";
  }
  size_t common = diff.identical + diff.differences.size();
  os << (diff.same() ? "same" : "different") << ": " << common << " tensors in both, "
     << diff.identical << (diff.bytesCompared ? " identical" : " with equal dtype and shape")
     << ", " << diff.differences.size() << " different, " << diff.onlyInA.size()
     << " only in A, " << diff.onlyInB.size() << " only in B"
     << (diff.bytesCompared ? "" : " (bytes not compared)") << "\n";
}

nlohmann::json diffToJson(const DiffResult &diff) {
  nlohmann::json differences = nlohmann::json::array();
  for (const TensorDiff &d : diff.differences) {
    nlohmann::json e = {{"name", d.name}, {"kind", kindName(d.kind)},
                        {"a", metaToJson(d.a)}, {"b", metaToJson(d.b)}};
    if (d.kind == TensorDiff::Kind::Bytes) {
      e["differing_elements"] = d.differingElements;
      e["first_difference"] = d.firstDifference;
    }
    differences.push_back(std::move(e));
  }
  return {{"same", diff.same()},
          {"identical", diff.identical},
          {"bytes_compared", diff.bytesCompared},
          {"only_in_a", diff.onlyInA},
          {"only_in_b", diff.onlyInB},
          {"differences", std::move(differences)}};
}

} // namespace ckptmap
