// Lossless narrowing of float matrices (model.cpp: an F32 matrix whose values are all exactly bf16, or
// fp16, runs as a BF16 / F16 copy): every kernel set must give the same bits for the narrowed matrix as
// for the F32 one, in the dots, in the tiles and through matmul, whatever the length (tails included).
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/matmul.h"
#include "kernels/vec_dot.h"
#include "kernel_sets_util.h"
#include "quant/fp16.h"

namespace g3n {
namespace {

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// Values exactly representable in the narrow type, spread over a few octaves and both signs.
std::vector<float> narrow_exact_values(size_t n, GgmlType narrow, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  std::vector<float> v(n);
  for (auto& x : v) x = narrow == GgmlType::BF16 ? bf16_to_fp32(fp32_to_bf16(nd(rng))) : fp16_to_fp32(fp32_to_fp16(nd(rng)));
  return v;
}

std::vector<uint16_t> pack(const std::vector<float>& v, GgmlType narrow) {
  std::vector<uint16_t> out(v.size());
  const bool ok = narrow == GgmlType::BF16 ? pack_bf16_exact(v.data(), int64_t(v.size()), out.data())
                                           : pack_fp16_exact(v.data(), int64_t(v.size()), out.data());
  EXPECT_TRUE(ok);
  return out;
}

TEST(KernelsNarrow, PackRefusesValuesThatWouldChange) {
  std::vector<uint16_t> out(3);
  const std::vector<float> bf = {1.0f, -0.5f, 3.0f}, not_bf = {1.0f, 1.0f + 1.0f / 1024, 2.0f};
  EXPECT_TRUE(pack_bf16_exact(bf.data(), 3, out.data()));
  EXPECT_EQ(out[1], 0xBF00);
  EXPECT_FALSE(pack_bf16_exact(not_bf.data(), 3, out.data()));
  EXPECT_TRUE(pack_fp16_exact(not_bf.data(), 3, out.data()));  // 1 + 2^-10 is an fp16
  const std::vector<float> tiny = {1e-30f}, big = {1e6f}, third = {1.0f / 3.0f};
  EXPECT_FALSE(pack_fp16_exact(tiny.data(), 1, out.data()));  // below fp16's range: would become 0
  EXPECT_FALSE(pack_fp16_exact(big.data(), 1, out.data()));   // above it: would become inf
  EXPECT_FALSE(pack_fp16_exact(third.data(), 1, out.data()));
  EXPECT_FALSE(pack_bf16_exact(third.data(), 1, out.data()));
}

// Dots and tiles of every set: F32 == narrowed, bit for bit, for lengths with every tail.
TEST(KernelsNarrow, DotsAndTilesGiveTheF32Bits) {
  for_each_kernel_set([](const std::string&) {
    for (GgmlType narrow : {GgmlType::BF16, GgmlType::F16}) {
      SCOPED_TRACE(narrow == GgmlType::BF16 ? "bf16" : "f16");
      for (int64_t n : {1, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 31, 32, 33, 36, 40, 63, 64, 65, 100, 255, 2048, 2051}) {
        constexpr int kRows = 5, kTok = 7;
        const auto w = narrow_exact_values(size_t(n) * kRows, narrow, uint32_t(n));
        const auto wn = pack(w, narrow);
        std::vector<float> x(size_t(n) * kTok);
        std::mt19937 rng(uint32_t(n) + 99);
        std::normal_distribution<float> nd;
        for (auto& v : x) v = nd(rng);
        for (int r = 0; r < kRows; ++r)
          for (int t = 0; t < kTok; ++t) {
            const float a = vec_dot(GgmlType::F32, w.data() + r * n, x.data() + t * n, n);
            const float b = vec_dot(narrow, wn.data() + r * n, x.data() + t * n, n);
            ASSERT_TRUE(same_bits(a, b)) << "n " << n << " row " << r << " token " << t << ": " << a << " vs " << b;
          }
        for (int nr : {1, 2, 5})
          for (int nt : {1, 2, 3, 4, 7}) {
            std::vector<float> ya(size_t(nr) * nt), yb(size_t(nr) * nt);
            vec_dot_tile(GgmlType::F32, w.data(), uint64_t(n) * 4, nr, x.data(), uint64_t(n) * 4, nt, n, ya.data(), nr);
            vec_dot_tile(narrow, wn.data(), uint64_t(n) * 2, nr, x.data(), uint64_t(n) * 4, nt, n, yb.data(), nr);
            for (size_t i = 0; i < ya.size(); ++i)
              ASSERT_TRUE(same_bits(ya[i], yb[i])) << "tile n " << n << " " << nr << "x" << nt << " at " << i;
          }
      }
    }
  });
}

// Through matmul, both arithmetic paths, one token (decode) and several (prefill).
TEST(KernelsNarrow, MatmulGivesTheF32Bits) {
  ThreadPool pool(2);
  for_each_kernel_set([&](const std::string&) {
    for (GgmlType narrow : {GgmlType::BF16, GgmlType::F16}) {
      const int64_t n_in = 204, n_out = 37;  // 204: a 4-value tail after the 8-wide steps
      const auto w = narrow_exact_values(size_t(n_in * n_out), narrow, 7);
      const auto wn = pack(w, narrow);
      WeightMatrix a{GgmlType::F32, n_in, n_out, uint64_t(n_in) * 4, reinterpret_cast<const uint8_t*>(w.data())};
      WeightMatrix b{narrow, n_in, n_out, uint64_t(n_in) * 2, reinterpret_cast<const uint8_t*>(wn.data())};
      for (int64_t n_tok : {1, 3, 11})
        for (MatmulMode mode : {MatmulMode::Exact, MatmulMode::Fast}) {
          std::vector<float> x(size_t(n_in * n_tok));
          std::mt19937 rng{uint32_t(n_tok)};
          std::normal_distribution<float> nd;
          for (auto& v : x) v = nd(rng);
          std::vector<float> ya(size_t(n_out * n_tok)), yb(ya.size());
          MatmulScratch sa, sb;
          matmul(a, x.data(), n_in, n_tok, ya.data(), n_out, pool, mode, sa);
          matmul(b, x.data(), n_in, n_tok, yb.data(), n_out, pool, mode, sb);
          for (size_t i = 0; i < ya.size(); ++i)
            ASSERT_TRUE(same_bits(ya[i], yb[i])) << "tokens " << n_tok << (mode == MatmulMode::Fast ? " fast" : " exact") << " at " << i;
        }
    }
  });
}

}  // namespace
}  // namespace g3n
