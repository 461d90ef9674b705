// The encoders' cache: the last N encodings of files, by content key (media/content_key.h), most recently
// used first, so a conversation that sends the same image or recording again is not encoded again. Not
// locked: the encoder that owns one guards it with its own mutex. T has a `uint64_t key` member.
#pragma once
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>

namespace g3n {

template <class T>
class ContentCache {
 public:
  explicit ContentCache(size_t capacity) : capacity_(capacity) {}

  // The entry with this key, marked most recently used, or null (key 0 is never cached).
  std::shared_ptr<const T> find(uint64_t key) {
    if (key == 0) return nullptr;
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if ((*it)->key == key) {
        entries_.splice(entries_.begin(), entries_, it);
        return entries_.front();
      }
    return nullptr;
  }
  // Adds an entry as the most recently used; the least recently used one goes when over capacity.
  void insert(std::shared_ptr<const T> entry) {
    if (!entry || entry->key == 0) return;
    entries_.push_front(std::move(entry));
    if (entries_.size() > capacity_) entries_.pop_back();
  }
  size_t size() const { return entries_.size(); }

 private:
  size_t capacity_;
  std::list<std::shared_ptr<const T>> entries_;
};

}  // namespace g3n
