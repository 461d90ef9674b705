#include "base/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <random>
#include <sstream>

namespace g3n {

IoError::IoError(const std::string& what, const std::filesystem::path& path, int err)
    : std::runtime_error(what + " " + path.string() + ": " + std::strerror(err)), err_(err) {}

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);  // nothing useful to do with an error here: use close() to see it
  fd_ = fd;
}

int UniqueFd::close() noexcept {
  const int rc = fd_ >= 0 ? ::close(fd_) : 0;
  fd_ = -1;
  return rc;
}

Mapping& Mapping::operator=(Mapping&& o) noexcept {
  if (this != &o) {
    reset();
    addr_ = o.addr_, len_ = o.len_;
    o.addr_ = nullptr, o.len_ = 0;
  }
  return *this;
}

void Mapping::reset() noexcept {
  if (addr_) ::munmap(addr_, len_);
  addr_ = nullptr, len_ = 0;
}

Mapping map_anonymous(size_t bytes, bool huge_pages) {
  if (bytes == 0) return Mapping();
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  if (huge_pages) ::madvise(p, bytes, MADV_HUGEPAGE);
#else
  (void)huge_pages;
#endif
  return Mapping(p, bytes);
}

bool transparent_huge_pages() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  if (!std::getline(in, line)) return false;
  return line.find("[always]") != std::string::npos || line.find("[madvise]") != std::string::npos;
}

size_t fault_in_huge_pages(const Mapping& m) {
  constexpr size_t kHuge = size_t{2} << 20, kRun = 4;
  constexpr double kSlowMs = 1.0;
  const auto begin = reinterpret_cast<uintptr_t>(m.data()), end = begin + m.size();
  uintptr_t p = (begin + kHuge - 1) / kHuge * kHuge;  // the first whole huge page
  while (p + kRun * kHuge <= end) {
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < kRun; ++i) *reinterpret_cast<volatile uint8_t*>(p + i * kHuge) = 0;
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    p += kRun * kHuge;
    if (ms > kSlowMs * kRun) {
#ifdef MADV_NOHUGEPAGE
      ::madvise(reinterpret_cast<void*>(p), end - p, MADV_NOHUGEPAGE);
#endif
      break;
    }
  }
  return p > begin ? static_cast<size_t>(std::min(p, end) - begin) : 0;
}

namespace {
// G3N_HUGE_PAGES: '0' never, '1' always (however slowly they come), anything else or unset: the default.
char huge_pages_setting() {
  const char* v = std::getenv("G3N_HUGE_PAGES");
  return v && (std::string(v) == "0" || std::string(v) == "1") ? v[0] : 'd';
}
}  // namespace

bool weight_buffers_use_huge_pages() { return huge_pages_setting() != '0' && transparent_huge_pages(); }

Mapping map_weight_buffer(size_t bytes, size_t* huge_bytes) {
  const bool huge = weight_buffers_use_huge_pages();
  Mapping m = map_anonymous(bytes, huge);
  const size_t n = !huge ? 0 : huge_pages_setting() == '1' ? m.size() : fault_in_huge_pages(m);
  if (huge_bytes) *huge_bytes = n;
  return m;
}

void fsync_dir(const std::filesystem::path& dir) {
  UniqueFd fd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd) ::fsync(fd.get());
}

namespace {
std::string random_hex() {
  // A fresh random_device per call: no shared generator state between threads.
  std::random_device rd;
  std::ostringstream os;
  os << std::hex << rd() << rd();
  return os.str();
}
}  // namespace

AtomicFileWriter::AtomicFileWriter(std::filesystem::path target, mode_t mode) : target_(std::move(target)) {
  const std::filesystem::path dir = target_.parent_path();
  // O_EXCL with a random name: two writers of the same target never share a temporary file.
  for (int attempt = 0; attempt < 100 && !fd_; ++attempt) {
    std::string name = ".";  // appended, not `"." + ...`: GCC 12 warns falsely (-Wrestrict) on that
    name += target_.filename().string();
    name += ".tmp-";
    name += random_hex();
    tmp_ = dir / name;
    fd_.reset(::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
    if (!fd_ && errno != EEXIST) throw IoError("cannot create", tmp_, errno);
  }
  if (!fd_) throw IoError("cannot create", tmp_, EEXIST);
}

AtomicFileWriter::~AtomicFileWriter() { discard(); }

void AtomicFileWriter::discard() noexcept {
  if (done_) return;
  done_ = true;
  fd_.reset();
  ::unlink(tmp_.c_str());
}

void AtomicFileWriter::write(const void* data, size_t n) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    // At most 1 GiB per call: Linux writes no more than about 2 GiB at once anyway.
    const ssize_t w = ::write(fd_.get(), p, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw IoError("cannot write", tmp_, errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicFileWriter::commit() { commit(target_); }

void AtomicFileWriter::commit(const std::filesystem::path& target) {
  try {
    if (::fsync(fd_.get()) != 0) throw IoError("cannot sync", tmp_, errno);
    if (fd_.close() != 0) throw IoError("cannot close", tmp_, errno);
    if (::rename(tmp_.c_str(), target.c_str()) != 0) throw IoError("cannot rename into", target, errno);
  } catch (...) {
    discard();
    throw;
  }
  done_ = true;
  fsync_dir(target.parent_path());  // failure leaves a complete file, so it is not an error
}

void write_file_atomic(const std::filesystem::path& path, std::string_view data, mode_t mode) {
  AtomicFileWriter w(path, mode);
  w.write(data.data(), data.size());
  w.commit();
}

}  // namespace g3n
