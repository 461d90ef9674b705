#include "model/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "quant/fp16.h"

namespace g3n {

KvCache::KvCache(const Gemma3nConfig& c, int n_ctx, int n_batch, KvType type)
    : type_(type), n_ctx_(n_ctx), kv_width_(c.n_head_kv * c.head_dim), head_dim_(c.head_dim), window_(c.sliding_window) {
  if (n_ctx <= 0 || n_batch <= 0) throw std::invalid_argument("kv cache: n_ctx and n_batch must be positive");
  layers_.resize(c.n_layer);
  sliding_ = c.is_sliding;
  for (int l = 0; l < c.n_layer_kv; ++l) {
    Layer& L = layers_[l];
    L.slots = c.is_sliding[l] ? std::min(n_ctx, c.sliding_window + n_batch - 1) : n_ctx;
    const size_t n = static_cast<size_t>(L.slots) * kv_width_;
    if (type == KvType::F32) {
      L.k32.assign(n, 0.0f);
      L.v32.assign(n, 0.0f);
    } else {
      L.k16.assign(n, 0);
      L.v16.assign(n, 0);
    }
  }
}

void KvCache::write(int layer, int64_t pos, const float* k, const float* v) {
  Layer& L = layers_[layer];
  const size_t slot = static_cast<size_t>(slot_of(layer, pos)) * head_dim_;
  for (int h = 0; h < kv_width_ / head_dim_; ++h) {
    const size_t off = plane(layer, h) + slot;
    const float* kh = k + static_cast<size_t>(h) * head_dim_;
    const float* vh = v + static_cast<size_t>(h) * head_dim_;
    if (type_ == KvType::F32) {
      std::memcpy(&L.k32[off], kh, sizeof(float) * head_dim_);
      std::memcpy(&L.v32[off], vh, sizeof(float) * head_dim_);
    } else {
      fp32_to_fp16_row(kh, &L.k16[off], head_dim_);
      fp32_to_fp16_row(vh, &L.v16[off], head_dim_);
    }
  }
}

bool KvCache::can_resume_at(int64_t n) const {
  if (n == 0) return true;  // starting over needs nothing from the cache
  if (n < 0 || n > high_water_ + 1) return false;
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (layers_[l].slots == 0 || !sliding_[l]) continue;
    // Positions above n were written after the ones we need; they must not have wrapped onto them.
    if (high_water_ - layers_[l].slots >= std::max<int64_t>(0, n - window_)) return false;
  }
  return true;
}

uint64_t KvCache::bytes() const {
  uint64_t b = 0;
  for (const auto& L : layers_) b += (L.k32.size() + L.v32.size()) * 4 + (L.k16.size() + L.v16.size()) * 2;
  return b;
}

}  // namespace g3n
