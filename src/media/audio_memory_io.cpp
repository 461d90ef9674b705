#include "media/audio_memory_io.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>

namespace g3n {

namespace {

MemoryAudioFile& file_of(void* user) { return *static_cast<MemoryAudioFile*>(user); }

sf_count_t get_filelen(void* user) { return static_cast<sf_count_t>(file_of(user).bytes.size()); }

// Like lseek: any position from 0 up is allowed (reads past the end return nothing); a negative or
// overflowing target is refused and the position kept. Header fields drive these offsets, so they are
// arbitrary under fuzzing.
sf_count_t seek(sf_count_t offset, int whence, void* user) {
  MemoryAudioFile& f = file_of(user);
  sf_count_t base = 0;
  switch (whence) {
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = f.pos; break;
    case SEEK_END: base = static_cast<sf_count_t>(f.bytes.size()); break;
    default: return -1;
  }
  sf_count_t target = 0;
  if (__builtin_add_overflow(base, offset, &target) || target < 0) return -1;
  f.pos = target;
  return f.pos;
}

sf_count_t read(void* dst, sf_count_t count, void* user) {
  MemoryAudioFile& f = file_of(user);
  const auto size = static_cast<sf_count_t>(f.bytes.size());
  if (count <= 0 || f.pos >= size) return 0;
  const sf_count_t n = std::min(count, size - f.pos);
  std::memcpy(dst, f.bytes.data() + f.pos, static_cast<size_t>(n));
  f.pos += n;
  return n;
}

sf_count_t write(const void*, sf_count_t, void*) { return 0; }

sf_count_t tell(void* user) { return file_of(user).pos; }

}  // namespace

SF_VIRTUAL_IO memory_audio_io() { return SF_VIRTUAL_IO{get_filelen, seek, read, write, tell}; }

}  // namespace g3n
