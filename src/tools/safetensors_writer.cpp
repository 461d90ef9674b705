#include "tools/safetensors_writer.h"

#include <algorithm>
#include <future>
#include <memory>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "base/thread_pool.h"
#include "tools/safetensors.h"

namespace g3n {

void SafetensorsWriter::add(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape,
                            Filler fill) {
  const uint32_t eb = safetensors_dtype_bytes(dtype);
  if (eb == 0) throw std::invalid_argument("safetensors: unknown dtype " + dtype);
  uint64_t n = eb;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  entries_.push_back({name, dtype, shape, n, eb, std::move(fill)});
}

void SafetensorsWriter::add_bytes(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape,
                                  std::vector<uint8_t> bytes) {
  auto data = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  const uint32_t eb = safetensors_dtype_bytes(dtype);
  add(name, dtype, shape, [data, name, eb](uint64_t first, uint64_t n, uint8_t* dst) {
    if ((first + n) * eb > data->size()) throw std::invalid_argument("safetensors: tensor " + name + " has too few bytes");
    std::copy(data->begin() + static_cast<ptrdiff_t>(first * eb), data->begin() + static_cast<ptrdiff_t>((first + n) * eb), dst);
  });
  if (entries_.back().bytes != data->size()) throw std::invalid_argument("safetensors: tensor " + name + " has the wrong byte count");
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

uint64_t SafetensorsWriter::data_bytes() const {
  uint64_t n = 0;
  for (const auto& e : entries_) n += e.bytes;
  return n;
}

void SafetensorsWriter::write(const std::string& path, int n_threads) const {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata_.empty()) h["__metadata__"] = metadata_;
  uint64_t off = 0;
  for (const auto& e : entries_) {
    h[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {off, off + e.bytes}}};
    off += e.bytes;
  }
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');  // data starts 8-byte aligned, as the reference writer pads
  AtomicFileWriter w(path);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
  w.write(len, 8);
  w.write(header.data(), header.size());
  // Runs of up to kChunkElems elements: filled in parallel into one buffer while the previous buffer is
  // written by a thread of its own, so generation and I/O overlap and memory stays at two buffers.
  constexpr uint64_t kChunkElems = uint64_t(1) << 22;
  ThreadPool pool(std::max(1, n_threads));
  std::vector<uint8_t> bufs[2];
  std::future<void> pending;
  int cur = 0;
  for (const auto& e : entries_) {
    const uint64_t n = e.bytes / e.elem_bytes;
    for (uint64_t first = 0; first < n; first += kChunkElems) {
      const uint64_t k = std::min(kChunkElems, n - first);
      std::vector<uint8_t>& buf = bufs[cur];
      buf.resize(static_cast<size_t>(k * e.elem_bytes));
      // Parts of at least 64 Ki elements, so short tensors stay one call.
      const int64_t parts = static_cast<int64_t>(std::min<uint64_t>(uint64_t(pool.size()) * 4, (k + 65535) / 65536));
      pool.parallel_for_dynamic(parts, [&](int64_t b, int64_t end, int) {
        for (int64_t j = b; j < end; ++j) {
          const uint64_t lo = k * static_cast<uint64_t>(j) / static_cast<uint64_t>(parts);
          const uint64_t hi = k * static_cast<uint64_t>(j + 1) / static_cast<uint64_t>(parts);
          if (hi > lo) e.fill(first + lo, hi - lo, buf.data() + lo * e.elem_bytes);
        }
      }, 1);
      if (pending.valid()) pending.get();  // the other buffer is free again (rethrows a write error)
      pending = std::async(std::launch::async, [&w, &buf] { w.write(buf.data(), buf.size()); });
      cur ^= 1;
    }
  }
  if (pending.valid()) pending.get();
  w.commit();
}

}  // namespace g3n
