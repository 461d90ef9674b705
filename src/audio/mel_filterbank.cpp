#include "audio/mel_filterbank.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace g3n {

namespace {
double hz_to_mel(double hz) { return 2595.0 * std::log10(1.0 + hz / 700.0); }
double mel_to_hz(double mel) { return 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0); }
}  // namespace

std::vector<MelBand> htk_mel_filterbank(int n_mels, int n_fft, double sample_rate, double f_min, double f_max) {
  if (n_mels < 1 || n_fft < 2 || !(sample_rate > 0) || !(f_min >= 0) || !(f_max > f_min))
    throw std::invalid_argument("htk_mel_filterbank: bad parameters");
  // n_mels + 2 edges, linspace in mel as numpy computes it (start + i·step; the last point exactly the end).
  const int n_edges = n_mels + 2;
  const double mel_lo = hz_to_mel(f_min), mel_hi = hz_to_mel(f_max);
  const double step = (mel_hi - mel_lo) / (n_edges - 1);
  std::vector<double> edge_hz(n_edges);
  for (int i = 0; i < n_edges; ++i) edge_hz[i] = mel_to_hz(i == n_edges - 1 ? mel_hi : mel_lo + i * step);

  const int n_bins = n_fft / 2 + 1;
  std::vector<MelBand> bands(n_mels);
  for (int m = 0; m < n_mels; ++m) {
    const double lo = edge_hz[m], mid = edge_hz[m + 1], hi = edge_hz[m + 2];
    MelBand& band = bands[m];
    band.first_bin = -1;
    for (int k = 0; k < n_bins; ++k) {
      const double nu = k * sample_rate / n_fft;
      const double w = std::max(0.0, std::min((nu - lo) / (mid - lo), (hi - nu) / (hi - mid)));
      if (w <= 0.0) {
        if (band.first_bin >= 0) break;  // a triangle is one contiguous run of bins
        continue;
      }
      if (band.first_bin < 0) band.first_bin = k;
      band.weights.push_back(w);
    }
    // A band narrower than one bin spacing may hold no bin at all: its sum is 0 (then the log floor).
    if (band.first_bin < 0) band.first_bin = 0;
  }
  return bands;
}

}  // namespace g3n
