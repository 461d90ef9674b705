// Writes a handful of small valid GGUF files (every value type, nested arrays, each tensor type, non-default
// alignment) as the fuzzer's starting corpus. Usage: gguf_fuzz_seeds OUT_DIR
#include <cstdio>
#include <string>
#include <vector>

#include "gguf/gguf.h"

using namespace g3n;

namespace {

GgufValue val(GgufValueType t) {
  GgufValue v;
  v.type = t;
  return v;
}

void save(const std::string& dir, const std::string& name, const GgufWriter& w) {
  const auto bytes = w.to_bytes();
  const std::string path = dir + "/" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) {
    std::perror(path.c_str());
    std::exit(1);
  }
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];

  GgufWriter empty;
  save(dir, "empty.gguf", empty);

  GgufWriter scalars;
  for (uint32_t t = 0; t <= 12; ++t) {
    if (t == 9) continue;
    GgufValue v = val(static_cast<GgufValueType>(t));
    v.u = t == 7 ? 1 : t;
    v.i = -static_cast<int64_t>(t);
    v.f = 0.5 * t;
    v.s = "s" + std::to_string(t);
    scalars.set("k." + std::to_string(t), v);
  }
  save(dir, "scalars.gguf", scalars);

  GgufWriter arrays;
  arrays.set_array_i32("a.i32", {1, -2, 3});
  arrays.set_array_f32("a.f32", {0.5f, 1.5f});
  arrays.set_array_bool("a.bool", {true, false});
  arrays.set_array_string("tokenizer.ggml.tokens", {"<pad>", "<eos>", "<bos>", "\xe2\x96\x81hi"});
  arrays.set_array_u32("a.empty", {});
  GgufValue nested = val(GgufValueType::ARRAY);
  GgufValue inner = val(GgufValueType::ARRAY);
  inner.array = GgufArray(GgufValueType::UINT8, {val(GgufValueType::UINT8), val(GgufValueType::UINT8)});
  nested.array = GgufArray(GgufValueType::ARRAY, {inner, inner});
  arrays.set("a.nested", nested);
  save(dir, "arrays.gguf", arrays);

  GgufWriter tensors;
  tensors.set_string("general.architecture", "gemma3n");
  tensors.set_u32("gemma3n.block_count", 1);
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K,
                     GgmlType::Q6_K}) {
    const auto tr = ggml_type_traits(t);
    tensors.add_tensor("blk.0." + std::string(tr.name), t, {static_cast<int64_t>(tr.block_size), 1},
                       std::vector<uint8_t>(tr.block_bytes, 0x5a));
  }
  save(dir, "tensors.gguf", tensors);

  GgufWriter aligned(64);
  aligned.set_string("general.name", "aligned");
  aligned.add_tensor("a", GgmlType::F32, {3, 2}, std::vector<uint8_t>(24, 1));
  aligned.add_tensor("b", GgmlType::F16, {5, 1, 1, 2}, std::vector<uint8_t>(20, 2));
  save(dir, "aligned64.gguf", aligned);
  return 0;
}
