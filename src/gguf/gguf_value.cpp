// GgufValue conversions, type names and the tensor size arithmetic shared by reader and writer.
#include <charconv>
#include <cmath>
#include <limits>

#include "gguf/gguf.h"
#include "gguf/gguf_format.h"

namespace g3n {

std::string_view gguf_value_type_name(GgufValueType t) {
  // The names llama.cpp's gguf_type_name uses, so messages and the fixtures' JSON agree.
  switch (t) {
    case GgufValueType::UINT8: return "u8";
    case GgufValueType::INT8: return "i8";
    case GgufValueType::UINT16: return "u16";
    case GgufValueType::INT16: return "i16";
    case GgufValueType::UINT32: return "u32";
    case GgufValueType::INT32: return "i32";
    case GgufValueType::FLOAT32: return "f32";
    case GgufValueType::BOOL: return "bool";
    case GgufValueType::STRING: return "str";
    case GgufValueType::ARRAY: return "arr";
    case GgufValueType::UINT64: return "u64";
    case GgufValueType::INT64: return "i64";
    case GgufValueType::FLOAT64: return "f64";
  }
  return "unknown";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::UINT16:
    case GgufValueType::INT16: case GgufValueType::UINT32: case GgufValueType::INT32:
    case GgufValueType::UINT64: case GgufValueType::INT64: case GgufValueType::BOOL:
      return true;
    default:
      return false;
  }
}

bool GgufValue::is_float() const { return type == GgufValueType::FLOAT32 || type == GgufValueType::FLOAT64; }

static bool is_unsigned(GgufValueType t) {
  return t == GgufValueType::UINT8 || t == GgufValueType::UINT16 || t == GgufValueType::UINT32 ||
         t == GgufValueType::UINT64 || t == GgufValueType::BOOL;
}

std::optional<int64_t> GgufValue::as_int() const {
  if (is_unsigned(type)) {
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (is_integer()) return i;
  if (is_float()) {
    // Only exact integers convert; 2^63 itself is out of range, hence the strict upper bound.
    if (!std::isfinite(f) || std::trunc(f) != f) return std::nullopt;
    if (f < -9223372036854775808.0 || f >= 9223372036854775808.0) return std::nullopt;
    return static_cast<int64_t>(f);
  }
  return std::nullopt;
}

std::optional<double> GgufValue::as_double() const {
  if (is_unsigned(type)) return static_cast<double>(u);
  if (is_integer()) return static_cast<double>(i);
  if (is_float()) return f;
  return std::nullopt;
}

int64_t GgufTensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;  // validated at load: cannot overflow
  return n;
}

int64_t GgufTensorInfo::rows() const {
  int64_t n = 1;
  for (size_t k = 1; k < ne.size(); ++k) n *= ne[k];
  return n;
}

int tensor_layer(std::string_view name) {
  if (name.substr(0, 4) != "blk.") return -1;
  int layer = -1;
  const char* b = name.data() + 4;
  const char* e = name.data() + name.size();
  auto [p, ec] = std::from_chars(b, e, layer);
  if (ec != std::errc() || p == b || p == e || *p != '.') return -1;
  return layer;
}

namespace gguf_detail {

std::string describe_type(const GgufValue& v) {
  if (v.type != GgufValueType::ARRAY) return std::string(gguf_value_type_name(v.type));
  // Nested arrays: describe the first element's shape (all elements share the element type).
  if (v.elem_type() == GgufValueType::ARRAY && !v.array.empty())
    return "arr[" + describe_type(v.array.array_at(0)) + "]";
  return "arr[" + std::string(gguf_value_type_name(v.elem_type())) + "]";
}

std::optional<std::string> out_of_range(const GgufValue& v) {
  const auto urange = [&](uint64_t max) -> std::optional<std::string> {
    if (v.u > max) return cat(gguf_value_type_name(v.type), " value ", v.u, " out of range");
    return std::nullopt;
  };
  const auto irange = [&](int64_t lo, int64_t hi) -> std::optional<std::string> {
    if (v.i < lo || v.i > hi) return cat(gguf_value_type_name(v.type), " value ", v.i, " out of range");
    return std::nullopt;
  };
  switch (v.type) {
    case GgufValueType::UINT8: return urange(0xff);
    case GgufValueType::UINT16: return urange(0xffff);
    case GgufValueType::UINT32: return urange(0xffffffffu);
    case GgufValueType::BOOL: return urange(1);
    case GgufValueType::INT8: return irange(-128, 127);
    case GgufValueType::INT16: return irange(-32768, 32767);
    case GgufValueType::INT32: return irange(std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max());
    default: return std::nullopt;
  }
}

std::string shape_str(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t k = 0; k < ne.size(); ++k) s += (k ? ", " : "") + std::to_string(ne[k]);
  return s + "]";
}

std::optional<TensorSize> tensor_size(GgmlType type, const std::vector<int64_t>& ne, std::string* error) {
  const auto fail = [&](std::string m) -> std::optional<TensorSize> {
    if (error) *error = std::move(m);
    return std::nullopt;
  };
  if (ne.empty() || ne.size() > kMaxDims)
    return fail(cat("has ", ne.size(), " dimensions (must be 1..", kMaxDims, ")"));
  TensorSize ts;
  // Zero-sized dimensions are allowed (ggml accepts them; the tensor then has no bytes), but the product of
  // the nonzero dimensions must fit, so every partial product (rows(), n_elements(), in any order) is safe.
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t nonzero = 1;
  for (size_t k = 0; k < ne.size(); ++k) {
    if (ne[k] < 0) return fail(cat("dimension ", k, " is negative (shape ", shape_str(ne), ")"));
    if (ne[k] == 0) continue;
    if (nonzero > kMax / ne[k])
      return fail(cat("shape ", shape_str(ne), " has too many elements (product overflows int64)"));
    nonzero *= ne[k];
  }
  ts.rows = 1;
  for (size_t k = 1; k < ne.size(); ++k) ts.rows *= ne[k];
  ts.n_elements = ts.rows * ne[0];
  const GgmlTypeTraits tr = ggml_type_traits(type);
  if (ne[0] % tr.block_size != 0)
    return fail(cat("row length ", ne[0], " is not a multiple of the ", tr.name, " block size ", tr.block_size));
  const auto rb = ggml_row_bytes(type, static_cast<uint64_t>(ne[0]));
  if (!rb) return fail(cat("row of ", ne[0], " ", tr.name, " elements overflows"));
  ts.row_bytes = *rb;
  if (ts.rows != 0 && ts.row_bytes > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(ts.rows))
    return fail(cat("shape ", shape_str(ne), " of ", tr.name, " overflows the byte size"));
  ts.nbytes = ts.row_bytes * static_cast<uint64_t>(ts.rows);
  // Byte sizes past 2^63 are impossible in any file and would break signed offset arithmetic later.
  if (ts.nbytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return fail(cat("shape ", shape_str(ne), " of ", tr.name, " needs ", ts.nbytes, " bytes (too large)"));
  return ts;
}

}  // namespace gguf_detail
}  // namespace g3n
