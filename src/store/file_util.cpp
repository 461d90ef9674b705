#include "store/file_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace g3n::store {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1)
    throw StoreError("sha256: OpenSSL initialisation failed");
}
void Sha256::update(const void* data, size_t n) { EVP_DigestUpdate(ctx_.get(), data, n); }
std::string Sha256::hex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_.get(), md, &len);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  Sha256 h;
  h.update(data.data(), data.size());
  return h.hex();
}

std::string sha256_file_hex(const std::filesystem::path& path) {
  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw StoreError(errno_message("cannot open", path, errno));
  Sha256 h;
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw StoreError(errno_message("cannot read", path, errno));
    }
    if (n == 0) break;
    h.update(buf.data(), size_t(n));
  }
  return h.hex();
}

bool is_valid_digest(std::string_view d) {
  if (d.size() != 71 || !(d.starts_with("sha256:") || d.starts_with("sha256-"))) return false;
  for (char c : d.substr(7))
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

std::string digest_to_filename(std::string_view d) {
  if (!is_valid_digest(d)) throw StoreError("invalid digest format: " + std::string(d));
  std::string out = "sha256-";
  for (char c : d.substr(7)) out += char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string errno_message(const std::string& what, const std::filesystem::path& path, int err) {
  return what + " " + path.string() + ": " + std::strerror(err);
}

void atomic_write_file(const std::filesystem::path& path, std::string_view data) {
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) throw StoreError("cannot create " + path.parent_path().string() + ": " + ec.message());
  try {
    write_file_atomic(path, data);
  } catch (const IoError& e) {
    throw StoreError(e.what());
  }
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw StoreError(errno_message("cannot open", path, errno));
  std::ostringstream os;
  os << f.rdbuf();
  if (f.bad()) throw StoreError("cannot read " + path.string());
  return os.str();
}

}  // namespace g3n::store
