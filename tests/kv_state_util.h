// Comparing two sequences' KV states byte for byte (the speculative and rollback tests).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "model/kv_cache.h"
#include "model/model.h"
#include "runtime/batch_engine.h"

namespace g3n {

// Every K and V the next query of a sequence of n positions can read, compared byte for byte.
inline void expect_same_kv(const Model& m, const Sequence& a, const Sequence& b, int64_t n) {
  const Gemma3nConfig& c = m.config();
  const KvCache& x = a.kv_cache();
  const KvCache& y = b.kv_cache();
  ASSERT_EQ(x.type(), y.type());
  const size_t w = static_cast<size_t>(x.head_dim());
  for (int l = 0; l < c.n_layer_kv; ++l) {
    const int64_t lo = c.is_sliding[l] ? std::max<int64_t>(0, n - c.sliding_window) : 0;
    for (int64_t p = lo; p < n; ++p)
      for (int h = 0; h < c.n_head_kv; ++h) {
        const size_t ox = static_cast<size_t>(x.slot_of(l, p)) * w, oy = static_cast<size_t>(y.slot_of(l, p)) * w;
        if (x.type() == KvType::F32) {
          ASSERT_EQ(0, std::memcmp(x.k32(l, h) + ox, y.k32(l, h) + oy, w * 4)) << "K layer " << l << " pos " << p << " head " << h;
          ASSERT_EQ(0, std::memcmp(x.v32(l, h) + ox, y.v32(l, h) + oy, w * 4)) << "V layer " << l << " pos " << p << " head " << h;
        } else {
          ASSERT_EQ(0, std::memcmp(x.k16(l, h) + ox, y.k16(l, h) + oy, w * 2)) << "K layer " << l << " pos " << p << " head " << h;
          ASSERT_EQ(0, std::memcmp(x.v16(l, h) + ox, y.v16(l, h) + oy, w * 2)) << "V layer " << l << " pos " << p << " head " << h;
        }
      }
  }
}

}  // namespace g3n
