#include "runtime/mcore/PickleWriter.h"

#include <nlohmann/json.hpp>

#include <cstring>

namespace ckptmap::mcore {

namespace {
constexpr size_t kFrameHeader = 9;
constexpr size_t kFrameTarget = 64 * 1024; // CPython's FRAME_SIZE_TARGET
constexpr size_t kFrameMin = 4;            // CPython's FRAME_SIZE_MIN
} // namespace

PickleOut::PickleOut(int protocol) : protocol_(protocol) {
  out_.push_back(0x80);
  out_.push_back(uint8_t(protocol));
}

void PickleOut::startFrameIfNeeded() {
  if (protocol_ >= 4 && frameStart_ < 0) {
    frameStart_ = int64_t(out_.size());
    out_.insert(out_.end(), kFrameHeader, 0);
  }
}

void PickleOut::commitFrame() {
  if (frameStart_ < 0)
    return;
  size_t len = out_.size() - size_t(frameStart_) - kFrameHeader;
  if (len >= kFrameMin) {
    out_[frameStart_] = 0x95;
    for (int i = 0; i < 8; ++i)
      out_[frameStart_ + 1 + i] = uint8_t(uint64_t(len) >> (8 * i));
  } else {
    out_.erase(out_.begin() + frameStart_, out_.begin() + frameStart_ + kFrameHeader);
  }
  frameStart_ = -1;
}

void PickleOut::raw(llvm::ArrayRef<uint8_t> bytes) {
  startFrameIfNeeded();
  out_.insert(out_.end(), bytes.begin(), bytes.end());
}

void PickleOut::op(uint8_t code) { raw(llvm::ArrayRef<uint8_t>(&code, 1)); }

void PickleOut::integer(int64_t v) {
  std::vector<uint8_t> b;
  if (v >= 0 && v <= 0xff) {
    b = {'K', uint8_t(v)};
  } else if (v >= 0 && v <= 0xffff) {
    b = {'M', uint8_t(v), uint8_t(v >> 8)};
  } else if (v >= INT32_MIN && v <= INT32_MAX) {
    uint32_t u = uint32_t(int32_t(v));
    b = {'J', uint8_t(u), uint8_t(u >> 8), uint8_t(u >> 16), uint8_t(u >> 24)};
  } else {
    // LONG1: the shortest little-endian two's complement, as pickle's encode_long.
    uint64_t u = uint64_t(v);
    std::vector<uint8_t> digits;
    for (int i = 0; i < 8; ++i)
      digits.push_back(uint8_t(u >> (8 * i)));
    while (digits.size() > 1) {
      uint8_t top = digits.back(), next = digits[digits.size() - 2];
      if ((top == 0x00 && !(next & 0x80)) || (top == 0xff && (next & 0x80)))
        digits.pop_back();
      else
        break;
    }
    b = {0x8a, uint8_t(digits.size())};
    b.insert(b.end(), digits.begin(), digits.end());
  }
  raw(b);
}

void PickleOut::real(double v) {
  uint64_t u;
  std::memcpy(&u, &v, 8);
  std::vector<uint8_t> b{'G'};
  for (int i = 7; i >= 0; --i)
    b.push_back(uint8_t(u >> (8 * i)));
  raw(b);
}

void PickleOut::str(llvm::StringRef s) {
  std::vector<uint8_t> b;
  uint64_t n = s.size();
  if (protocol_ >= 4 && n <= 0xff) {
    b = {0x8c, uint8_t(n)};
  } else if (n <= 0xffffffffu) {
    b = {'X', uint8_t(n), uint8_t(n >> 8), uint8_t(n >> 16), uint8_t(n >> 24)};
  } else {
    b = {0x8d};
    for (int i = 0; i < 8; ++i)
      b.push_back(uint8_t(n >> (8 * i)));
  }
  b.insert(b.end(), s.bytes_begin(), s.bytes_end());
  raw(b);
}

void PickleOut::global2(llvm::StringRef module, llvm::StringRef name) {
  std::vector<uint8_t> b{'c'};
  b.insert(b.end(), module.bytes_begin(), module.bytes_end());
  b.push_back('\n');
  b.insert(b.end(), name.bytes_begin(), name.bytes_end());
  b.push_back('\n');
  raw(b);
}

uint32_t PickleOut::memoize() {
  uint32_t index = memoCount_++;
  if (protocol_ >= 4)
    op(0x94);
  else if (index <= 0xff)
    raw(std::vector<uint8_t>{'q', uint8_t(index)});
  else
    raw(std::vector<uint8_t>{'r', uint8_t(index), uint8_t(index >> 8), uint8_t(index >> 16), uint8_t(index >> 24)});
  return index;
}

void PickleOut::get(uint32_t index) {
  if (index <= 0xff)
    raw(std::vector<uint8_t>{'h', uint8_t(index)});
  else
    raw(std::vector<uint8_t>{'j', uint8_t(index), uint8_t(index >> 8), uint8_t(index >> 16), uint8_t(index >> 24)});
}

void PickleOut::endSave() {
  if (frameStart_ >= 0 && out_.size() - size_t(frameStart_) - kFrameHeader >= kFrameTarget)
    commitFrame();
}

std::vector<uint8_t> PickleOut::finish() {
  op('.');
  commitFrame();
  return std::move(out_);
}

// ---------------------------------------------------------------------------------------------

namespace {

void saveJson(PickleOut &p, const nlohmann::json &v) {
  switch (v.type()) {
  case nlohmann::json::value_t::null:
    p.none();
    break;
  case nlohmann::json::value_t::boolean:
    p.boolean(v.get<bool>());
    break;
  case nlohmann::json::value_t::number_integer:
    p.integer(v.get<int64_t>());
    break;
  case nlohmann::json::value_t::number_unsigned:
    p.integer(int64_t(v.get<uint64_t>()));
    break;
  case nlohmann::json::value_t::number_float:
    p.real(v.get<double>());
    break;
  case nlohmann::json::value_t::string:
    p.str(v.get_ref<const std::string &>());
    p.memoize();
    break;
  case nlohmann::json::value_t::array: {
    p.op(']');
    p.memoize();
    if (v.size() == 1) {
      saveJson(p, v[0]);
      p.op('a');
    } else if (!v.empty()) {
      size_t done = 0;
      do {
        p.op('(');
        for (size_t k = 0; done < v.size() && k < 1000; ++k)
          saveJson(p, v[done++]);
        p.op('e');
      } while (done < v.size());
    }
    break;
  }
  case nlohmann::json::value_t::object: {
    p.op('}');
    p.memoize();
    if (v.size() == 1) {
      saveJson(p, v.begin().key());
      saveJson(p, v.begin().value());
      p.op('s');
    } else if (!v.empty()) {
      auto it = v.begin();
      size_t batch;
      do {
        p.op('(');
        for (batch = 0; it != v.end() && batch < 1000; ++it, ++batch) {
          saveJson(p, it.key());
          saveJson(p, it.value());
        }
        p.op('u');
      } while (batch == 1000);
    }
    break;
  }
  default:
    p.none();
    break;
  }
  p.endSave();
}

} // namespace

std::vector<uint8_t> pickleJson(const nlohmann::json &value) {
  PickleOut p(2);
  saveJson(p, value);
  return p.finish();
}

} // namespace ckptmap::mcore
