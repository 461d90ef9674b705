#include "audio/features.h"

#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include "audio/clip.h"
#include "audio/mel_filterbank.h"

namespace g3n {

namespace {

constexpr int kFrameLength = 513;  // one more than the window: HTK pre-emphasis reads s[j-1]
constexpr int kWindowLength = 512;
constexpr int kHop = 160;
constexpr int kFftLength = 1024;
constexpr int kFftBins = kFftLength / 2 + 1;
constexpr int64_t kPadMultiple = 128;
constexpr double kPreemphasis = 0.97;
constexpr double kLogFloor = 1e-5;

struct FftwDeleter {
  void operator()(void* p) const { fftw_free(p); }
};
template <typename T>
using FftwBuffer = std::unique_ptr<T[], FftwDeleter>;

template <typename T>
FftwBuffer<T> fftw_buffer(size_t n) {
  T* p = static_cast<T*>(fftw_malloc(sizeof(T) * n));
  if (!p) throw std::bad_alloc();
  return FftwBuffer<T>(p);
}

// Everything that does not depend on the samples, built once. FFTW's planner is not thread-safe; its
// new-array execute function is, given buffers aligned like the planning ones (fftw_malloc gives both).
struct Tables {
  fftw_plan plan = nullptr;
  float window[kWindowLength];  // float32, as the reference computes it
  std::vector<MelBand> bands;
};

const Tables& tables() {
  static Tables t;
  static std::once_flag once;
  std::call_once(once, [] {
    for (int n = 0; n < kWindowLength; ++n)  // periodic Hann (÷512, not ÷511: trap F1)
      t.window[n] = static_cast<float>(0.5 * (1.0 - std::cos(2.0 * M_PI * n / kWindowLength)));
    t.bands = htk_mel_filterbank(static_cast<int>(kAudioMelBins), kFftLength, kAudioSampleRate, 125.0, 7600.0);
    auto in = fftw_buffer<double>(kFftLength);
    auto out = fftw_buffer<fftw_complex>(kFftBins);
    // FFTW_ESTIMATE: no timing runs, and the arrays are left untouched.
    t.plan = fftw_plan_dft_r2c_1d(kFftLength, in.get(), out.get(), FFTW_ESTIMATE);
    if (!t.plan) throw std::runtime_error("FFTW could not plan a 1024-point real FFT");
  });
  return t;
}

}  // namespace

LogMelFeatures log_mel_features(std::span<const float> samples_16k) {
  const int64_t n = std::min<int64_t>(static_cast<int64_t>(samples_16k.size()), kAudioChunkSamples);
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(samples_16k[i]))
      throw std::invalid_argument("audio sample " + std::to_string(i) + " is not finite");
  const int64_t padded = (n + kPadMultiple - 1) / kPadMultiple * kPadMultiple;
  if (padded < kFrameLength)
    throw std::invalid_argument("audio of " + std::to_string(n) + " samples is shorter than one 513-sample frame after padding");
  const Tables& tab = tables();

  LogMelFeatures out;
  out.frames = (padded - kFrameLength) / kHop + 1;
  out.data.resize(static_cast<size_t>(out.frames * kAudioMelBins));
  out.valid.resize(static_cast<size_t>(out.frames));

  auto fft_in = fftw_buffer<double>(kFftLength);
  auto fft_out = fftw_buffer<fftw_complex>(kFftBins);
  std::fill(fft_in.get() + kWindowLength, fft_in.get() + kFftLength, 0.0);  // zero-padded to 1024
  float frame[kFrameLength];
  double magnitude[kFftBins];
  for (int64_t t = 0; t < out.frames; ++t) {
    const int64_t start = t * kHop;
    // The frame reads the zero padding past n (never past padded: the last frame ends at or before it).
    for (int j = 0; j < kFrameLength; ++j) frame[j] = start + j < n ? samples_16k[start + j] : 0.0f;
    // HTK pre-emphasis: the first sample scaled by 1 − 0.97, s[512] unused (F2). In double (the reference:
    // float32, within 1 ulp of this), so that no finite input overflows before the log.
    fft_in[0] = frame[0] * (1.0 - kPreemphasis) * tab.window[0];
    for (int j = 1; j < kWindowLength; ++j) fft_in[j] = (frame[j] - kPreemphasis * double{frame[j - 1]}) * tab.window[j];
    fftw_execute_dft_r2c(tab.plan, fft_in.get(), fft_out.get());
    for (int k = 0; k < kFftBins; ++k) {
      const double re = fft_out[k][0], im = fft_out[k][1];
      magnitude[k] = std::sqrt(re * re + im * im);  // magnitude, not power (F3)
    }
    float* row = out.data.data() + t * kAudioMelBins;
    for (int64_t m = 0; m < kAudioMelBins; ++m) {
      const MelBand& band = tab.bands[static_cast<size_t>(m)];
      double sum = 0.0;
      for (size_t i = 0; i < band.weights.size(); ++i) sum += magnitude[band.first_bin + i] * band.weights[i];
      row[m] = static_cast<float>(std::log(std::max(sum, kLogFloor)));
    }
    out.valid[static_cast<size_t>(t)] = start < n ? 1 : 0;  // attention_mask at the frame's first sample
  }
  return out;
}

}  // namespace g3n
