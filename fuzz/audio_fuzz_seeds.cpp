// Writes the synthetic part of audio_fuzz's seed corpus into DIR: short tones in every container and codec
// libsndfile can write that decode_audio accepts (WAV PCM/float/ADPCM/G.711/GSM, RF64, FLAC, Ogg Vorbis and
// Opus, MP3), at several rates and channel counts, so the fuzzer starts inside each decoder.
#include <sndfile.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace {

struct Seed {
  const char* name;
  int format;
  int rate;
  int channels;
};

const Seed kSeeds[] = {
    {"pcm16-16k-mono.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1},
    {"pcm8-8k-stereo.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_U8, 8000, 2},
    {"pcm24-48k-mono.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_24, 48000, 1},
    {"pcm32-22k-3ch.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_32, 22050, 3},
    {"float-44k-stereo.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 44100, 2},
    {"double-16k-mono.wav", SF_FORMAT_WAV | SF_FORMAT_DOUBLE, 16000, 1},
    {"ima-adpcm-16k.wav", SF_FORMAT_WAV | SF_FORMAT_IMA_ADPCM, 16000, 1},
    {"ms-adpcm-11k-stereo.wav", SF_FORMAT_WAV | SF_FORMAT_MS_ADPCM, 11025, 2},
    {"ulaw-8k.wav", SF_FORMAT_WAV | SF_FORMAT_ULAW, 8000, 1},
    {"alaw-8k.wav", SF_FORMAT_WAV | SF_FORMAT_ALAW, 8000, 1},
    {"gsm-8k.wav", SF_FORMAT_WAV | SF_FORMAT_GSM610, 8000, 1},
    {"wavex-pcm16-4ch.wav", SF_FORMAT_WAVEX | SF_FORMAT_PCM_16, 16000, 4},
    {"rf64-pcm16.wav", SF_FORMAT_RF64 | SF_FORMAT_PCM_16, 16000, 1},
    {"pcm16-16k.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16000, 1},
    {"pcm24-96k-stereo.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_24, 96000, 2},
    {"vorbis-16k.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 16000, 1},
    {"opus-48k-stereo.opus", SF_FORMAT_OGG | SF_FORMAT_OPUS, 48000, 2},
    {"mp3-16k.mp3", SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, 16000, 1},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  int written = 0;
  for (const Seed& s : kSeeds) {
    SF_INFO info{};
    info.samplerate = s.rate;
    info.channels = s.channels;
    info.format = s.format;
    if (!sf_format_check(&info)) continue;  // a codec this libsndfile was built without
    const std::string path = std::string(argv[1]) + "/" + s.name;
    SNDFILE* f = sf_open(path.c_str(), SFM_WRITE, &info);
    if (!f) {
      std::fprintf(stderr, "%s: %s\n", s.name, sf_strerror(nullptr));
      continue;
    }
    // 0.1 s of a 440 Hz tone, each channel at its own amplitude: small files, real content.
    const int frames = s.rate / 10;
    std::vector<float> buf(static_cast<size_t>(frames) * s.channels);
    for (int i = 0; i < frames; ++i)
      for (int c = 0; c < s.channels; ++c)
        buf[static_cast<size_t>(i) * s.channels + c] = static_cast<float>(0.5 / (c + 1) * std::sin(2 * M_PI * 440 * i / s.rate));
    sf_writef_float(f, buf.data(), frames);
    sf_close(f);
    ++written;
  }
  std::printf("%d audio seeds in %s\n", written, argv[1]);
  return written > 0 ? 0 : 1;
}
