// Owners for POSIX resources (file descriptors, memory mappings) and the one crash-safe file write.
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

namespace g3n {

// A failed system call on a file; the message names the operation, the path and strerror(errno).
class IoError : public std::runtime_error {
 public:
  IoError(const std::string& what, const std::filesystem::path& path, int err);
  int error() const { return err_; }

 private:
  int err_;
};

// Owns one file descriptor and closes it when destroyed.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) noexcept;
  // Closes now and returns close()'s result (0, or -1 with errno set): a write error can surface here.
  int close() noexcept;

 private:
  int fd_ = -1;
};

// Owns one mmap()ed region and unmaps it when destroyed.
class Mapping {
 public:
  Mapping() = default;
  Mapping(void* addr, size_t len) noexcept : addr_(addr), len_(len) {}
  Mapping(Mapping&& o) noexcept : addr_(o.addr_), len_(o.len_) { o.addr_ = nullptr, o.len_ = 0; }
  Mapping& operator=(Mapping&& o) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { reset(); }

  void* data() const { return addr_; }
  size_t size() const { return len_; }
  explicit operator bool() const { return addr_ != nullptr; }
  void reset() noexcept;

 private:
  void* addr_ = nullptr;
  size_t len_ = 0;
};

// A zero-filled private anonymous mapping of `bytes` (read-write), for large buffers that live as long
// as a model (its repacked weights). `huge_pages` asks the kernel for 2 MiB pages (MADV_HUGEPAGE, honoured
// where transparent huge pages are "always" or "madvise"; a hint, never an error): a stream over the buffer
// then crosses a page boundary, where the hardware prefetchers stop, every 2 MiB instead of every 4 KiB,
// and needs 512x fewer TLB entries. Throws std::bad_alloc when the mapping fails.
Mapping map_anonymous(size_t bytes, bool huge_pages);
// Whether map_anonymous(.., true) can get huge pages: transparent huge pages "always" or "madvise"
// (/sys/kernel/mm/transparent_hugepage/enabled; false where the file is missing or says "never").
bool transparent_huge_pages();
// Faults in a map_anonymous(.., true) mapping one 2 MiB page at a time for as long as huge pages come
// quickly, and leaves the rest to 4 KiB pages (MADV_NOHUGEPAGE) from the first run of four pages that took
// over 1 ms a page. Zeroing 2 MiB takes ~0.1 ms on bare metal; on a VM whose host takes freed memory back
// and backs it again on first touch (free page reporting), 3-6 ms, and gigabytes of huge pages would cost
// seconds of load (4 KiB pages come from recently freed memory there). Returns the bytes in huge pages.
size_t fault_in_huge_pages(const Mapping& m);
// Whether buffers for weights may be in huge pages here: transparent huge pages available and not turned
// off by G3N_HUGE_PAGES=0.
bool weight_buffers_use_huge_pages();
// A zero-filled buffer for data that lives as long as a model (weights moved out of the mapping, column
// copies): map_anonymous, in huge pages where weight_buffers_use_huge_pages() and, unless G3N_HUGE_PAGES=1
// takes them however slowly they come, only while they fault in quickly (fault_in_huge_pages). *huge_bytes
// (if given) receives how many bytes from the start are in huge pages (0 without them).
Mapping map_weight_buffer(size_t bytes, size_t* huge_bytes = nullptr);

// fsyncs a directory so that a rename inside it survives a power loss (best effort: some filesystems
// refuse to open directories).
void fsync_dir(const std::filesystem::path& dir);

// Writes a file so that readers, and the file system after a crash, see either the old file or the
// whole new one, never a prefix: the bytes go to a temporary file in the target's directory, which
// commit() fsyncs and renames over the target. Destroyed uncommitted, it removes the temporary file.
class AtomicFileWriter {
 public:
  // Creates the temporary file (the target's directory must exist); throws IoError.
  explicit AtomicFileWriter(std::filesystem::path target, mode_t mode = 0644);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  int fd() const { return fd_.get(); }
  const std::filesystem::path& temp_path() const { return tmp_; }
  // Writes all n bytes (retrying short writes and EINTR); throws IoError.
  void write(const void* data, size_t n);
  // fsync, close, rename onto the target (or onto `target`, which must be in the same directory), then
  // fsync the directory. Throws IoError; the temporary file is removed on failure.
  void commit();
  void commit(const std::filesystem::path& target);
  // Removes the temporary file now (as the destructor would).
  void discard() noexcept;

 private:
  std::filesystem::path target_, tmp_;
  UniqueFd fd_;
  bool done_ = false;
};

// The whole of `data` to `path`, as AtomicFileWriter does; throws IoError.
void write_file_atomic(const std::filesystem::path& path, std::string_view data, mode_t mode = 0644);

}  // namespace g3n
