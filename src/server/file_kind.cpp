#include "server/file_kind.h"

#include <cstdint>
#include <fstream>
#include <string>

namespace g3n::server {
namespace {

namespace fs = std::filesystem;

// The first bytes of a file (fewer when it is shorter; none when it cannot be read).
std::string head_of(const fs::path& p, size_t n) {
  std::ifstream in(p, std::ios::binary);
  std::string s(n, '\0');
  in.read(s.data(), std::streamsize(n));
  s.resize(size_t(in.gcount()));
  return s;
}

}  // namespace

bool is_gguf_file(const fs::path& p) { return head_of(p, 4) == "GGUF"; }

bool is_safetensors_file(const fs::path& p) {
  const std::string h = head_of(p, 9);
  if (h.size() < 9 || h[8] != '{') return false;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(h[size_t(i)]);
  std::error_code ec;
  const auto size = fs::file_size(p, ec);
  return !ec && n > 0 && n <= size - 8;
}

}  // namespace g3n::server
