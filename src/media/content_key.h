// A file's identity for the encoders' caches: a hash of its bytes (and length), so a conversation that sends
// the same image or recording again is not encoded again.
#pragma once
#include <cstdint>
#include <span>

namespace g3n {

uint64_t content_key(std::span<const uint8_t> bytes);

}  // namespace g3n
