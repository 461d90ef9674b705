// Tile kernels (vec_dot_tile) and the batched matmul built on them: every output must be BIT-IDENTICAL
// to the single-row vec_dot of the same (row, token) pair, whatever the batch size, the tile position
// or the split of the batch, because the server batches different users' tokens and a greedy answer
// must not depend on its neighbours. The scalar tile twin is held to the scalar vec_dot the same way,
// and the two paths to each other within the vec_dot suite's float-rounding bound.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "kernel_rows_util.h"
#include "kernel_sets_util.h"
#include "kernels/matmul.h"
#include "kernels/sparse_columns.h"
#include "kernels/sparse_columns_slice.h"
#include "kernels/vec_dot.h"
#include "quant/blocks.h"
#include "quant/fp16.h"
#include "quant/quantize.h"

namespace g3n {
namespace {

const GgmlType kTypes[] = {GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q4_0, GgmlType::F16,
                           GgmlType::BF16, GgmlType::F32,  GgmlType::Q8_0, GgmlType::Q4_1, GgmlType::Q5_0,
                           GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K};

struct Case {
  GgmlType t;
  int64_t rows, n, toks;
  uint64_t wrb, arb;
  std::vector<uint8_t> w;
  std::vector<float> x;
  std::vector<uint8_t> qa, qa_ref;  // activations from the dispatched and the scalar quantizer
};

Case make_case(GgmlType t, int64_t rows, int64_t n, int64_t toks, uint32_t seed) {
  std::mt19937 rng(seed);
  Case c{t, rows, n, toks, *ggml_row_bytes(t, uint64_t(n)), act_row_bytes(t, n), {}, {}, {}, {}};
  c.w = random_rows(t, rows, n, rng);
  c.x = randn(rng, n * toks);
  c.qa.resize(c.arb * uint64_t(toks));
  c.qa_ref.resize(c.qa.size());
  for (int64_t i = 0; i < toks; ++i) {
    quantize_act_row(t, c.x.data() + i * n, c.qa.data() + i * c.arb, n);
    quantize_act_row_ref(t, c.x.data() + i * n, c.qa_ref.data() + i * c.arb, n);
  }
  return c;
}

// Lengths: K-quants one and three super-blocks; legacy types 1 and 5 blocks (odd, exercising the
// accumulator pairing); float types with 8- and 1-element tails.
std::vector<int64_t> lengths(GgmlType t) {
  if (is_float(t)) return {7, 300, 2048 + 13};
  if (ggml_type_traits(t).block_size == 256) return {256, 768};
  return {32, 160};
}

class KernelsTile : public ::testing::TestWithParam<GgmlType> {};

TEST_P(KernelsTile, BitIdenticalToVecDotForEveryBatchAndPosition) {
  for_each_kernel_set([&](const std::string&) {
    const GgmlType t = GetParam();
    for (int64_t n : lengths(t)) {
      const int64_t rows = 11, toks = 17;
      const Case c = make_case(t, rows, n, toks, uint32_t(n) * 7 + 1);
      for (bool ref : {false, true}) {
        const std::vector<uint8_t>& qa = ref ? c.qa_ref : c.qa;
        std::vector<float> want(size_t(rows * toks));
        for (int64_t i = 0; i < toks; ++i)
          for (int64_t r = 0; r < rows; ++r)
            want[size_t(i * rows + r)] = ref ? vec_dot_ref(t, c.w.data() + r * c.wrb, qa.data() + i * c.arb, n)
                                             : vec_dot(t, c.w.data() + r * c.wrb, qa.data() + i * c.arb, n);
        // Every batch size, from several first tokens and first rows, and odd row counts.
        for (int64_t nt : {1, 2, 3, 5, 8, 17}) {
          for (int64_t t0 : {int64_t(0), int64_t(1), toks - nt}) {
            if (t0 + nt > toks) continue;
            for (auto [r0, nr] : {std::pair<int64_t, int64_t>{0, rows}, {1, 5}, {3, 1}, {2, 9}, {0, 7}}) {
              const int64_t ldo = nr + 2;
              std::vector<float> got(size_t(nt * ldo), -1.0f);
              auto tile = ref ? vec_dot_tile_ref : vec_dot_tile;
              tile(t, c.w.data() + r0 * c.wrb, c.wrb, nr, qa.data() + t0 * c.arb, c.arb, nt, n, got.data(), ldo);
              for (int64_t i = 0; i < nt; ++i) {
                for (int64_t r = 0; r < nr; ++r) {
                  const float g = got[size_t(i * ldo + r)], e = want[size_t((t0 + i) * rows + r0 + r)];
                  ASSERT_EQ(bits(g), bits(e)) << type_name(t) << (ref ? " ref" : " simd") << " n=" << n
                                              << " n_tok=" << nt << " t0=" << t0 << " r0=" << r0 << " nr=" << nr
                                              << " at (" << r << "," << i << "): " << g << " vs " << e;
                }
                for (int64_t r = nr; r < ldo; ++r) ASSERT_EQ(got[size_t(i * ldo + r)], -1.0f) << "wrote past nr";
              }
            }
          }
        }
      }
    }
  });
}

// Long rows (E4B's 16384-wide FFN input and beyond): the Q4_K/Q6_K prefill kernels unpack row scales
// into a fixed scratch a chunk of rows at a time, and hand rows longer than it to the per-pair dot.
// 45 rows of 16384 span several chunks; 16640 takes the fallback. Bits must still match vec_dot.
TEST(KernelsTileLongRows, BitIdenticalAcrossScratchChunks) {
  for_each_kernel_set([&](const std::string&) {
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q5_K}) {
      for (int64_t n : {int64_t(16384), int64_t(16640)}) {
        const int64_t rows = 45, toks = 9;
        const Case c = make_case(t, rows, n, toks, uint32_t(n) + 3);
        std::vector<float> got(size_t(rows * toks));
        vec_dot_tile(t, c.w.data(), c.wrb, rows, c.qa.data(), c.arb, toks, n, got.data(), rows);
        for (int64_t i = 0; i < toks; ++i)
          for (int64_t r = 0; r < rows; ++r)
            ASSERT_EQ(bits(got[size_t(i * rows + r)]), bits(vec_dot(t, c.w.data() + r * c.wrb, c.qa.data() + i * c.arb, n)))
                << type_name(t) << " n=" << n << " at (" << r << "," << i << ")";
      }
    }
  });
}

// Dispatched tile vs scalar tile twin, both on the same (scalar-quantized) activations: only float
// rounding differs, bounded as in kernels_vec_dot_test.cpp by 2e-6 * sum |w_i * a_i|.
TEST_P(KernelsTile, SimdTileMatchesScalarTwin) {
  for_each_kernel_set([&](const std::string&) {
    const GgmlType t = GetParam();
    for (int64_t n : lengths(t)) {
      const int64_t rows = 5, toks = 8;
      const Case c = make_case(t, rows, n, toks, uint32_t(n) * 3 + 5);
      std::vector<float> simd(size_t(rows * toks)), ref(simd.size());
      vec_dot_tile(t, c.w.data(), c.wrb, rows, c.qa_ref.data(), c.arb, toks, n, simd.data(), rows);
      vec_dot_tile_ref(t, c.w.data(), c.wrb, rows, c.qa_ref.data(), c.arb, toks, n, ref.data(), rows);
      std::vector<float> wf(static_cast<size_t>(n));
      for (int64_t r = 0; r < rows; ++r) {
        dequantize_row(t, c.w.data() + r * c.wrb, wf.data(), n);
        for (int64_t i = 0; i < toks; ++i) {
          double m = 0;  // magnitude with the unquantized activations: within 1% of the quantized ones
          for (int64_t j = 0; j < n; ++j) m += std::fabs(double(wf[size_t(j)]) * c.x[size_t(i * n + j)]);
          EXPECT_NEAR(simd[size_t(i * rows + r)], ref[size_t(i * rows + r)], 2e-6 * m * 1.1 + 1e-30)
              << type_name(t) << " n=" << n << " (" << r << "," << i << ")";
        }
      }
    }
  });
}

INSTANTIATE_TEST_SUITE_P(Kernels, KernelsTile, ::testing::ValuesIn(kTypes),
                         [](const ::testing::TestParamInfo<GgmlType>& i) { return type_name(i.param); });

// The batched fast matmul against one-token matmuls: bit-identical per token for every batch size and
// thread count (what the server's batching relies on); the exact mode too.
TEST(KernelsTileMatmul, BatchedEqualsOneTokenAtATime) {
  for_each_kernel_set([&](const std::string&) {
    ThreadPool pool1(1), pool2(2);
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q5_K, GgmlType::Q4_0, GgmlType::F16,
                       GgmlType::F32, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q3_K}) {
      const int64_t n = is_float(t) ? 272 : 512, rows = 37, toks = 23;
      std::mt19937 rng(11);
      const std::vector<uint8_t> wbytes = random_rows(t, rows, n, rng);
      const std::vector<float> x = randn(rng, n * toks);
      const WeightMatrix w{t, n, rows, *ggml_row_bytes(t, uint64_t(n)), wbytes.data()};
      for (MatmulMode mode : {MatmulMode::Fast, MatmulMode::Exact}) {
        MatmulScratch scratch;
        std::vector<float> single(size_t(rows * toks));
        for (int64_t i = 0; i < toks; ++i)
          matmul(w, x.data() + i * n, n, 1, single.data() + i * rows, rows, pool1, mode, scratch);
        for (ThreadPool* pool : {&pool1, &pool2}) {
          for (int64_t nt : {1, 2, 3, 5, 8, 17, 23}) {
            std::vector<float> y(size_t(nt * rows));
            const int64_t t0 = toks - nt;
            matmul(w, x.data() + t0 * n, n, nt, y.data(), rows, *pool, mode, scratch);
            for (int64_t i = 0; i < nt; ++i)
              for (int64_t r = 0; r < rows; ++r)
                ASSERT_EQ(bits(y[size_t(i * rows + r)]), bits(single[size_t((t0 + i) * rows + r)]))
                    << type_name(t) << (mode == MatmulMode::Fast ? " fast" : " exact") << " n_tok=" << nt
                    << " threads=" << pool->size() << " at (" << r << "," << i << ")";
          }
        }
      }
    }
  });
}

// The masked matmul (sparse FFN up projection): every value a token needs has the bits of the dense
// matmul, every other value is exactly 0, for sparse, dense and empty masks, any batch size and thread
// count, both modes.
TEST(KernelsTileMatmul, MaskedEqualsDenseWhereNeededAndZeroElsewhere) {
  for_each_kernel_set([&](const std::string&) {
    ThreadPool pool1(1), pool2(2);
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q5_K, GgmlType::Q4_0, GgmlType::F16,
                       GgmlType::F32, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q3_K}) {
      const int64_t n = is_float(t) ? 272 : 512, rows = 45, toks = 19;
      std::mt19937 rng(23);
      const std::vector<uint8_t> wbytes = random_rows(t, rows, n, rng);
      const std::vector<float> x = randn(rng, n * toks);
      const WeightMatrix w{t, n, rows, *ggml_row_bytes(t, uint64_t(n)), wbytes.data()};
      for (MatmulMode mode : {MatmulMode::Fast, MatmulMode::Exact}) {
        MatmulScratch scratch;
        std::vector<float> dense(size_t(rows * toks));
        matmul(w, x.data(), n, toks, dense.data(), rows, pool1, mode, scratch);
        for (double density : {0.0, 0.05, 0.3, 1.0}) {
          std::bernoulli_distribution keep(density);
          std::vector<float> need(size_t(rows * toks));
          for (auto& v : need) v = keep(rng) ? 0.5f : 0.0f;
          for (ThreadPool* pool : {&pool1, &pool2}) {
            for (int64_t nt : {1, 2, 5, 8, 9, 19}) {
              std::vector<float> y(size_t(nt * rows), std::nanf(""));
              const int64_t t0 = toks - nt;
              matmul_masked(w, x.data() + t0 * n, n, nt, y.data(), rows, need.data() + t0 * rows, rows, *pool, mode,
                            scratch);
              for (int64_t i = 0; i < nt; ++i)
                for (int64_t r = 0; r < rows; ++r) {
                  const float want = need[size_t((t0 + i) * rows + r)] != 0.0f ? dense[size_t((t0 + i) * rows + r)] : 0.0f;
                  ASSERT_EQ(bits(y[size_t(i * rows + r)]), bits(want))
                      << type_name(t) << (mode == MatmulMode::Fast ? " fast" : " exact") << " density=" << density
                      << " n_tok=" << nt << " threads=" << pool->size() << " at (" << r << "," << i << ")";
                }
            }
          }
        }
      }
    }
  });
}

// Sparse down projection: the column-major copy, read only at the non-zero activations, gives the
// bits of the dense dot (dispatched kernel against dispatched dot, scalar twin against scalar dot),
// for sparse rows, rows with all-zero blocks and fully dense rows.
// The prefill product from the column copy (kernel sets that have one: the AVX-512 panels), for whole
// 16-row ranges of the output and batches of 1-19 tokens: the bits of the dense dot, including saturated
// quants and activation rows that are all zero or fully dense.
TEST(KernelsSparseColumns, TileBitIdenticalToDenseDot) {
  bool ran = false;
  for_each_kernel_set([&](const std::string&) {
    if (!sparse_columns_tile_available()) return;
    ran = true;
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K})
      for (bool saturated : {false, true}) {
        const int64_t n = 768, rows = 48, toks = 50;  // up to 50: the AMX set's 16-token tiles and a remainder
        std::mt19937 rng(37);
        std::vector<uint8_t> wbytes = random_rows(t, rows, n, rng);
        if (saturated) saturate_k_quant_rows(t, wbytes);
        const WeightMatrix w{t, n, rows, *ggml_row_bytes(t, uint64_t(n)), wbytes.data()};
        const SparseColumns cols = make_sparse_columns(w);
        const uint64_t stride = act_row_bytes(t, n);
        std::vector<uint8_t> act(stride * toks);
        for (int64_t k = 0; k < toks; ++k) {
          std::vector<float> x = randn(rng, n);
          if (k == 3) std::fill(x.begin(), x.end(), 0.0f);
          if (saturated) std::fill(x.begin(), x.end(), 1.0f);
          quantize_act_row(t, x.data(), act.data() + k * stride, n);
        }
        for (int64_t nt : {1, 8, 9, 16, 19, 33, 50})
          for (auto [r0, r1] : {std::pair<int64_t, int64_t>{0, rows}, {16, 32}, {32, 48}}) {
            std::vector<float> y(size_t(nt * rows), std::nanf(""));
            sparse_columns_tile(cols, act.data(), stride, nt, r0, r1, y.data(), rows);
            for (int64_t k = 0; k < nt; ++k)
              for (int64_t r = r0; r < r1; ++r) {
                const float want = vec_dot(t, w.row(r), act.data() + k * stride, n);
                ASSERT_EQ(bits(y[size_t(k * rows + r)]), bits(want))
                    << type_name(t) << (saturated ? " saturated" : "") << " n_tok=" << nt << " row " << r << " token " << k;
              }
          }
        std::vector<float> bad(static_cast<size_t>(rows));
        EXPECT_THROW(sparse_columns_tile(cols, act.data(), stride, 1, 8, 24, bad.data(), rows), std::invalid_argument);
      }
  });
  if (!ran) std::printf("  no kernel set here has a column-copy tile\n");
}

// All rows of cols against activation row x (its n_in values) give the dispatched dot of w's rows' first n_in
// values, bit for bit.
void expect_sparse_rows_are_dots(const SparseColumns& cols, const WeightMatrix& w, const std::vector<float>& x) {
  const GgmlType t = cols.type;
  const int64_t n = cols.n_in, rows = cols.n_out;
  std::vector<uint8_t> act(act_row_bytes(t, n));
  quantize_act_row(t, x.data(), act.data(), n);
  SparseQ8K sa;
  sparse_q8k_from(act.data(), n, sa);
  std::vector<float> y(size_t(rows), std::nanf(""));
  sparse_columns_rows(cols, sa, 0, rows, y.data());
  for (int64_t r = 0; r < rows; ++r)
    ASSERT_EQ(bits(y[size_t(r)]), bits(vec_dot(t, w.row(r), act.data(), n))) << type_name(t) << " row " << r;
}

TEST(KernelsSparseColumns, BitIdenticalToDenseDot) {
  for_each_kernel_set([&](const std::string&) {
    // 176 rows: the AVX-512 kernel's 4-group steps and its single-group remainder both run.
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K})
      for (bool saturated : {false, true}) {
      const int64_t n = 1024, rows = 176;
      std::mt19937 rng(31);
      std::vector<uint8_t> wbytes = random_rows(t, rows, n, rng);
      if (saturated) saturate_k_quant_rows(t, wbytes, -128);  // Q6_K scales at their largest magnitude
      const WeightMatrix w{t, n, rows, *ggml_row_bytes(t, uint64_t(n)), wbytes.data()};
      ASSERT_TRUE(sparse_columns_supported(w));
      const SparseColumns cols = make_sparse_columns(w);
      for (double density : {0.0, 0.01, 0.05, 0.3, 1.0}) {
        std::vector<float> x = randn(rng, n);
        std::bernoulli_distribution keep(density);
        for (int64_t i = 0; i < n; ++i) {
          if (saturated) x[size_t(i)] = (i % 3) ? -1.0f : 1.0f;  // quants of -127 / 127
          if (!keep(rng) || (i >= 256 && i < 512)) x[size_t(i)] = 0.0f;  // block 1 always all zero
        }
        for (bool ref : {false, true}) {
          std::vector<uint8_t> act(act_row_bytes(t, n));
          if (ref) quantize_act_row_ref(t, x.data(), act.data(), n);
          else quantize_act_row(t, x.data(), act.data(), n);
          SparseQ8K sa;
          sparse_q8k_from(act.data(), n, sa);
          std::vector<float> y(size_t(rows), std::nanf(""));
          if (ref) sparse_columns_rows_ref(cols, sa, 0, rows, y.data());
          else sparse_columns_rows(cols, sa, 16, rows, y.data() + 0), sparse_columns_rows(cols, sa, 0, 16, y.data());
          for (int64_t r = 0; r < rows; ++r) {
            const float want = ref ? vec_dot_ref(t, w.row(r), act.data(), n) : vec_dot(t, w.row(r), act.data(), n);
            ASSERT_EQ(bits(y[size_t(r)]), bits(want)) << type_name(t) << (saturated ? " saturated" : "") << " density="
                                                      << density << (ref ? " ref" : " simd") << " row " << r << ": "
                                                      << y[size_t(r)] << " vs " << want;
          }
        }
      }
      }
    // More rows than the AVX-512 kernel takes at once (2048): a call spanning two slabs, the second of 2 groups.
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K}) {
      const int64_t n = 512, rows = 2048 + 32;
      std::mt19937 rng(32);
      std::vector<uint8_t> wbytes = random_rows(t, rows, n, rng);
      const WeightMatrix w{t, n, rows, *ggml_row_bytes(t, uint64_t(n)), wbytes.data()};
      const SparseColumns cols = make_sparse_columns(w);
      std::vector<float> x = randn(rng, n);
      std::bernoulli_distribution keep(0.05);
      for (float& v : x) v = keep(rng) ? v : 0.0f;
      expect_sparse_rows_are_dots(cols, w, x);
    }
    const std::vector<uint8_t> q5(size_t(*ggml_row_bytes(GgmlType::Q5_K, 256)) * 16);
    EXPECT_FALSE(sparse_columns_supported(WeightMatrix{GgmlType::Q5_K, 256, 16, *ggml_row_bytes(GgmlType::Q5_K, 256), q5.data()}));
    const std::vector<uint8_t> q4(size_t(*ggml_row_bytes(GgmlType::Q4_K, 256)) * 12);
    const WeightMatrix odd{GgmlType::Q4_K, 256, 12, *ggml_row_bytes(GgmlType::Q4_K, 256), q4.data()};
    EXPECT_FALSE(sparse_columns_supported(odd));
    EXPECT_THROW(make_sparse_columns(odd), std::invalid_argument);
  });
}

// Several sparse rows at once (a verify pass's tokens, block by block through the copy) give each token's dense
// dots, bit for bit, and write nothing else: a block no token has, a last block the last token lacks, blocks
// some tokens lack, a token with no entries (first, in the middle, or the only one), both slab sizes, every set.
TEST(KernelsSparseColumns, TokensTogetherGiveEachTokensDots) {
  for_each_kernel_set([&](const std::string&) {
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K})
      for (int64_t rows : {int64_t(176), int64_t(2048 + 32)}) {
        const int64_t n = 1024, ldy = rows + 16;  // 16 sentinel values after each token's rows
        std::mt19937 rng(33);
        std::vector<uint8_t> wbytes = random_rows(t, rows, n, rng);
        const WeightMatrix w{t, n, rows, *ggml_row_bytes(t, uint64_t(n)), wbytes.data()};
        const SparseColumns cols = make_sparse_columns(w);
        const uint64_t stride = act_row_bytes(t, n);
        for (int nt : {1, 2, 5, 8})
          for (bool empty_first : {false, true}) {
            std::vector<uint8_t> act(stride * static_cast<size_t>(nt));
            std::vector<SparseQ8K> sa(static_cast<size_t>(nt));
            for (int k = 0; k < nt; ++k) {
              std::vector<float> x = randn(rng, n);
              std::bernoulli_distribution keep(k % 3 == 0 ? 0.05 : k % 3 == 1 ? 0.01 : 0.3);
              for (int64_t i = 0; i < n; ++i) {
                const bool empty_token = k == 3 || (k == 0 && empty_first);
                const bool block_none = i >= 512 && i < 768, block_last = k == nt - 1 && i >= 768;
                const bool block_odd = k % 2 == 1 && i >= 256 && i < 512;
                if (!keep(rng) || empty_token || block_none || block_last || block_odd) x[size_t(i)] = 0.0f;
              }
              quantize_act_row(t, x.data(), act.data() + size_t(k) * stride, n);
              sparse_q8k_from(act.data() + size_t(k) * stride, n, sa[size_t(k)]);
            }
            std::vector<float> y(static_cast<size_t>(nt * ldy), std::nanf(""));
            sparse_columns_rows_tokens(cols, sa.data(), nt, 0, 16, y.data(), ldy);
            sparse_columns_rows_tokens(cols, sa.data(), nt, 16, rows, y.data(), ldy);
            for (int k = 0; k < nt; ++k) {
              for (int64_t r = 0; r < rows; ++r) {
                const float want = vec_dot(t, w.row(r), act.data() + size_t(k) * stride, n);
                ASSERT_EQ(bits(y[size_t(k * ldy + r)]), bits(want)) << type_name(t) << " rows=" << rows << " n_tok=" << nt
                                                                    << (empty_first ? " empty first" : "") << " token " << k
                                                                    << " row " << r;
              }
              for (int64_t r = rows; r < ldy; ++r) ASSERT_TRUE(std::isnan(y[size_t(k * ldy + r)])) << "wrote past row " << rows;
            }
          }
      }
  });
}

// The entry walk the x86 kernels prefetch by visits exactly the entries of the kernels' nested loops (blocks,
// then tokens, then a token's entries of the block), in that order, and skips ahead the same way: random
// tokens with empty (block, token) pairs, empty tokens, no blocks at all.
TEST(KernelsSparseColumns, EntryWalkFollowsTheKernelsOrder) {
  std::mt19937 rng(34);
  for (int trial = 0; trial < 2000; ++trial) {
    const int n = 1 + int(rng() % 8);
    const int64_t nb = int64_t(rng() % 5);
    std::vector<SparseQ8K> rows(static_cast<size_t>(n));
    for (SparseQ8K& a : rows) {
      a.n_blocks = nb;
      a.start.assign(1, 0);
      for (int64_t b = 0; b < nb; ++b) a.start.push_back(a.start.back() + (rng() % 3 == 0 ? 0 : uint32_t(rng() % 4)));
    }
    std::vector<std::pair<int, uint32_t>> order;  // (token, entry) as the kernels take them
    for (int64_t b = 0; b < nb; ++b)
      for (int t = 0; t < n; ++t)
        for (uint32_t e = rows[size_t(t)].start[size_t(b)]; e < rows[size_t(t)].start[size_t(b) + 1]; ++e) order.emplace_back(t, e);
    const uint32_t ahead = rng() % 6;
    sparse_detail::EntryWalk walk(rows.data(), n);
    walk.skip(ahead);
    for (size_t i = 0; i < order.size() + 2; ++i, walk.next()) {
      if (i + ahead >= order.size()) {
        ASSERT_TRUE(walk.done()) << "trial " << trial << " step " << i;
        continue;
      }
      ASSERT_FALSE(walk.done()) << "trial " << trial << " step " << i;
      EXPECT_EQ(walk.t, order[i + ahead].first) << "trial " << trial << " step " << i;
      EXPECT_EQ(walk.e, order[i + ahead].second) << "trial " << trial << " step " << i;
    }
  }
}

// A column prefix of a copy (a MatFormer draft's narrower down projection over its target's copy) shares the
// bytes and gives the bits of the prefix's rows, as a copy made from the strided prefix view does.
TEST(KernelsSparseColumns, ColumnPrefixSharesTheCopy) {
  for_each_kernel_set([&](const std::string&) {
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K}) {
      const int64_t n = 1024, rows = 64, half = 512;
      std::mt19937 rng(33);
      std::vector<uint8_t> wbytes = random_rows(t, rows, n, rng);
      const WeightMatrix w{t, n, rows, *ggml_row_bytes(t, uint64_t(n)), wbytes.data()};
      const SparseColumns full = make_sparse_columns(w);
      const SparseColumns prefix = sparse_columns_prefix(full, half);
      ASSERT_FALSE(prefix.empty());
      EXPECT_EQ(prefix.data(), full.data());
      EXPECT_EQ(prefix.n_in, half);
      const SparseColumns own = make_sparse_columns(*weight_view(w, 0, rows, half));
      ASSERT_EQ(std::memcmp(own.data(), prefix.data(), own.block_bytes() * size_t(half / 256)), 0);
      std::vector<float> x = randn(rng, half);
      for (size_t i = 0; i < x.size(); i += 3) x[i] = 0.0f;
      expect_sparse_rows_are_dots(prefix, w, x);
      EXPECT_TRUE(sparse_columns_prefix(full, 300).empty());   // not whole blocks
      EXPECT_TRUE(sparse_columns_prefix(full, 2048).empty());  // wider than the copy
    }
  });
}

}  // namespace
}  // namespace g3n
