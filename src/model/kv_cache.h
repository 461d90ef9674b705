// Key/value cache for the layers that own one (docs/model.md §6). Global layers keep every position of the
// context; sliding layers keep a ring of window + n_batch - 1 slots, enough for a batch of n_batch
// new tokens whose first query still sees window - 1 older keys. KV-sharing layers own nothing:
// they read their source layer's entries.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "model/gemma3n_config.h"

namespace g3n {

enum class KvType { F32, F16 };

class KvCache {
 public:
  KvCache(const Gemma3nConfig& config, int n_ctx, int n_batch, KvType type);

  KvType type() const { return type_; }
  int n_ctx() const { return n_ctx_; }
  int kv_width() const { return kv_width_; }
  // Slots of the given KV-owning layer.
  int slots(int layer) const { return layers_[layer].slots; }
  int slot_of(int layer, int64_t pos) const { return static_cast<int>(pos % layers_[layer].slots); }

  // Stores one token's K and V (kv_width floats each) for position pos.
  void store(int layer, int64_t pos, const float* k, const float* v) {
    write(layer, pos, k, v);
    stored(pos);
  }
  // store in two parts, so that a pass's rows can be written by several threads (each row its own slot)
  // and the cache's one counter then updated by one.
  void write(int layer, int64_t pos, const float* k, const float* v);
  void stored(int64_t pos) { high_water_ = std::max(high_water_, pos); }

  // One KV head's rows of a KV-owning layer: slots rows of head_dim values, back to back, in the cache type
  // (the F16 or the F32 accessors). A layer holds its heads one after another ([head][slot][Dh]), so the keys
  // a query head reads are one run of memory that the hardware prefetchers stream (docs/model.md §6).
  const uint16_t* k16(int layer, int head) const { return layers_[layer].k16.data() + plane(layer, head); }
  const uint16_t* v16(int layer, int head) const { return layers_[layer].v16.data() + plane(layer, head); }
  const float* k32(int layer, int head) const { return layers_[layer].k32.data() + plane(layer, head); }
  const float* v32(int layer, int head) const { return layers_[layer].v32.data() + plane(layer, head); }
  int head_dim() const { return head_dim_; }

  // Whether every position of [max(0, n - window), n) is still held by each sliding ring, so that
  // evaluation can resume at position n (prefix reuse).
  bool can_resume_at(int64_t n) const;
  void clear() { high_water_ = -1; }

  uint64_t bytes() const;

 private:
  size_t plane(int layer, int head) const { return static_cast<size_t>(head) * layers_[layer].slots * head_dim_; }

  struct Layer {
    int slots = 0;
    std::vector<float> k32, v32;
    std::vector<uint16_t> k16, v16;
  };
  KvType type_;
  int n_ctx_;
  int kv_width_;
  int head_dim_;
  int window_;
  std::vector<Layer> layers_;  // indexed by layer; empty for non-owning layers
  std::vector<bool> sliding_;
  int64_t high_water_ = -1;  // highest position stored since the last clear (-1 if none)
};

}  // namespace g3n
