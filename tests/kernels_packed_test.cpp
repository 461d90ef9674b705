// Packed K-quant matrices (kernels/packed_panels.h: 16-row groups, rows in the lanes): packing is exactly
// undone by unpack_row for every bit pattern, and matmul on a packed matrix gives the row-major matmul's bits
// in every kernel set (the AVX-512 VNNI sets through their packed kernels, the others by unpacking rows):
// one token (decode), 2-8 (verification), and longer batches (prefill, token groups of 8 and a remainder),
// with one thread and two. The masked product on a packed matrix keeps its contract too.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "base/thread_pool.h"
#include "kernel_rows_util.h"
#include "kernel_sets_util.h"
#include "base/file.h"
#include "kernels/matmul.h"
#include "kernels/packed_panels.h"
#include "kernels/vec_dot.h"
#include "quant/blocks.h"

namespace g3n {
namespace {

struct PackedCase {
  WeightMatrix rows, packed;
  std::vector<uint8_t> data;
  Mapping buf;
};

PackedCase make_case(GgmlType t, int64_t n_in, int64_t n_out, std::mt19937& rng) {
  PackedCase c;
  c.data = random_rows(t, n_out, n_in, rng);
  const uint64_t rb = *ggml_row_bytes(t, uint64_t(n_in));
  c.buf = map_anonymous(packed_matrix_bytes(t, n_in, n_out), false);
  pack_groups(t, c.data.data(), rb, n_in, 0, n_out / kPackRows, static_cast<uint8_t*>(c.buf.data()));
  c.rows = WeightMatrix{t, n_in, n_out, rb, c.data.data()};
  c.packed = c.rows;
  c.packed.data = static_cast<uint8_t*>(c.buf.data());
  c.packed.packed = true;
  return c;
}

TEST(KernelsPacked, UnpackRowRestoresEveryByte) {
  std::mt19937 rng(3);
  for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K}) {
    SCOPED_TRACE(type_name(t));
    for (int64_t n_in : {256, 768}) {
      const PackedCase c = make_case(t, n_in, 48, rng);
      std::vector<uint8_t> row(c.rows.row_bytes);
      for (int64_t r = 0; r < 48; ++r) {
        unpack_row(t, static_cast<uint8_t*>(c.buf.data()), c.rows.row_bytes, n_in, r, row.data());
        ASSERT_EQ(std::memcmp(row.data(), c.rows.row(r), row.size()), 0) << "n_in " << n_in << " row " << r;
      }
      std::vector<float> a(static_cast<size_t>(n_in)), b(static_cast<size_t>(n_in));
      weight_row_f32(c.rows, 17, a.data());
      weight_row_f32(c.packed, 17, b.data());
      EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
    }
  }
  EXPECT_FALSE(packable(GgmlType::Q4_K, 256, 40));   // not whole groups of 16 rows
  EXPECT_FALSE(packable(GgmlType::Q4_K, 200, 32));   // not whole blocks
  EXPECT_FALSE(packable(GgmlType::Q5_K, 256, 32));   // no packed layout
}

TEST(KernelsPacked, MatmulGivesTheRowMajorBits) {
  int with_kernels = 0;
  for_each_kernel_set([&](const std::string& set) {
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K}) {
      if (vec_dot_packed_fn(t)) ++with_kernels;
      std::printf("  %s %s: %s\n", set.c_str(), type_name(t).c_str(), vec_dot_packed_fn(t) ? "packed kernel" : "unpacked rows");
      SCOPED_TRACE(set + " " + type_name(t));
      std::mt19937 rng(7);
      for (int64_t n_in : {256, 2048}) {
        const int64_t n_out = 80;
        const PackedCase c = make_case(t, n_in, n_out, rng);
        const int64_t max_tok = 19;
        const auto x = randn(rng, n_in * max_tok);
        for (int threads : {1, 2}) {
          ThreadPool pool(threads);
          MatmulScratch sa, sb;
          for (int64_t T : {1, 2, 3, 4, 5, 6, 7, 8, 9, 19}) {  // every kernel width 1-8
            std::vector<float> want(size_t(T * n_out), -1.0f), got(size_t(T * n_out), -2.0f);
            matmul(c.rows, x.data(), n_in, T, want.data(), n_out, pool, MatmulMode::Fast, sa);
            matmul(c.packed, x.data(), n_in, T, got.data(), n_out, pool, MatmulMode::Fast, sb);
            ASSERT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
                << "n_in " << n_in << " tokens " << T << " threads " << threads;
          }
          // Exact path: decoded rows, the same on both layouts.
          std::vector<float> want(size_t(3 * n_out)), got(size_t(3 * n_out));
          matmul(c.rows, x.data(), n_in, 3, want.data(), n_out, pool, MatmulMode::Exact, sa);
          matmul(c.packed, x.data(), n_in, 3, got.data(), n_out, pool, MatmulMode::Exact, sb);
          ASSERT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0) << "exact";
        }
      }
    }
  });
  std::printf("  (set, type) pairs with packed kernels: %d\n", with_kernels);
}

// A view of rows [16, 48) and the first 512 of 1024 columns (a MatFormer draft's down projection over its
// target's packed matrix: groups further apart than its own n_in fills) gives the bits of the same view of
// the row-major matrix, in every set, decode, verification and prefill, fast and exact.
TEST(KernelsPacked, ColumnPrefixViewGivesTheRowMajorBits) {
  for_each_kernel_set([&](const std::string& set) {
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K}) {
      SCOPED_TRACE(set + " " + type_name(t));
      std::mt19937 rng(11);
      const PackedCase c = make_case(t, 1024, 64, rng);
      const int64_t n_in = 512, n_out = 32;
      const auto rows = weight_view(c.rows, 16, n_out, n_in), packed = weight_view(c.packed, 16, n_out, n_in);
      ASSERT_TRUE(rows && packed);
      EXPECT_EQ(packed->row_bytes, c.rows.row_bytes);
      const auto x = randn(rng, n_in * 19);
      ThreadPool pool(2);
      MatmulScratch sa, sb;
      for (int64_t T : {1, 2, 5, 9, 19})
        for (MatmulMode mode : {MatmulMode::Fast, MatmulMode::Exact}) {
          std::vector<float> want(size_t(T * n_out), -1.0f), got(size_t(T * n_out), -2.0f);
          matmul(*rows, x.data(), n_in, T, want.data(), n_out, pool, mode, sa);
          matmul(*packed, x.data(), n_in, T, got.data(), n_out, pool, mode, sb);
          ASSERT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
              << "tokens " << T << (mode == MatmulMode::Fast ? " fast" : " exact");
        }
      std::vector<float> a(static_cast<size_t>(n_in)), b(static_cast<size_t>(n_in));
      weight_row_f32(*rows, 21, a.data());
      weight_row_f32(*packed, 21, b.data());
      EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
      // What the packed layout cannot say: a cut inside a group, part of a block.
      EXPECT_FALSE(weight_view(c.packed, 8, 32, 512));
      EXPECT_FALSE(weight_view(c.packed, 16, 24, 512));
      EXPECT_FALSE(weight_view(c.packed, 0, 64, 300));
      EXPECT_FALSE(weight_view(c.rows, 48, 32, 512));  // past the last row
      EXPECT_TRUE(weight_view(c.rows, 8, 24, 512));     // rows may start anywhere
    }
  });
}

// The largest integer sums a block can hold: every quant and scale at its top (saturate_k_quant_rows; Q6_K's
// scales then -128 and 127 in turn, for the signed scale words) against activations all +127 or all -127
// (constant rows), which is where the 256-bit kernels' int16 sums come closest to overflowing (Q4_K: 8 pairs of
// 2 * 15 * 127 per lane; Q6_K: 2 of 2 * 63 * 127). Row-major and packed must still agree bit for bit, in every set.
void saturate_blocks(GgmlType t, std::vector<uint8_t>& data) {
  saturate_k_quant_rows(t, data);
  if (t == GgmlType::Q6_K)
    for (size_t off = 0; off < data.size(); off += sizeof(quant::BlockQ6_K))
      for (int j = 0; j < 16; j += 2) reinterpret_cast<quant::BlockQ6_K*>(data.data() + off)->scales[j] = -128;
}

TEST(KernelsPacked, SaturatedSumsKeepTheBits) {
  for_each_kernel_set([&](const std::string& set) {
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K}) {
      SCOPED_TRACE(set + " " + type_name(t));
      std::mt19937 rng(11);
      const int64_t n_in = 1024, n_out = 32;
      PackedCase c = make_case(t, n_in, n_out, rng);
      saturate_blocks(t, c.data);
      pack_groups(t, c.data.data(), c.rows.row_bytes, n_in, 0, n_out / kPackRows, static_cast<uint8_t*>(c.buf.data()));
      for (const int64_t T : {1, 2, 3, 4, 5, 6, 7, 8, 11}) {
        std::vector<float> x(size_t(n_in * T));
        for (int64_t tok = 0; tok < T; ++tok)
          for (int64_t i = 0; i < n_in; ++i) x[size_t(tok * n_in + i)] = tok % 2 ? -3.0f : 2.0f;
        ThreadPool pool(2);
        MatmulScratch sa, sb;
        std::vector<float> want(size_t(T * n_out), -1.0f), got(size_t(T * n_out), -2.0f);
        matmul(c.rows, x.data(), n_in, T, want.data(), n_out, pool, MatmulMode::Fast, sa);
        matmul(c.packed, x.data(), n_in, T, got.data(), n_out, pool, MatmulMode::Fast, sb);
        ASSERT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0) << "tokens " << T;
      }
    }
  });
}

TEST(KernelsPacked, MaskedProductOnAPackedMatrix) {
  std::mt19937 rng(9);
  const int64_t n_in = 512, n_out = 64, T = 6;
  const PackedCase c = make_case(GgmlType::Q4_K, n_in, n_out, rng);
  const auto x = randn(rng, n_in * T);
  std::vector<float> need(size_t(T * n_out));
  for (auto& v : need) v = (rng() % 7 == 0) ? 1.0f : 0.0f;
  ThreadPool pool(2);
  MatmulScratch sa, sb;
  std::vector<float> want(need.size()), got(need.size(), -1.0f);
  matmul_masked(c.rows, x.data(), n_in, T, want.data(), n_out, need.data(), n_out, pool, MatmulMode::Fast, sa);
  matmul_masked(c.packed, x.data(), n_in, T, got.data(), n_out, need.data(), n_out, pool, MatmulMode::Fast, sb);
  EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0);
}

}  // namespace
}  // namespace g3n
