// The audio half of `g3n bench`: one audio file through decoding, the feature extractor, the audio tower
// and the embedder, every 30 s chunk, timed per stage, with the arithmetic the tower did.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "media/stage_times.h"

namespace g3n {
struct AudioConfig;

struct AudioBenchParams {
  std::string mmproj;  // projector GGUF with an audio tower
  std::string audio;   // audio file (any format media/audio.h decodes)
  int n_threads = 1;
  bool fast = true;    // AudioOptions::fast
  int repeats = 3;
  int64_t n_embd = 0;  // the text model's width, checked against the projector's (0: not checked)
};

// Seconds per part of the encode: "sscp", "conformer", "embedder" (summed over the chunks).
using AudioStageTimes = StageTimes;

struct AudioBenchRun {
  double decode_s = 0;    // decode + down-mix + resample (the file's bytes already in memory)
  double features_s = 0;  // log-mel features of every chunk
  double encode_s = 0;    // tower + embedder, every chunk
  AudioStageTimes stages;
};

struct AudioBenchResult {
  double load_s = 0;         // opening and binding the audio tower (once)
  double audio_seconds = 0;  // length of the 16 kHz waveform
  int64_t chunks = 0;        // 30 s chunks encoded
  int64_t tokens = 0;        // rows the decoder receives: 188 per chunk
  double flops = 0;          // multiply-adds x 2 of one encode (towers and embedder, every chunk)
  std::vector<AudioBenchRun> runs;
  // Medians over the runs.
  double decode_s = 0, features_s = 0, encode_s = 0;
  AudioStageTimes stages;
};

// Floating-point operations (2 per multiply-add) of one chunk whose conformer runs over t2 frames: the
// SSCP convolutions and projection, every layer's matrices, attention and depthwise convolution, and the
// embedder's soft rows.
double audio_encode_flops(const AudioConfig& c, int64_t t1, int64_t t2, int64_t tokens);

// Loads the audio tower and runs params.repeats decode + features + encode passes of the file. Throws
// std::runtime_error (MediaError for the file) on a bad file or a width mismatch.
AudioBenchResult run_audio_benchmark(const AudioBenchParams& params);

}  // namespace g3n
