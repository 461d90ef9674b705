// Decode row kernels (vec_dot_rows_fn: several weight rows against one activation row, four at a time):
// every set that has one gives vec_dot's bits for every row, whatever the row count (groups of four and
// every remainder), the row length and the row stride; and matmul's one-token path uses them.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "base/thread_pool.h"
#include "kernel_rows_util.h"
#include "kernel_sets_util.h"
#include "kernels/matmul.h"
#include "kernels/vec_dot.h"

namespace g3n {
namespace {

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

TEST(KernelsDecodeRows, RowsGiveTheDotBits) {
  int with_rows = 0;
  for_each_kernel_set([&](const std::string& set) {
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q8_0, GgmlType::F32}) {
      const VecDotRowsFn rows = vec_dot_rows_fn(t);
      if (!rows) continue;
      ++with_rows;
      SCOPED_TRACE(set + " " + type_name(t));
      std::mt19937 rng(11);
      for (int64_t n : {256, 512, 2048, 2560}) {
        const uint64_t rb = *ggml_row_bytes(t, uint64_t(n));
        const int64_t max_rows = 33;
        // A stride larger than the row (a MatFormer column view) as well as the packed one.
        for (uint64_t stride : {rb, rb + 2 * rb / (uint64_t(n) / 256)}) {
          const auto w = random_rows(t, max_rows * int64_t(stride / rb + 1), n, rng);
          const auto x = randn(rng, n);
          std::vector<uint8_t> act(act_row_bytes(t, n));
          quantize_act_row(t, x.data(), act.data(), n);
          for (int64_t nr : {1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 33}) {
            std::vector<float> got(size_t(nr), -1.0f);
            rows(w.data(), stride, nr, act.data(), n, got.data());
            for (int64_t r = 0; r < nr; ++r) {
              const float want = vec_dot(t, w.data() + uint64_t(r) * stride, act.data(), n);
              ASSERT_TRUE(same_bits(got[size_t(r)], want))
                  << "n " << n << " stride " << stride << " rows " << nr << " row " << r << ": " << got[size_t(r)] << " vs " << want;
            }
          }
        }
      }
    }
  });
  std::printf("  (set, type) pairs with decode rows: %d\n", with_rows);
}

// matmul with one token takes the rows path where there is one: same bits as a dot per row, any thread count.
TEST(KernelsDecodeRows, MatmulOneTokenMatchesDots) {
  for_each_kernel_set([&](const std::string&) {
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K}) {
      std::mt19937 rng(5);
      const int64_t n_in = 512, n_out = 1003;
      const uint64_t rb = *ggml_row_bytes(t, uint64_t(n_in));
      const auto w = random_rows(t, n_out, n_in, rng);
      const auto x = randn(rng, n_in);
      std::vector<uint8_t> act(act_row_bytes(t, n_in));
      quantize_act_row(t, x.data(), act.data(), n_in);
      const WeightMatrix m{t, n_in, n_out, rb, w.data()};
      for (int threads : {1, 2, 3}) {
        ThreadPool pool(threads);
        MatmulScratch scratch;
        std::vector<float> y(static_cast<size_t>(n_out), 0.0f);
        matmul(m, x.data(), n_in, 1, y.data(), n_out, pool, MatmulMode::Fast, scratch);
        for (int64_t r = 0; r < n_out; ++r)
          ASSERT_TRUE(same_bits(y[size_t(r)], vec_dot(t, w.data() + uint64_t(r) * rb, act.data(), n_in)))
              << type_name(t) << " threads " << threads << " row " << r;
      }
    }
  });
}

}  // namespace
}  // namespace g3n
