// Writes .safetensors files (the format src/tools/safetensors.h reads), streaming each tensor's bytes so
// multi-GB shards never sit in memory. Used to build test and benchmark checkpoints.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace g3n {

class SafetensorsWriter {
 public:
  // fill(first, n, dst) writes elements [first, first + n) of the tensor (flat, row-major), n * dtype-size
  // bytes; the writer asks for a bounded run at a time, and with several threads calls it concurrently
  // for disjoint runs (a filler must not keep state between calls).
  using Filler = std::function<void(uint64_t first, uint64_t n, uint8_t* dst)>;
  void add(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape, Filler fill);
  void add_bytes(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape,
                 std::vector<uint8_t> bytes);
  void set_metadata(const std::string& key, const std::string& value);
  // Writes the file atomically (temporary file + rename); throws on an I/O error. Streaming: two
  // buffers of a bounded size, one filled by n_threads threads while the other is written.
  void write(const std::string& path, int n_threads = 1) const;
  uint64_t data_bytes() const;

 private:
  struct Entry {
    std::string name, dtype;
    std::vector<int64_t> shape;
    uint64_t bytes;
    uint32_t elem_bytes;
    Filler fill;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace g3n
