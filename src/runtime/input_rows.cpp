#include "runtime/input_rows.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

namespace g3n {

RowsView RowsView::subspan(size_t offset, size_t count) const {
  if (offset > size()) throw std::out_of_range("RowsView::subspan past the end");
  const size_t n = count == std::dynamic_extent ? size() - offset : std::min(count, size() - offset);
  return RowsView(tokens.subspan(offset, n), vectors.empty() ? vectors : vectors.subspan(offset, n), width);
}

void InputRows::push_token(int32_t id) {
  if (id < 0) throw std::invalid_argument("negative token id " + std::to_string(id));
  tokens_.push_back(id);
  vectors_.push_back(nullptr);
  keys_.push_back(token_key(id));
}

void InputRows::push_tokens(std::span<const int32_t> ids) {
  for (int32_t id : ids) push_token(id);
}

void InputRows::push_vectors(std::span<const float> data, int64_t width) {
  if (width <= 0 || data.size() % static_cast<size_t>(width) != 0)
    throw std::invalid_argument("vector rows: " + std::to_string(data.size()) + " floats are not a whole number of " +
                                std::to_string(width) + "-wide rows");
  if (width_ != 0 && width != width_)
    throw std::invalid_argument("vector rows of width " + std::to_string(width) + " after rows of width " + std::to_string(width_));
  if (data.empty()) return;
  width_ = width;
  auto chunk = std::make_shared<const std::vector<float>>(data.begin(), data.end());
  for (size_t off = 0; off < chunk->size(); off += static_cast<size_t>(width)) {
    const float* v = chunk->data() + off;
    tokens_.push_back(kVectorRow);
    vectors_.push_back(v);
    keys_.push_back(vector_key(v, width));
  }
  chunks_.push_back(std::move(chunk));
}

RowsView InputRows::view() const& {
  if (!has_vectors()) return RowsView(std::span<const int32_t>(tokens_));
  return RowsView(tokens_, vectors_, width_);
}

uint64_t vector_key(const float* v, int64_t width) {
  // FNV-1a over the bytes, then a final mix; the top bit marks a vector (token keys are < 2^32).
  uint64_t h = 1469598103934665603ull;
  const auto* p = reinterpret_cast<const unsigned char*>(v);
  for (size_t i = 0; i < static_cast<size_t>(width) * sizeof(float); ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h | (1ull << 63);
}

size_t common_prefix(std::span<const uint64_t> a, std::span<const uint64_t> b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

}  // namespace g3n
