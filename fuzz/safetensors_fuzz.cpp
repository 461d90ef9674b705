// libFuzzer target for the safetensors reader (checkpoints are untrusted input). A SafetensorsError is
// the expected outcome for most inputs; anything else (a crash, a sanitizer report, another exception, a
// tensor whose bytes lie outside the input or disagree with its dtype and shape) is a bug.
#include <cstdint>

#include "tools/safetensors.h"

using namespace g3n;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto f = SafetensorsFile::from_memory(data, size);
    uint64_t prev_end = 0;
    unsigned sum = 0;
    for (const auto& t : f.tensors()) {
      if (t.begin < prev_end || t.end < t.begin) __builtin_trap();
      prev_end = t.end;
      const uint8_t* p = f.data(t);
      const uint64_t n = t.end - t.begin;
      if (p < data || p + n > data + size) __builtin_trap();
      if (static_cast<uint64_t>(t.n_elements()) * t.elem_bytes != n) __builtin_trap();
      for (uint64_t i = 0; i < n; ++i) sum += p[i];  // every byte readable (ASan checks the range)
      if (f.find(t.name) != &t) __builtin_trap();
    }
    (void)sum;
  } catch (const SafetensorsError&) {
  }
  return 0;
}
