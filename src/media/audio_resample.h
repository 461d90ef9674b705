// Streaming resampling of mono float audio to 16 kHz with libsoxr at its very-high-quality setting
// (SOXR_VHQ: 28-bit precision, linear phase), the library form of the SoX `rate -v` the fixture used.
#pragma once
#include <cstddef>
#include <span>
#include <vector>

struct soxr;

namespace g3n {

class Resampler16k {
 public:
  explicit Resampler16k(double input_rate);  // throws MediaError when soxr refuses the rate
  ~Resampler16k();
  Resampler16k(const Resampler16k&) = delete;
  Resampler16k& operator=(const Resampler16k&) = delete;

  // Resamples the next input block, appending what soxr outputs so far to out.
  void push(std::span<const float> in, std::vector<float>& out);
  // Ends the input and appends the rest (soxr's total is round(n · 16000 / input_rate)).
  void finish(std::vector<float>& out);

 private:
  void drain(const float* in, size_t n, std::vector<float>& out);
  soxr* soxr_ = nullptr;
  double ratio_;
};

}  // namespace g3n
