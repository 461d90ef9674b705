// Audio files -> the 16 kHz mono float waveform the audio tower's feature extractor takes.
// Decoding by libsndfile (WAV, FLAC, OGG/Vorbis, Opus, MP3 where the library has it), channels averaged in
// double precision, then libsoxr at its very-high-quality setting to 16 kHz (fixture gemma3n-audio-tiny
// README §3, §7.3). Every error is a MediaError (media/image.h) whose what() is one line.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace g3n {

// Larger audio files are refused before decoding.
inline constexpr uint64_t kMaxAudioFileBytes = uint64_t{256} << 20;

struct Waveform {
  std::vector<float> samples;  // 16 kHz mono
  int source_rate = 0;         // the file's sample rate
  int source_channels = 0;
  double seconds() const { return static_cast<double>(samples.size()) / 16000.0; }
};

// Decodes, down-mixes and resamples a whole file held in memory. Throws MediaError on a corrupt, truncated,
// empty or unknown file, an absurd rate or channel count, or a decoded length over the limit.
Waveform decode_audio(std::span<const uint8_t> bytes);

// The file's bytes (MediaError when it cannot be read or is larger than kMaxAudioFileBytes).
std::vector<uint8_t> read_audio_file(const std::string& path);

// Whether a path names an audio file by its extension (.wav .flac .ogg .oga .opus .mp3), for paths typed in
// prompts.
bool has_audio_extension(const std::string& path);

}  // namespace g3n
