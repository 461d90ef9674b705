// The audio constants every part of the audio path shares, and how a long recording is cut into clips.
// Gemma 3n's feature extractor takes 16 kHz mono float samples and at most 30 s of them (fixture
// gemma3n-audio-tiny README §3); g3n encodes a longer recording as consecutive 30 s chunks, each exactly
// like one reference clip, each its own audio block in the prompt (never padded to another clip's length,
// unlike HF's batched processor: trap T13).
#pragma once
#include <cstdint>
#include <span>

namespace g3n {

inline constexpr int kAudioSampleRate = 16000;
inline constexpr int64_t kAudioChunkSamples = 480000;  // 30 s: the extractor's truncation length
inline constexpr int64_t kAudioSoftTokens = 188;       // rows per clip the decoder receives

// The fewest samples that give one feature frame of 513 samples (fewer pad to at most 512).
inline constexpr int64_t kAudioMinSamples = 513;

// Number of 30 s chunks of a recording of n samples: a tail chunk shorter than kAudioMinSamples (under
// 32 ms after the last full 30 s) is dropped, and a recording that short has none.
int64_t audio_chunk_count(int64_t n_samples);

// Chunk k of a recording: samples [480000·k, min(480000·(k+1), n)). Throws std::out_of_range when k is not
// below audio_chunk_count.
std::span<const float> audio_chunk(std::span<const float> samples, int64_t k);

}  // namespace g3n
