// The KV cache's layout: each KV head's rows back to back ([head][slot][Dh]), sliding layers as rings.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "model/kv_cache.h"
#include "quant/fp16.h"

namespace g3n {
namespace {

Gemma3nConfig small_config() {
  Gemma3nConfig c;
  c.n_layer = 3;
  c.n_layer_kv = 2;  // layer 2 shares: owns nothing
  c.n_head_kv = 3;
  c.head_dim = 8;
  c.sliding_window = 4;
  c.is_sliding = {true, false, true};
  return c;
}

// K of (pos, head, i) and V its negation: every value different, exactly representable in F16.
float key_value(int64_t pos, int h, int i) { return static_cast<float>(pos * 32 + h * 8 + i) / 8.0f; }

std::vector<float> row(int64_t pos, const Gemma3nConfig& c, float sign) {
  std::vector<float> r(static_cast<size_t>(c.n_head_kv) * c.head_dim);
  for (int h = 0; h < c.n_head_kv; ++h)
    for (int i = 0; i < c.head_dim; ++i) r[static_cast<size_t>(h) * c.head_dim + i] = sign * key_value(pos, h, i);
  return r;
}

void store_positions(KvCache& kv, const Gemma3nConfig& c, int64_t n) {
  for (int64_t p = 0; p < n; ++p)
    for (int l = 0; l < c.n_layer_kv; ++l) kv.store(l, p, row(p, c, 1).data(), row(p, c, -1).data());
}

TEST(KvCache, EachHeadsRowsAreOneRun) {
  const Gemma3nConfig c = small_config();
  const int n_ctx = 16, n_batch = 2;
  for (KvType type : {KvType::F32, KvType::F16}) {
    KvCache kv(c, n_ctx, n_batch, type);
    ASSERT_EQ(kv.head_dim(), 8);
    ASSERT_EQ(kv.slots(0), c.sliding_window + n_batch - 1);  // the ring
    ASSERT_EQ(kv.slots(1), n_ctx);
    const int64_t n = 11;  // wraps layer 0's ring of 5 twice
    store_positions(kv, c, n);
    for (int l = 0; l < c.n_layer_kv; ++l) {
      const int64_t lo = c.is_sliding[l] ? n - kv.slots(l) : 0;  // what the ring still holds
      for (int h = 0; h < c.n_head_kv; ++h)
        for (int64_t p = lo; p < n; ++p) {
          const int64_t at = static_cast<int64_t>(kv.slot_of(l, p)) * c.head_dim;  // rows head_dim apart
          for (int i = 0; i < c.head_dim; ++i) {
            const float k = type == KvType::F32 ? kv.k32(l, h)[at + i] : fp16_to_fp32(kv.k16(l, h)[at + i]);
            const float v = type == KvType::F32 ? kv.v32(l, h)[at + i] : fp16_to_fp32(kv.v16(l, h)[at + i]);
            ASSERT_EQ(k, key_value(p, h, i)) << "layer " << l << " head " << h << " pos " << p << " i " << i;
            ASSERT_EQ(v, -key_value(p, h, i)) << "layer " << l << " head " << h << " pos " << p << " i " << i;
          }
        }
      // Head h's plane starts where head h-1's last slot ends.
      if (type == KvType::F32)
        EXPECT_EQ(kv.k32(l, 1) - kv.k32(l, 0), static_cast<int64_t>(kv.slots(l)) * c.head_dim);
      else
        EXPECT_EQ(kv.k16(l, 2) - kv.k16(l, 1), static_cast<int64_t>(kv.slots(l)) * c.head_dim);
    }
    const uint64_t per_value = type == KvType::F32 ? 4 : 2;
    EXPECT_EQ(kv.bytes(), uint64_t(kv.slots(0) + kv.slots(1)) * 2 * c.n_head_kv * c.head_dim * per_value);
  }
}

TEST(KvCache, ResumeNeedsTheRingsToHoldTheWindow) {
  const Gemma3nConfig c = small_config();
  KvCache kv(c, 16, 2, KvType::F16);
  store_positions(kv, c, 9);                 // ring of 5 holds positions 4..8
  EXPECT_TRUE(kv.can_resume_at(0));
  EXPECT_TRUE(kv.can_resume_at(9));          // needs 5..8
  EXPECT_TRUE(kv.can_resume_at(8));          // needs 4..7
  EXPECT_FALSE(kv.can_resume_at(7));         // needs 3..6: 3 was overwritten by 8
  EXPECT_FALSE(kv.can_resume_at(10));        // position 9 was never stored
  kv.clear();
  EXPECT_FALSE(kv.can_resume_at(1));
}

}  // namespace
}  // namespace g3n
