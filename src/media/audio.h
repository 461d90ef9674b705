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
// Accepted source formats: 1 kHz (below any speech use) to 768 kHz (the highest rate studio converters
// offer), 1 to 64 channels (beyond the largest broadcast layouts).
inline constexpr int kMinAudioRate = 1000;
inline constexpr int kMaxAudioRate = 768000;
inline constexpr int kMaxAudioChannels = 64;
// Default longest recording: 2 hours, 115.2 M samples (461 MB) at 16 kHz.
inline constexpr double kDefaultMaxAudioSeconds = 7200.0;

struct AudioLimits {
  // Refused from the header's frame count when it states one, before decoding, and while decoding otherwise
  // (a compressed stream may expand far beyond its file size).
  double max_seconds = kDefaultMaxAudioSeconds;
};

struct Waveform {
  std::vector<float> samples;  // 16 kHz mono
  int source_rate = 0;         // the file's sample rate
  int source_channels = 0;
  double seconds() const { return static_cast<double>(samples.size()) / 16000.0; }
};

// Decodes, down-mixes and resamples a whole file held in memory. Throws MediaError on a corrupt, truncated,
// empty or unknown file, an absurd rate or channel count, a non-finite sample, or a duration over the limit.
// Formats are recognised by their magic bytes first (RIFF/RF64 WAVE, fLaC, OggS, ID3 or an MPEG frame
// sync); anything else is refused before libsndfile parses it. A WAV whose data chunk claims more bytes than
// the file holds (a recording cut short) decodes up to its last whole frame, as libsndfile, SoX and
// soundfile do; a decoder error inside a compressed stream is refused.
Waveform decode_audio(std::span<const uint8_t> bytes, const AudioLimits& limits = {});

// The file's bytes (MediaError when it cannot be read or is larger than kMaxAudioFileBytes).
std::vector<uint8_t> read_audio_file(const std::string& path);

// Whether a path names an audio file by its extension (.wav .flac .ogg .oga .opus .mp3), for paths typed in
// prompts.
bool has_audio_extension(const std::string& path);

}  // namespace g3n
