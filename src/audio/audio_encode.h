// One clip's log-mel features through the audio tower and the embedder: the 188 rows the decoder takes
// for an audio clip (the audio twin of vision/encode.h).
#pragma once
#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "audio/audio_mmproj.h"
#include "audio/conformer.h"
#include "audio/features.h"

namespace g3n {

class ThreadPool;

// Wall time of one part of an encode: "sscp", "conformer" (all layers), "embedder".
struct AudioStageTime {
  const char* name;
  double seconds;
};

// How to run the tower and the embedder.
//  fast = false: the exact path (f32 activations, weights decoded to f32; README §7.2 exact criteria).
//  fast = true:  the fast path (blocked SIMD GEMMs threaded over the pool, f32 activations; §7.2 fast
//                criterion).
//  cancel:       polled between stages and layers; when it reads true the encode stops with AudioCancelled.
//  times:        receives the per-stage wall times when set (both paths).
struct AudioOptions {
  bool fast = false;
  const std::atomic<bool>* cancel = nullptr;
  std::vector<AudioStageTime>* times = nullptr;
};

// Thrown when AudioOptions::cancel was set during an encode.
class AudioCancelled : public std::runtime_error {
 public:
  AudioCancelled() : std::runtime_error("audio encoding cancelled") {}
};

struct AudioEncoding {
  std::vector<float> encoder_out;  // [n_tokens, D]: the tower output after the reduction (0 where invalid)
  std::vector<uint8_t> valid;      // [n_tokens]
  int64_t n_tokens = 0;
  std::vector<float> rows;         // [188, width]: the rows the decoder receives
  int64_t width = 0;               // text width
};

// Throws std::runtime_error for features that are not [frames >= 1, 128] with one flag per frame, or
// that give more than 188 tokens (over 30 s).
AudioEncoding encode_audio(const AudioMmproj& mm, const LogMelFeatures& features, ThreadPool& pool, const AudioOptions& opts = {},
                           const AudioTap& tap = {});

// Every hard row of the embedder, [n_hard, text width] (row 0 = <end_of_audio>, row n_hard-1 = padding).
std::vector<float> audio_hard_rows(const AudioMmproj& mm, ThreadPool& pool);
// The embedder's row for <end_of_audio> (hard row 0), [text width].
std::vector<float> end_of_audio_row(const AudioMmproj& mm, ThreadPool& pool);
// Throws std::runtime_error unless the projector's text width is the model's embedding width.
void check_audio_projector_width(const AudioMmproj& mm, int64_t n_embd);

}  // namespace g3n
