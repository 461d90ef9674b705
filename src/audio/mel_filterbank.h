// The HTK-mel triangular filterbank of Gemma 3n's feature extractor (fixture gemma3n-audio-tiny README §3
// step 10), stored sparsely: each band keeps only the FFT bins where its weight is nonzero.
#pragma once
#include <cstdint>
#include <vector>

namespace g3n {

struct MelBand {
  int first_bin = 0;            // weights[i] belongs to FFT bin first_bin + i
  std::vector<double> weights;  // nonzero weights only (float64, as the reference's mel matmul)
};

// bands[m] for m = 0..n_mels-1 over the n_fft/2+1 bins of an n_fft-point FFT at sample_rate, with band edges
// linearly spaced in HTK mel from f_min to f_max. No area normalisation.
std::vector<MelBand> htk_mel_filterbank(int n_mels, int n_fft, double sample_rate, double f_min, double f_max);

}  // namespace g3n
