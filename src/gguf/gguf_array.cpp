// GgufArray: an array's elements in typed runs (gguf.h says why).
#include <cstring>

#include "gguf/gguf.h"
#include "gguf/gguf_format.h"

namespace g3n {

using gguf_detail::cat;

GgufArray::GgufArray(GgufValueType elem_type) : elem_type_(elem_type) {}

GgufArray::GgufArray(GgufValueType elem_type, const std::vector<GgufValue>& elems) : elem_type_(elem_type) {
  reserve(elems.size());
  for (const GgufValue& v : elems) push_back(v);
}

void GgufArray::reserve(size_t n) {
  if (elem_type_ == GgufValueType::STRING) ends_.reserve(n);
  else if (elem_type_ == GgufValueType::ARRAY) nested_.reserve(n);
  else bytes_.reserve(n * gguf_detail::scalar_size(elem_type_));
}

void GgufArray::push_string(std::string_view s) {
  if (elem_type_ != GgufValueType::STRING)
    throw GgufError(cat("a string cannot be an element of an array of ", gguf_value_type_name(elem_type_)));
  bytes_.insert(bytes_.end(), s.begin(), s.end());
  ends_.push_back(bytes_.size());
  ++n_;
}

void GgufArray::push_back(GgufValue&& v) {
  if (elem_type_ == GgufValueType::ARRAY && v.type == GgufValueType::ARRAY) {
    nested_.push_back(std::move(v));
    ++n_;
    return;
  }
  push_back(static_cast<const GgufValue&>(v));
}

void GgufArray::push_back(const GgufValue& v) {
  if (v.type != elem_type_)
    throw GgufError(cat("array element ", n_, " has type ", gguf_value_type_name(v.type), ", array is of ",
                        gguf_value_type_name(elem_type_)));
  if (elem_type_ == GgufValueType::STRING) return push_string(v.s);
  if (elem_type_ == GgufValueType::ARRAY) {
    nested_.push_back(v);
    ++n_;
    return;
  }
  if (const auto why = gguf_detail::out_of_range(v))
    throw GgufError(cat("array element ", n_, ": ", *why));
  // Each number at its declared width: an integer truncated (its range was checked), a FLOAT32 as the float the
  // file holds or the writer writes.
  uint64_t x = v.u;
  switch (elem_type_) {
    case GgufValueType::FLOAT32: {
      const float f = static_cast<float>(v.f);
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      x = bits;
      break;
    }
    case GgufValueType::FLOAT64: std::memcpy(&x, &v.f, 8); break;
    case GgufValueType::INT8: case GgufValueType::INT16: case GgufValueType::INT32: case GgufValueType::INT64:
      x = static_cast<uint64_t>(v.i);
      break;
    default: break;
  }
  const size_t w = gguf_detail::scalar_size(elem_type_);
  uint8_t b[8];
  for (size_t k = 0; k < w; ++k) b[k] = static_cast<uint8_t>(x >> (8 * k));  // little-endian, as decoded
  bytes_.insert(bytes_.end(), b, b + w);
  ++n_;
}

void GgufArray::shrink_to_fit() {
  bytes_.shrink_to_fit();
  ends_.shrink_to_fit();
  nested_.shrink_to_fit();
}

std::string_view GgufArray::string_at(size_t k) const {
  if (elem_type_ != GgufValueType::STRING || k >= n_)
    throw GgufError(cat("no string element ", k, " in an array of ", n_, " ", gguf_value_type_name(elem_type_)));
  const uint64_t begin = k ? ends_[k - 1] : 0;
  return {reinterpret_cast<const char*>(bytes_.data()) + begin, static_cast<size_t>(ends_[k] - begin)};
}

const GgufValue& GgufArray::array_at(size_t k) const {
  if (elem_type_ != GgufValueType::ARRAY || k >= n_)
    throw GgufError(cat("no array element ", k, " in an array of ", n_, " ", gguf_value_type_name(elem_type_)));
  return nested_[k];
}

GgufValue GgufArray::operator[](size_t k) const {
  if (elem_type_ == GgufValueType::ARRAY) return array_at(k);
  GgufValue v;
  v.type = elem_type_;
  if (elem_type_ == GgufValueType::STRING) {
    v.s = std::string(string_at(k));
    return v;
  }
  if (k >= n_) throw GgufError(cat("no element ", k, " in an array of ", n_));
  const size_t w = gguf_detail::scalar_size(elem_type_);
  const uint8_t* p = bytes_.data() + k * w;
  uint64_t x = 0;
  for (size_t b = 0; b < w; ++b) x |= static_cast<uint64_t>(p[b]) << (8 * b);
  switch (elem_type_) {
    case GgufValueType::FLOAT32: {
      float f;
      const uint32_t bits = static_cast<uint32_t>(x);
      std::memcpy(&f, &bits, 4);
      v.f = f;
      break;
    }
    case GgufValueType::FLOAT64: std::memcpy(&v.f, &x, 8); break;
    case GgufValueType::INT8: v.i = static_cast<int8_t>(x); break;
    case GgufValueType::INT16: v.i = static_cast<int16_t>(x); break;
    case GgufValueType::INT32: v.i = static_cast<int32_t>(x); break;
    case GgufValueType::INT64: v.i = static_cast<int64_t>(x); break;
    default: v.u = x; break;
  }
  return v;
}

}  // namespace g3n
