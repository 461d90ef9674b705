// `g3n bench` reports the weight layout it measured (decode_packed_bytes), and `--spec` loads the model for
// speculation: its Q6_K head packed as well, where the kernel set has packed kernels (docs/model.md §2) and
// does not pack Q6_K for plain decoding already (vec_dot_packs_q6k_for_decode).
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "kernels/vec_dot.h"

namespace g3n {
namespace {

using test::kG3n;
using test::run_capture;

TEST(CliBenchLayout, SpecLoadsPackQ6K) {
  const std::string model = std::string(G3N_BINARY_DIR) + "/cli-bench-layout-e4b-mini.gguf";
  int status = -1;
  std::string log = run_capture(kG3n + " create-random " + model + " --preset e4b-mini --quant q4_k_m 2>&1", status);
  ASSERT_EQ(status, 0) << log;
  const std::string common = " --prompt 8 --gen 6 --repeats 1 --threads 2 --json 2>/dev/null";
  const std::string plain_out = run_capture("G3N_PACK_Q6K= " + kG3n + " bench " + model + common, status);
  ASSERT_EQ(status, 0) << plain_out;
  const auto plain = nlohmann::json::parse(plain_out);
  const std::string spec_out = run_capture("G3N_PACK_Q6K= " + kG3n + " bench " + model +
                                               " --spec ngram --synthetic-acceptance 0.5 --draft-max 2" + common,
                                           status);
  ASSERT_EQ(status, 0) << spec_out;
  const auto spec = nlohmann::json::parse(spec_out);
  EXPECT_TRUE(spec.at("spec_outputs_equal").get<bool>());
  const auto total = plain.at("decode_weight_bytes").get<uint64_t>();
  const auto packed_plain = plain.at("decode_packed_bytes").get<uint64_t>();
  const auto packed_spec = spec.at("decode_packed_bytes").get<uint64_t>();
  EXPECT_LE(packed_plain, total);
  EXPECT_LE(packed_spec, spec.at("decode_weight_bytes").get<uint64_t>());
  if (!vec_dot_packed_fn(GgmlType::Q4_K)) {
    EXPECT_EQ(packed_plain, 0u);
    EXPECT_EQ(packed_spec, 0u);
    GTEST_SKIP() << "kernel set " << vec_dot_isa() << " packs nothing";
  }
  EXPECT_GT(packed_plain, 0u);  // Q4_K packed in any load
  if (vec_dot_packed_fn(GgmlType::Q6_K) && !vec_dot_packs_q6k_for_decode())
    EXPECT_GT(packed_spec, packed_plain) << "a speculating load packs the Q6_K head too";
  else  // no packed Q6_K kernel (nothing more to pack), or a set that packs Q6_K for every load
    EXPECT_EQ(packed_spec, packed_plain);
}

}  // namespace
}  // namespace g3n
