#include "base/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>

namespace g3n {
namespace {

UniqueFd open_lock_file(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (fd.get() < 0) throw IoError("open lock file", path, errno);
  return fd;
}

// flock(op), retried on EINTR; true when locked.
bool lock(int fd, int op) {
  while (::flock(fd, op) != 0) {
    if (errno == EINTR) continue;
    return false;
  }
  return true;
}

}  // namespace

FileLock::FileLock(const std::filesystem::path& path, const std::function<void()>& on_wait) : path_(path), fd_(open_lock_file(path)) {
  if (lock(fd_.get(), LOCK_EX | LOCK_NB)) return;
  if (errno != EWOULDBLOCK) throw IoError("flock", path, errno);
  if (on_wait) on_wait();
  if (!lock(fd_.get(), LOCK_EX)) throw IoError("flock", path, errno);
}

FileLock FileLock::try_lock(const std::filesystem::path& path) {
  FileLock l;
  l.path_ = path;
  UniqueFd fd = open_lock_file(path);
  if (lock(fd.get(), LOCK_EX | LOCK_NB)) {
    l.fd_ = std::move(fd);
  } else if (errno != EWOULDBLOCK) {
    throw IoError("flock", path, errno);
  }
  return l;
}

}  // namespace g3n
