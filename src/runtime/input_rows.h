// The input of a sequence: rows that are token ids or n_embd-wide vectors (image and audio soft tokens),
// as llama_batch's rows are tokens or embeddings. One position per row, whatever its kind.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace g3n {

// The token id stored for a vector row (never a valid id, so it cannot be mistaken for one).
inline constexpr int32_t kVectorRow = -1;

// A non-owning view of consecutive rows. A plain token span converts to it.
struct RowsView {
  std::span<const int32_t> tokens;         // one per row; kVectorRow where the row is a vector
  std::span<const float* const> vectors;   // empty (all tokens) or one per row: null for a token row
  int64_t width = 0;                       // floats per vector (0 when there are none)

  RowsView() = default;
  RowsView(std::span<const int32_t> t) : tokens(t) {}  // NOLINT: implicit, token rows are the common case
  RowsView(const std::vector<int32_t>& t) : tokens(t) {}  // NOLINT
  RowsView(std::vector<int32_t>&&) = delete;  // a view of a temporary would dangle
  RowsView(std::span<const int32_t> t, std::span<const float* const> v, int64_t w) : tokens(t), vectors(v), width(w) {}

  size_t size() const { return tokens.size(); }
  bool empty() const { return tokens.empty(); }
  const float* vector(size_t i) const { return vectors.empty() ? nullptr : vectors[i]; }
  RowsView subspan(size_t offset, size_t count = std::dynamic_extent) const;
};

// Owning rows. Copies share the vector data (it is immutable once added), so a prompt can be kept by a
// cache slot and a request without copying image rows.
class InputRows {
 public:
  InputRows() = default;
  explicit InputRows(std::span<const int32_t> tokens) { push_tokens(tokens); }

  void push_token(int32_t id);
  void push_tokens(std::span<const int32_t> ids);
  // Appends data.size() / width vector rows (copied once); every vector of one InputRows has the same width.
  void push_vectors(std::span<const float> data, int64_t width);

  size_t size() const { return tokens_.size(); }
  bool empty() const { return tokens_.empty(); }
  bool has_vectors() const { return width_ > 0; }
  bool is_vector(size_t i) const { return vectors_[i] != nullptr; }
  int64_t width() const { return width_; }
  std::span<const int32_t> tokens() const { return tokens_; }
  // Per-row identity for prefix reuse: the token id, or a content hash of the vector (top bit set), so a
  // cached prefix holding soft rows is reused only if the vectors are identical.
  std::span<const uint64_t> keys() const { return keys_; }
  RowsView view() const&;
  RowsView view() const&& = delete;  // a view of a temporary would dangle

 private:
  std::vector<int32_t> tokens_;
  std::vector<const float*> vectors_;  // per row: null for tokens
  std::vector<uint64_t> keys_;
  std::vector<std::shared_ptr<const std::vector<float>>> chunks_;  // owns what vectors_ points into
  int64_t width_ = 0;
};

// Key of a token row (the id) and of a vector row (a 64-bit content hash with the top bit set).
inline uint64_t token_key(int32_t id) { return static_cast<uint32_t>(id); }
uint64_t vector_key(const float* v, int64_t width);

// Length of the common prefix of two key sequences.
size_t common_prefix(std::span<const uint64_t> a, std::span<const uint64_t> b);

}  // namespace g3n
