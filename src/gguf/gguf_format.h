// Internal to src/gguf: constants and helpers shared by the GGUF reader and writer, so both agree on
// what a valid file is (a file the writer produces always parses, and vice versa).
#pragma once
#include <cstdint>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/gguf.h"

namespace g3n::gguf_detail {

inline constexpr uint32_t kMagic = 0x46554747;  // the bytes "GGUF" read as a little-endian u32
inline constexpr uint32_t kWriteVersion = 3;
inline constexpr uint64_t kDefaultAlignment = 32;
// Largest general.alignment accepted when reading (files in the wild use 32 or 64).
inline constexpr uint64_t kMaxAlignment = 65536;
inline constexpr const char* kAlignmentKey = "general.alignment";
// Nested arrays are legal GGUF but nothing real uses more than one level; the cap bounds recursion.
inline constexpr int kMaxArrayDepth = 16;
inline constexpr uint32_t kMaxDims = 4;
// ggml's GGML_MAX_NAME is 64 including the NUL; llama.cpp refuses longer tensor names.
inline constexpr size_t kMaxTensorName = 63;
// Cap on parsed metadata values (a 262k-token vocab is ~800k); keeps a hostile multi-GB file from
// turning into ~100x its size of in-memory GgufValues.
inline constexpr uint64_t kMaxMetadataValues = uint64_t{1} << 24;
// Keys, and arrays inside arrays, each parse into a whole GgufValue (~150 bytes; array elements are compact,
// GgufArray), so they have caps of their own: real files have a few dozen keys and no nested arrays, and a
// small hostile file of empty nested arrays or tiny keys cannot become gigabytes of values.
inline constexpr uint64_t kMaxMetadataKeys = uint64_t{1} << 16;
inline constexpr uint64_t kMaxNestedArrays = uint64_t{1} << 16;

inline bool is_known_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::FLOAT64); }

// Encoded size of a scalar, or 0 for STRING/ARRAY.
inline uint64_t scalar_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::BOOL: return 1;
    case GgufValueType::UINT16: case GgufValueType::INT16: return 2;
    case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::FLOAT32: return 4;
    case GgufValueType::UINT64: case GgufValueType::INT64: case GgufValueType::FLOAT64: return 8;
    default: return 0;
  }
}

// Fewest bytes one value of type t can occupy (string: its u64 length; array: type + length).
inline uint64_t min_encoded_size(GgufValueType t) {
  if (t == GgufValueType::STRING) return 8;
  if (t == GgufValueType::ARRAY) return 12;
  return scalar_size(t);
}

// Why a scalar's number does not fit its declared type ("u8 value 300 out of range"), or nullopt when it does.
std::optional<std::string> out_of_range(const GgufValue& v);

// "u32", or "arr[i32]" / "arr[arr[str]]" for arrays.
std::string describe_type(const GgufValue& v);

inline bool is_pow2(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

// Shape-derived sizes of a tensor, or an error message saying what is wrong with the shape/type.
struct TensorSize {
  int64_t n_elements = 0;
  int64_t rows = 0;
  uint64_t row_bytes = 0;
  uint64_t nbytes = 0;
};
std::optional<TensorSize> tensor_size(GgmlType type, const std::vector<int64_t>& ne, std::string* error);

std::string shape_str(const std::vector<int64_t>& ne);

// Concatenates anything streamable (error messages).
template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace g3n::gguf_detail
