// Shared helpers for tests that compare logits with the fixtures' goldens.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace g3n::test {

inline std::string fixtures_dir() { return G3N_FIXTURES_DIR; }
inline std::string tiny_dir() { return fixtures_dir() + "/gemma3n-tiny"; }

inline std::vector<float> read_f32_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  f.seekg(0, std::ios::end);
  const auto size = static_cast<size_t>(f.tellg());
  f.seekg(0);
  std::vector<float> v(size / 4);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
  return v;
}

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open " + path);
  return nlohmann::json::parse(f);
}

struct Prompt {
  std::string name;
  std::vector<int32_t> tokens;
};

inline std::vector<Prompt> tiny_prompts() {
  std::vector<Prompt> out;
  const auto doc = read_json(tiny_dir() + "/prompts.json");  // named: a temporary would dangle in the loop
  for (const auto& p : doc["prompts"])
    out.push_back({p["name"].get<std::string>(), p["tokens"].get<std::vector<int32_t>>()});
  return out;
}

inline int argmax(const float* x, int n) { return static_cast<int>(std::max_element(x, x + n) - x); }

// Gap between the largest and second-largest value of a row.
inline float top2_margin(const float* x, int n) {
  float a = -INFINITY, b = -INFINITY;
  for (int i = 0; i < n; ++i) {
    if (x[i] > a) { b = a; a = x[i]; }
    else if (x[i] > b) b = x[i];
  }
  return a - b;
}

struct RowStats {
  double max_abs = 0;
  double sum_sq = 0;
  size_t n = 0;
  int rows = 0;
  int top1_equal = 0;
  int top1_checked = 0;   // rows whose golden margin reaches the tie threshold
  int top1_mismatch = 0;  // of those, rows whose argmax differs
  void add_row(const float* got, const float* want, int n_vocab, float tie_margin) {
    for (int i = 0; i < n_vocab; ++i) {
      const double d = std::fabs(static_cast<double>(got[i]) - want[i]);
      max_abs = std::max(max_abs, std::isnan(d) ? INFINITY : d);
      sum_sq += d * d;
    }
    n += n_vocab;
    ++rows;
    const bool same = argmax(got, n_vocab) == argmax(want, n_vocab);
    top1_equal += same;
    if (top2_margin(want, n_vocab) >= tie_margin) {
      ++top1_checked;
      top1_mismatch += !same;
    }
  }
  double rms() const { return n ? std::sqrt(sum_sq / n) : 0; }
  double top1_rate() const { return rows ? static_cast<double>(top1_equal) / rows : 0; }
};

}  // namespace g3n::test
