// Reproducible random weights: every value is a pure function of (seed, tensor name, element index),
// so any run of rows can be generated on any thread, in any order, with the same result.
#pragma once
#include <cstdint>
#include <string>

namespace g3n {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline uint64_t name_hash(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// The stream key of one tensor.
inline uint64_t tensor_key(uint64_t seed, const std::string& name) { return splitmix64(seed ^ name_hash(name)); }

// Approximately standard normal: a sum of four 16-bit uniforms (Irwin-Hall), one hash per value.
// Cheap enough for billions of weights; the distribution's exact shape does not matter here.
inline float normal_at(uint64_t key, uint64_t index) {
  const uint64_t r = splitmix64(key + index * 0xD1B54A32D192ED03ull);
  const double sum = double(r & 0xFFFF) + double((r >> 16) & 0xFFFF) + double((r >> 32) & 0xFFFF) + double(r >> 48);
  return static_cast<float>((sum - 2.0 * 65535.0) / (65536.0 * 0.5773502691896258));
}

}  // namespace g3n
