// Tensor element types as numbered in the GGUF format (ggml's enum ggml_type), with their block geometry.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace g3n {

enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
};

struct GgmlTypeTraits {
  std::string_view name;  // "Q4_K", "F16", ...
  uint32_t block_size;    // elements per block (1 for float types)
  uint32_t block_bytes;   // bytes per block
};

// Traits of a type this engine can decode, or nullopt for an unknown/unsupported type id.
std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t type_id);
// Same for a known enum value (never fails for the enumerators above).
GgmlTypeTraits ggml_type_traits(GgmlType type);

// Bytes of a row of n elements; nullopt when n is not a multiple of the block size or the size overflows.
std::optional<uint64_t> ggml_row_bytes(GgmlType type, uint64_t n);

}  // namespace g3n
