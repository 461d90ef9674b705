#include "quant/ggml_type.h"

#include <array>
#include <string>

namespace g3n {
namespace {

struct Entry {
  GgmlType type;
  GgmlTypeTraits traits;
};

// Block geometry as in ggml: K-quants use 256-element super-blocks.
constexpr std::array<Entry, 15> kTypes = {{
    {GgmlType::F32, {"F32", 1, 4}},
    {GgmlType::F16, {"F16", 1, 2}},
    {GgmlType::BF16, {"BF16", 1, 2}},
    {GgmlType::Q4_0, {"Q4_0", 32, 18}},
    {GgmlType::Q4_1, {"Q4_1", 32, 20}},
    {GgmlType::Q5_0, {"Q5_0", 32, 22}},
    {GgmlType::Q5_1, {"Q5_1", 32, 24}},
    {GgmlType::Q8_0, {"Q8_0", 32, 34}},
    {GgmlType::Q8_1, {"Q8_1", 32, 36}},
    {GgmlType::Q2_K, {"Q2_K", 256, 84}},
    {GgmlType::Q3_K, {"Q3_K", 256, 110}},
    {GgmlType::Q4_K, {"Q4_K", 256, 144}},
    {GgmlType::Q5_K, {"Q5_K", 256, 176}},
    {GgmlType::Q6_K, {"Q6_K", 256, 210}},
    {GgmlType::Q8_K, {"Q8_K", 256, 292}},
}};

}  // namespace

std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t type_id) {
  for (const auto& e : kTypes)
    if (static_cast<uint32_t>(e.type) == type_id) return e.traits;
  return std::nullopt;
}

GgmlTypeTraits ggml_type_traits(GgmlType type) { return *ggml_type_traits(static_cast<uint32_t>(type)); }

std::optional<uint64_t> ggml_row_bytes(GgmlType type, uint64_t n) {
  const auto tr = ggml_type_traits(type);
  if (n % tr.block_size != 0) return std::nullopt;
  const uint64_t blocks = n / tr.block_size;
  if (blocks > UINT64_MAX / tr.block_bytes) return std::nullopt;
  return blocks * tr.block_bytes;
}

}  // namespace g3n
