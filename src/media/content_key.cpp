#include "media/content_key.h"

#include <functional>
#include <string_view>

namespace g3n {

uint64_t content_key(std::span<const uint8_t> bytes) {
  const std::string_view view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return static_cast<uint64_t>(std::hash<std::string_view>{}(view)) ^ (static_cast<uint64_t>(bytes.size()) << 1);
}

}  // namespace g3n
