// Wide prefill batches (16 tokens and more): the AMX set multiplies whole tiles of 16 tokens x 16 rows and
// leaves the last tokens (nt % 16) and rows (nr % 16) to the VNNI kernels, and every set blocks long
// prompts into token groups. Every value must still be the bits of the one-pair vec_dot: tile calls at odd
// offsets and widths, matmul on row-major and on packed matrices (1 and 2 threads), and the saturated
// blocks whose integer sums are largest. Runs every kernel set the CPU has and prints them; on a CPU with
// AMX the set `avx512vnni+amx` is among them.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/file.h"
#include "base/thread_pool.h"
#include "kernel_rows_util.h"
#include "kernel_sets_util.h"
#include "kernels/cpu_features.h"
#include "kernels/matmul.h"
#include "kernels/packed_panels.h"
#include "kernels/vec_dot.h"

namespace g3n {
namespace {

struct Wide {
  GgmlType t;
  int64_t rows, n, toks;
  uint64_t wrb, arb;
  std::vector<uint8_t> w, qa;
  std::vector<float> x;
};

Wide make_wide(GgmlType t, int64_t rows, int64_t n, int64_t toks, std::mt19937& rng, bool saturated = false) {
  Wide c{t, rows, n, toks, *ggml_row_bytes(t, uint64_t(n)), act_row_bytes(t, n), {}, {}, {}};
  c.w = random_rows(t, rows, n, rng);
  if (saturated) saturate_k_quant_rows(t, c.w, t == GgmlType::Q6_K ? int8_t(-128) : int8_t(127));
  c.x = randn(rng, n * toks);
  if (saturated)  // activations at +-127 after quantization: constant rows of alternating sign
    for (int64_t i = 0; i < toks; ++i)
      for (int64_t k = 0; k < n; ++k) c.x[size_t(i * n + k)] = i % 2 ? -3.0f : 2.0f;
  c.qa.resize(c.arb * uint64_t(toks));
  for (int64_t i = 0; i < toks; ++i) quantize_act_row(t, c.x.data() + i * n, c.qa.data() + i * c.arb, n);
  return c;
}

std::vector<float> pair_dots(const Wide& c) {
  std::vector<float> want(size_t(c.rows * c.toks));
  for (int64_t i = 0; i < c.toks; ++i)
    for (int64_t r = 0; r < c.rows; ++r)
      want[size_t(i * c.rows + r)] = vec_dot(c.t, c.w.data() + r * c.wrb, c.qa.data() + i * c.arb, c.n);
  return want;
}

TEST(KernelsWideTile, TilesGiveTheDotBitsForEveryWidthAndOffset) {
  std::printf("  cpu: %s\n", cpu_features_string().c_str());
  for_each_kernel_set([&](const std::string&) {
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K}) {
      for (int64_t n : {256, 1024}) {
        std::mt19937 rng(uint32_t(n) + 5);
        const Wide c = make_wide(t, 53, n, 90, rng);  // 3 whole 16-row groups and 5 rows
        const std::vector<float> want = pair_dots(c);
        for (auto [t0, nt] : {std::pair<int64_t, int64_t>{0, 16}, {3, 17}, {0, 32}, {5, 33}, {1, 47}, {0, 90}, {9, 64}}) {
          for (auto [r0, nr] : {std::pair<int64_t, int64_t>{0, 53}, {5, 32}, {0, 16}, {2, 21}}) {
            const int64_t ldo = nr + 3;
            std::vector<float> got(size_t(nt * ldo), -1.0f);
            vec_dot_tile(t, c.w.data() + r0 * c.wrb, c.wrb, nr, c.qa.data() + t0 * c.arb, c.arb, nt, n, got.data(), ldo);
            for (int64_t i = 0; i < nt; ++i) {
              for (int64_t r = 0; r < nr; ++r)
                ASSERT_EQ(bits(got[size_t(i * ldo + r)]), bits(want[size_t((t0 + i) * c.rows + r0 + r)]))
                    << type_name(t) << " n=" << n << " t0=" << t0 << " nt=" << nt << " r0=" << r0 << " nr=" << nr
                    << " at (" << r << "," << i << ")";
              for (int64_t r = nr; r < ldo; ++r) ASSERT_EQ(got[size_t(i * ldo + r)], -1.0f) << "wrote past nr";
            }
          }
        }
      }
    }
  });
}

// matmul over a whole prompt-sized batch, row-major and packed, against the one-pair dots.
void expect_matmul_bits(const Wide& c, const std::vector<float>& want, const std::string& what) {
  const uint64_t rb = c.wrb;
  Mapping buf = map_anonymous(packed_matrix_bytes(c.t, c.n, c.rows), false);
  pack_groups(c.t, c.w.data(), rb, c.n, 0, c.rows / kPackRows, static_cast<uint8_t*>(buf.data()));
  const WeightMatrix rows{c.t, c.n, c.rows, rb, c.w.data()};
  WeightMatrix packed = rows;
  packed.data = static_cast<const uint8_t*>(buf.data());
  packed.packed = true;
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (const WeightMatrix* w : {&rows, static_cast<const WeightMatrix*>(&packed)}) {
      MatmulScratch s;
      for (int64_t T : {int64_t(16), int64_t(31), int64_t(48), c.toks}) {
        std::vector<float> got(size_t(T * c.rows), -1.0f);
        matmul(*w, c.x.data(), c.n, T, got.data(), c.rows, pool, MatmulMode::Fast, s);
        for (int64_t i = 0; i < T * c.rows; ++i)
          ASSERT_EQ(bits(got[size_t(i)]), bits(want[size_t(i)]))
              << what << (w->packed ? " packed" : " rows") << " threads " << threads << " tokens " << T << " at " << i;
      }
    }
  }
}

TEST(KernelsWideTile, MatmulOverLongBatchesGivesTheDotBits) {
  for_each_kernel_set([&](const std::string&) {
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K}) {
      std::mt19937 rng(3);
      const Wide c = make_wide(t, 64, 2048, 300, rng);  // beyond one 240-token block of the AMX set
      expect_matmul_bits(c, pair_dots(c), type_name(t));
    }
  });
}

// Rows as wide as the FFN down projections (E2B 8192, E4B 16384 values): the AMX set's A tiles of a
// prompt-sized call exceed its L2 budget there, so it runs the blocks in chunks and carries each token's
// accumulators from one chunk to the next (through the output).
TEST(KernelsWideTile, WideRowsInChunksGiveTheDotBits) {
  for_each_kernel_set([&](const std::string&) {
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K}) {
      std::mt19937 rng(7);
      const Wide c = make_wide(t, 32, 16384, 300, rng);
      expect_matmul_bits(c, pair_dots(c), type_name(t) + " wide");
    }
  });
}

// Every quant and scale at its top against activations at +-127: the largest group sums a tile multiply
// accumulates (Q4_K 32 x 15 x 127, Q6_K 16 x 63 x 127) and the largest scaled totals.
TEST(KernelsWideTile, SaturatedBlocksKeepTheBits) {
  for_each_kernel_set([&](const std::string&) {
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K}) {
      std::mt19937 rng(13);
      const Wide c = make_wide(t, 32, 1024, 50, rng, true);
      expect_matmul_bits(c, pair_dots(c), type_name(t) + " saturated");
    }
  });
}

}  // namespace
}  // namespace g3n
