// libFuzzer target for the GGUF reader. Anything parsed is touched (every value, every tensor byte), and
// every accepted file is re-serialized with GgufWriter and parsed again: both must agree exactly.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "gguf/gguf.h"

using namespace g3n;

namespace {

uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001b3ull; }

uint64_t hash_value(const GgufValue& v, uint64_t h) {
  h = mix(h, static_cast<uint64_t>(v.type));
  h = mix(h, v.u);
  h = mix(h, static_cast<uint64_t>(v.i));
  uint64_t bits;
  std::memcpy(&bits, &v.f, 8);
  h = mix(h, bits);
  for (unsigned char c : v.s) h = mix(h, c);
  (void)v.is_integer();
  (void)v.is_float();
  if (const auto i = v.as_int()) h = mix(h, static_cast<uint64_t>(*i));
  if (const auto d = v.as_double()) h = mix(h, std::isnan(*d) ? 1 : 0);
  (void)gguf_value_type_name(v.type);
  if (v.type == GgufValueType::ARRAY) {
    h = mix(h, static_cast<uint64_t>(v.elem_type()));
    for (const GgufValue& e : v.array) {
      if (e.type != v.elem_type()) __builtin_trap();  // reader must enforce homogeneous arrays
      h = hash_value(e, h);
    }
  }
  return h;
}

bool same_value(const GgufValue& a, const GgufValue& b) {
  if (a.type != b.type || a.u != b.u || a.i != b.i || a.s != b.s) return false;
  // sNaN payloads may be quieted by the float<->double round trip; any NaN matches any NaN.
  if (!(a.f == b.f || (std::isnan(a.f) && std::isnan(b.f)))) return false;
  if (a.type != GgufValueType::ARRAY) return true;
  if (a.elem_type() != b.elem_type() || a.array.size() != b.array.size()) return false;
  for (size_t k = 0; k < a.array.size(); ++k)
    if (!same_value(a.array[k], b.array[k])) return false;
  return true;
}

template <typename F>
void accessor(F&& f) {
  try {
    f();
  } catch (const GgufError&) {
    // Wrong-type lookups are expected on arbitrary input.
  }
}

void round_trip(const GgufFile& f) {
  GgufWriter w(f.alignment());
  for (const auto& kv : f.metadata()) w.set(kv.key, kv.value);
  for (const auto& t : f.tensors()) {
    // The writer also enforces llama.cpp's name limit, which the reader does not need.
    if (t.name.empty() || t.name.size() > 63) return;
    const uint8_t* p = f.tensor_data(t);
    w.add_tensor(t.name, t.type, t.ne, std::vector<uint8_t>(p, p + t.nbytes));
  }
  const auto bytes = w.to_bytes();
  const auto g = GgufFile::from_memory(bytes.data(), bytes.size());
  if (g.alignment() != f.alignment() || g.tensors().size() != f.tensors().size()) __builtin_trap();
  // The writer may add general.alignment when the source file used the default implicitly; never the reverse.
  size_t j = 0;
  for (const auto& kv : f.metadata()) {
    if (j >= g.metadata().size() || g.metadata()[j].key != kv.key || !same_value(kv.value, g.metadata()[j].value))
      __builtin_trap();
    ++j;
  }
  for (size_t k = 0; k < f.tensors().size(); ++k) {
    const auto& a = f.tensors()[k];
    const auto& b = g.tensors()[k];
    if (a.name != b.name || a.type != b.type || a.ne != b.ne || a.nbytes != b.nbytes) __builtin_trap();
    if (a.nbytes && std::memcmp(f.tensor_data(a), g.tensor_data(b), a.nbytes) != 0) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const GgufFile f = GgufFile::from_memory(data, size);
    uint64_t h = mix(f.version(), f.alignment());
    h = mix(h, f.data_offset());
    h = mix(h, f.file_size());
    for (const auto& kv : f.metadata()) {
      if (f.find(kv.key) != &kv.value) __builtin_trap();  // keys are unique
      h = hash_value(kv.value, mix(h, kv.key.size()));
      accessor([&] { h = mix(h, static_cast<uint64_t>(f.get_int(kv.key).value_or(0))); });
      accessor([&] { h = mix(h, f.get_float(kv.key).has_value()); });
      accessor([&] { h = mix(h, f.get_bool(kv.key).value_or(false)); });
      accessor([&] { h = mix(h, f.get_string(kv.key).value_or("").size()); });
    }
    for (const auto& t : f.tensors()) {
      if (f.find_tensor(t.name) != &t) __builtin_trap();
      h = mix(h, static_cast<uint64_t>(t.n_elements()));
      h = mix(h, static_cast<uint64_t>(t.rows()));
      h = mix(h, ggml_type_traits(t.type).block_bytes);
      if (t.offset % f.alignment() != 0) __builtin_trap();
      const uint8_t* p = f.tensor_data(t);
      if (t.nbytes && (p < data || p + t.nbytes > data + size)) __builtin_trap();
      for (uint64_t k = 0; k < t.nbytes; ++k) h = mix(h, p[k]);
    }
    round_trip(f);
    volatile uint64_t sink = h;
    (void)sink;
  } catch (const GgufError&) {
    // Rejected input is the expected outcome for most mutations.
  }
  return 0;
}
