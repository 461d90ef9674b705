#include "tools/convert.h"

#include <cstring>
#include <stdexcept>
#include <vector>

#include "quant/quantize.h"

namespace g3n {

void convert_gguf(const GgufFile& in, const std::string& out_path,
                  const std::function<GgmlType(const GgufTensorInfo&)>& type_for, int file_type,
                  const std::vector<GgufKV>& set_kvs) {
  GgufWriter w(in.alignment());
  for (const auto& kv : in.metadata()) {
    if (kv.key == "general.alignment") continue;  // the writer sets it
    w.set(kv.key, kv.value);
  }
  if (file_type >= 0) w.set_u32("general.file_type", static_cast<uint32_t>(file_type));
  for (const auto& kv : set_kvs) w.set(kv.key, kv.value);
  for (const auto& t : in.tensors()) {
    const GgmlType to = type_for(t);
    const uint8_t* src = in.tensor_data(t);
    const int64_t n_in = t.ne.empty() ? 1 : t.ne[0];
    const uint64_t src_row = *ggml_row_bytes(t.type, static_cast<uint64_t>(n_in));
    if (to == t.type) {
      w.add_tensor_lazy(t.name, to, t.ne, [src, src_row](int64_t r0, int64_t n, uint8_t* dst) {
        std::memcpy(dst, src + r0 * src_row, static_cast<size_t>(n * src_row));
      });
      continue;
    }
    if (!can_quantize(to)) throw std::invalid_argument("cannot encode tensors as " + std::string(ggml_type_traits(to).name));
    const auto dst_row = ggml_row_bytes(to, static_cast<uint64_t>(n_in));
    if (!dst_row) throw std::invalid_argument("tensor '" + t.name + "': row of " + std::to_string(n_in) + " does not fit " + std::string(ggml_type_traits(to).name) + " blocks");
    const GgmlType from = t.type;
    const uint64_t out_row = *dst_row;
    w.add_tensor_lazy(t.name, to, t.ne, [=](int64_t r0, int64_t n, uint8_t* dst) {
      std::vector<float> row(static_cast<size_t>(n_in));
      for (int64_t r = 0; r < n; ++r) {
        dequantize_row(from, src + (r0 + r) * src_row, row.data(), n_in);
        quantize_row(to, row.data(), dst + r * out_row, n_in);
      }
    });
  }
  w.write(out_path);
}

}  // namespace g3n
