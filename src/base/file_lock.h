// An exclusive advisory lock (flock) on a lock file, held while the object lives. The kernel releases
// it when the process dies, kill -9 included, so a lock is never left stale: the next process that
// takes it knows that whoever held it before is gone.
#pragma once
#include <filesystem>
#include <functional>

#include "base/file.h"

namespace g3n {

class FileLock {
 public:
  // Creates `path` if needed and locks it. When another process holds it, calls on_wait (if given)
  // once, then blocks until it is free. Throws IoError when the file cannot be opened or locked.
  explicit FileLock(const std::filesystem::path& path, const std::function<void()>& on_wait = {});
  // Locks only if free; the result is not held() when another process (or open file) holds the lock.
  static FileLock try_lock(const std::filesystem::path& path);
  FileLock(FileLock&&) noexcept = default;
  FileLock& operator=(FileLock&&) noexcept = default;

  bool held() const { return fd_.get() >= 0; }
  const std::filesystem::path& path() const { return path_; }

 private:
  FileLock() = default;
  std::filesystem::path path_;
  UniqueFd fd_;  // closing it releases the lock
};

}  // namespace g3n
