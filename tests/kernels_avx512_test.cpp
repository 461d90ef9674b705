// The AVX-512 VNNI K-quant sets (512-bit "avx512vnni" and 256-bit "avx512vnni-256") against the AVX2 set
// they overlay: every dot, tile and masked-tile value
// must be BIT-IDENTICAL (only the integer core differs, and its block totals are exact), so a model gives
// the same numbers on both kinds of machine. Runs where the CPU has AVX-512 F/BW/VL + VNNI and says so;
// elsewhere it reports itself skipped. (The other kernel suites hold the dispatched set, which is this one
// on such a CPU, to the scalar twins.)
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include "kernel_rows_util.h"
#include "kernels/cpu_features.h"
#include "kernels/vec_dot.h"
#include "kernels/vec_dot_impl.h"

namespace g3n {
namespace {

using vecdot::KernelSet;

bool have_avx512() {
  const CpuFeatures& f = cpu_features();
  return f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni && f.avx2 && f.fma && f.f16c &&
         vecdot::avx512_kernels() && vecdot::avx512_256_kernels() && vecdot::avx2_kernels();
}

struct Sets {
  const KernelSet& a2 = *vecdot::avx2_kernels();
  const KernelSet& a5;
};

// need_rows_off: a run of rows [begin, end) no token group needs (whole Q4_K panels skipped).
void check_type(const KernelSet& avx512, GgmlType t, int64_t rows, int64_t n, int64_t toks, uint32_t seed,
                bool saturated, std::pair<int64_t, int64_t> need_rows_off = {0, 0}) {
  SCOPED_TRACE(std::string(ggml_type_traits(t).name) + " rows=" + std::to_string(rows) + " n=" + std::to_string(n) +
               " toks=" + std::to_string(toks) + (saturated ? " saturated" : ""));
  const Sets s{.a5 = avx512};
  const int i = vecdot::type_index(t);
  ASSERT_TRUE(s.a5.dot[i] && s.a5.tile[i] && s.a5.masked_tile[i]);
  std::mt19937 rng(seed);
  const uint64_t wrb = *ggml_row_bytes(t, uint64_t(n)), arb = act_row_bytes(t, n);
  std::vector<uint8_t> w = random_rows(t, rows, n, rng);
  if (saturated) saturate_k_quant_rows(t, w);
  std::vector<uint8_t> act(size_t(arb * uint64_t(toks)));
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t k = 0; k < toks; ++k) {
    for (auto& v : x) v = saturated ? 1.0f : nd(rng);  // all ones: every activation quant is 127
    s.a2.quant_act[i](x.data(), act.data() + k * arb, n);
  }
  std::vector<float> dot2(size_t(rows * toks));
  for (int64_t k = 0; k < toks; ++k)
    for (int64_t r = 0; r < rows; ++r) {
      const float d2 = s.a2.dot[i](w.data() + r * wrb, act.data() + k * arb, n);
      const float d5 = s.a5.dot[i](w.data() + r * wrb, act.data() + k * arb, n);
      ASSERT_EQ(bits(d2), bits(d5)) << "dot row " << r << " token " << k << ": " << d2 << " vs " << d5;
      dot2[size_t(k * rows + r)] = d2;
    }
  std::vector<float> out(size_t(rows * toks), -1.0f);
  s.a5.tile[i](w.data(), wrb, rows, act.data(), arb, toks, n, out.data(), rows);
  for (size_t j = 0; j < out.size(); ++j) ASSERT_EQ(bits(out[j]), bits(dot2[j])) << "tile value " << j;
  // Masked: rows skipped for some 8-token groups keep their sentinel.
  const int64_t groups = (toks + 7) / 8;
  std::vector<uint8_t> need(size_t(rows * groups));
  for (auto& v : need) v = uint8_t(rng() % 3 != 0);
  for (int64_t r = need_rows_off.first; r < std::min(need_rows_off.second, rows); ++r)
    for (int64_t g = 0; g < groups; ++g) need[size_t(r * groups + g)] = 0;
  std::vector<float> masked(size_t(rows * toks), -7.0f);
  s.a5.masked_tile[i](w.data(), wrb, rows, act.data(), arb, toks, n, masked.data(), rows, need.data(), groups);
  for (int64_t k = 0; k < toks; ++k)
    for (int64_t r = 0; r < rows; ++r) {
      const size_t j = size_t(k * rows + r);
      if (need[size_t(r * groups + k / 8)])
        ASSERT_EQ(bits(masked[j]), bits(dot2[j])) << "masked row " << r << " token " << k;
      else
        ASSERT_EQ(masked[j], -7.0f) << "masked row " << r << " token " << k << " was written";
    }
}

TEST(KernelsAvx512, BitIdenticalToAvx2ForKQuants) {
  if (!have_avx512()) GTEST_SKIP() << "this CPU lacks AVX-512 F/BW/VL + VNNI (" << cpu_features_string() << ")";
  const struct {
    const char* name;
    const KernelSet& k;
  } sets[] = {{"avx512vnni", *vecdot::avx512_kernels()}, {"avx512vnni-256", *vecdot::avx512_256_kernels()}};
  for (const auto& set : sets) {
    SCOPED_TRACE(set.name);
    std::printf("  kernel sets compared: %s vs avx2+fma+f16c (dispatch: %s)\n", set.name, vec_dot_isa());
    uint32_t seed = 1;
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
      // One and three super-blocks; 65 exceeds the tile scratch (the per-pair fallback).
      for (int64_t nb : {1, 3, 65})
        for (int64_t toks : {1, 2, 5, 8, 9, 17})
          check_type(set.k, t, nb == 65 ? 3 : 37, 256 * nb, toks, seed++, false);
      check_type(set.k, t, 16, 512, 11, seed++, true);
    }
    // The Q4_K and Q6_K tiles run 16-row panels (kquant_panel_zmm.h) for more than 8 tokens: several
    // panels plus remainder rows, E2B/E4B's FFN widths, partial last token groups; runs of rows no token
    // group needs for the masked tile.
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K}) {
      for (auto [rows, nb, toks] : {std::array<int64_t, 3>{48, 32, 24}, {35, 64, 13}, {64, 8, 40}, {17, 2, 9}})
        check_type(set.k, t, rows, 256 * nb, toks, seed++, false, {16, 32});
      check_type(set.k, t, 33, 2048, 19, seed++, true);
    }
  }
}

}  // namespace
}  // namespace g3n
