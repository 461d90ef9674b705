#include "media/audio_format.h"

#include <sndfile.h>

#include <cstring>

namespace g3n {

namespace {
bool starts_with(std::span<const uint8_t> b, size_t at, const char* magic) {
  const size_t n = std::strlen(magic);
  return b.size() >= at + n && std::memcmp(b.data() + at, magic, n) == 0;
}
}  // namespace

AudioContainer sniff_audio_container(std::span<const uint8_t> b) {
  if ((starts_with(b, 0, "RIFF") || starts_with(b, 0, "RIFX") || starts_with(b, 0, "RF64") || starts_with(b, 0, "BW64")) &&
      starts_with(b, 8, "WAVE"))
    return AudioContainer::Wav;
  if (starts_with(b, 0, "fLaC")) return AudioContainer::Flac;
  if (starts_with(b, 0, "OggS")) return AudioContainer::Ogg;
  // An ID3v2 tag, or a bare MPEG audio frame header: 11 sync bits, then a valid version and layer.
  if (starts_with(b, 0, "ID3")) return AudioContainer::Mp3;
  if (b.size() >= 2 && b[0] == 0xFF && (b[1] & 0xE0) == 0xE0 && (b[1] & 0x18) != 0x08 && (b[1] & 0x06) != 0)
    return AudioContainer::Mp3;
  return AudioContainer::Unknown;
}

const char* audio_container_name(AudioContainer c) {
  switch (c) {
    case AudioContainer::Wav: return "WAV";
    case AudioContainer::Flac: return "FLAC";
    case AudioContainer::Ogg: return "Ogg";
    case AudioContainer::Mp3: return "MP3";
    case AudioContainer::Unknown: break;
  }
  return "unknown";
}

bool sndfile_format_matches(AudioContainer c, int major) {
  switch (c) {
    case AudioContainer::Wav: return major == SF_FORMAT_WAV || major == SF_FORMAT_WAVEX || major == SF_FORMAT_RF64;
    case AudioContainer::Flac: return major == SF_FORMAT_FLAC;
    case AudioContainer::Ogg: return major == SF_FORMAT_OGG;
    case AudioContainer::Mp3: return major == SF_FORMAT_MPEG;
    case AudioContainer::Unknown: break;
  }
  return false;
}

}  // namespace g3n
