// libsndfile's virtual I/O over bytes already in memory, so decoding never touches the file system.
#pragma once
#include <sndfile.h>

#include <cstdint>
#include <span>

namespace g3n {

// The read position of one in-memory file; lives as long as the SNDFILE opened on it.
struct MemoryAudioFile {
  std::span<const uint8_t> bytes;
  sf_count_t pos = 0;
};

// Callbacks for sf_open_virtual with a MemoryAudioFile* as user data (read only: write returns 0).
SF_VIRTUAL_IO memory_audio_io();

}  // namespace g3n
