// Which container an audio file is, from its first bytes, so that only the formats g3n documents reach
// libsndfile's parsers (it knows some twenty more, old and rarely exercised).
#pragma once
#include <cstdint>
#include <span>

namespace g3n {

enum class AudioContainer { Unknown, Wav, Flac, Ogg, Mp3 };

AudioContainer sniff_audio_container(std::span<const uint8_t> bytes);
const char* audio_container_name(AudioContainer c);

// Whether libsndfile's major format (SF_FORMAT_TYPEMASK bits) is the sniffed container.
bool sndfile_format_matches(AudioContainer c, int sf_major_format);

}  // namespace g3n
