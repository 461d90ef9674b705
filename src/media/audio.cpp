#include "media/audio.h"

#include <sndfile.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "audio/clip.h"
#include "media/audio_format.h"
#include "media/audio_memory_io.h"
#include "media/audio_resample.h"
#include "media/image.h"

namespace g3n {

namespace {

constexpr sf_count_t kBlockFrames = 4096;  // decoded per read: 1 MiB at the most channels

struct SndfileCloser {
  void operator()(SNDFILE* f) const { sf_close(f); }
};

// libsndfile's messages may hold newlines (its parse log); what() stays one line.
std::string one_line(const char* text) {
  std::string s = text ? text : "unknown error";
  std::replace_if(s.begin(), s.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  while (!s.empty() && s.back() == ' ') s.pop_back();
  if (s.size() > 200) s.resize(200);
  return s;
}

// Channels averaged in float64 then rounded to float32 (the fixture's down-mix); one channel is copied.
void down_mix(const float* interleaved, sf_count_t frames, int channels, std::vector<float>& mono) {
  mono.resize(static_cast<size_t>(frames));
  for (sf_count_t i = 0; i < frames; ++i) {
    const float* frame = interleaved + i * channels;
    if (channels == 1) {
      mono[i] = frame[0];
      continue;
    }
    double sum = 0.0;
    for (int c = 0; c < channels; ++c) sum += frame[c];
    mono[i] = static_cast<float>(sum / channels);
  }
}

}  // namespace

Waveform decode_audio(std::span<const uint8_t> bytes, const AudioLimits& limits) {
  if (bytes.empty()) throw MediaError("audio: empty file");
  const AudioContainer container = sniff_audio_container(bytes);
  if (container == AudioContainer::Unknown) throw MediaError("audio: unknown format (not WAV, FLAC, Ogg or MP3)");

  MemoryAudioFile mem{bytes, 0};
  SF_VIRTUAL_IO io = memory_audio_io();
  SF_INFO info{};
  std::unique_ptr<SNDFILE, SndfileCloser> file(sf_open_virtual(&io, SFM_READ, &info, &mem));
  if (!file)
    throw MediaError(std::string("audio: cannot decode ") + audio_container_name(container) + ": " + one_line(sf_strerror(nullptr)));
  if (!sndfile_format_matches(container, info.format & SF_FORMAT_TYPEMASK))
    throw MediaError(std::string("audio: ") + audio_container_name(container) + " header but a different format inside");
  if (info.samplerate < kMinAudioRate || info.samplerate > kMaxAudioRate)
    throw MediaError("audio: sample rate " + std::to_string(info.samplerate) + " Hz outside " + std::to_string(kMinAudioRate) +
                     "-" + std::to_string(kMaxAudioRate));
  if (info.channels < 1 || info.channels > kMaxAudioChannels)
    throw MediaError("audio: " + std::to_string(info.channels) + " channels (1-" + std::to_string(kMaxAudioChannels) + " supported)");
  // The most source frames allowed; a header that states more is refused before anything is decoded.
  const double max_frames_d = std::floor(limits.max_seconds * info.samplerate);
  const sf_count_t max_frames = max_frames_d < 9e18 ? static_cast<sf_count_t>(std::max(0.0, max_frames_d)) : SF_COUNT_MAX;
  const bool length_known = info.frames >= 0 && info.frames < SF_COUNT_MAX;
  char too_long[64];
  std::snprintf(too_long, sizeof too_long, "audio: longer than %g s", limits.max_seconds);
  if (length_known && info.frames > max_frames) throw MediaError(too_long);

  Waveform wave;
  wave.source_rate = info.samplerate;
  wave.source_channels = info.channels;
  std::unique_ptr<Resampler16k> resampler;
  if (info.samplerate != kAudioSampleRate) resampler = std::make_unique<Resampler16k>(info.samplerate);
  if (length_known)  // one allocation when the header is right; a lying header costs at most the limit
    wave.samples.reserve(static_cast<size_t>(std::ceil(static_cast<double>(info.frames) * kAudioSampleRate / info.samplerate)) + 64);

  std::vector<float> block(static_cast<size_t>(kBlockFrames * info.channels));
  std::vector<float> mono;
  sf_count_t total = 0;
  for (;;) {
    const sf_count_t got = sf_readf_float(file.get(), block.data(), kBlockFrames);
    if (got <= 0) break;
    total += got;
    if (total > max_frames) throw MediaError(too_long);
    down_mix(block.data(), got, info.channels, mono);
    for (float v : mono)
      if (!std::isfinite(v)) throw MediaError("audio: non-finite sample");
    if (resampler)
      resampler->push(mono, wave.samples);
    else
      wave.samples.insert(wave.samples.end(), mono.begin(), mono.end());
  }
  if (sf_error(file.get()) != SF_ERR_NO_ERROR)
    throw MediaError(std::string("audio: corrupt ") + audio_container_name(container) + ": " + one_line(sf_strerror(file.get())));
  if (total == 0) throw MediaError("audio: no samples");
  if (resampler) {
    resampler->finish(wave.samples);
    // Finite input this large in magnitude can overflow in the filter; the extractor would refuse it.
    for (float v : wave.samples)
      if (!std::isfinite(v)) throw MediaError("audio: samples too large to resample");
  }
  // A few frames at a high rate round to no 16 kHz sample at all.
  if (wave.samples.empty()) throw MediaError("audio: shorter than one sample at 16 kHz");
  return wave;
}

std::vector<uint8_t> read_audio_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw MediaError("audio: cannot open " + path);
  const std::streamoff size = in.tellg();
  if (size < 0) throw MediaError("audio: cannot read " + path);
  if (static_cast<uint64_t>(size) > kMaxAudioFileBytes)
    throw MediaError("audio: " + path + " is larger than " + std::to_string(kMaxAudioFileBytes >> 20) + " MiB");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), size)) throw MediaError("audio: cannot read " + path);
  return bytes;
}

bool has_audio_extension(const std::string& path) {
  const size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || path.find('/', dot) != std::string::npos) return false;
  std::string ext = path.substr(dot + 1);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* known : {"wav", "flac", "ogg", "oga", "opus", "mp3"})
    if (ext == known) return true;
  return false;
}

}  // namespace g3n
