// The largest single allocation stb_image may make on this thread. Its PNG inflater doubles its output buffer
// for as long as the compressed stream goes on, whatever the header's size says (a 2 MB PNG of a 1x1 image could
// take 2 GB), so the decoder sets a limit from the header before each call (StbAllocLimit) and a larger request
// fails as out of memory.
#pragma once
#include <cstddef>

namespace g3n::media {

size_t& stb_alloc_limit();  // SIZE_MAX: no limit (the default)

// Sets the limit for one decode and restores the previous one.
class StbAllocLimit {
 public:
  explicit StbAllocLimit(size_t bytes) : saved_(stb_alloc_limit()) { stb_alloc_limit() = bytes; }
  ~StbAllocLimit() { stb_alloc_limit() = saved_; }
  StbAllocLimit(const StbAllocLimit&) = delete;
  StbAllocLimit& operator=(const StbAllocLimit&) = delete;

 private:
  size_t saved_;
};

}  // namespace g3n::media
