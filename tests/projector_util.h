// Test projectors made from the tiny fixture projector.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "gguf/gguf.h"

namespace g3n::test {

// The projector at `src` with its input projection narrowed (or widened) to text width `width`, all 0.01:
// a valid tower for a text model of n_embd `width`.
inline void write_narrow_projector(const std::string& src, const std::string& out, int64_t width) {
  const GgufFile f = GgufFile::open(src);
  GgufWriter w(f.alignment());
  for (const auto& kv : f.metadata())
    if (kv.key != "general.alignment") w.set(kv.key, kv.value);
  w.set_u32("clip.vision.projection_dim", uint32_t(width));
  for (const auto& t : f.tensors()) {
    if (t.name == "mm.input_projection.weight") {
      std::vector<float> v(size_t(t.ne[0] * width), 0.01f);
      std::vector<uint8_t> bytes(v.size() * sizeof(float));
      std::memcpy(bytes.data(), v.data(), bytes.size());
      w.add_tensor(t.name, GgmlType::F32, {t.ne[0], width}, std::move(bytes));
    } else {
      const uint8_t* d = f.tensor_data(t);
      w.add_tensor(t.name, t.type, t.ne, std::vector<uint8_t>(d, d + t.nbytes));
    }
  }
  w.write(out);
}

}  // namespace g3n::test
