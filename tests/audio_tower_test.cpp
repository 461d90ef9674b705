// The audio tower and embedder, exact path (src/audio/conformer.h, audio_embedder.h, audio_encode.h),
// against the gemma3n-audio-tiny goldens fed with the golden log-mel features, at the fixture README §7.2
// exact criteria, with both model files (they hold the same values: one set of goldens).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "audio/audio_encode.h"
#include "audio/audio_mmproj.h"
#include "audio/conformer.h"
#include "audio_util.h"
#include "base/thread_pool.h"

namespace g3n {
namespace {

using namespace test;

TEST(AudioTower, AllClipsMatchGoldensF32) { check_audio_all_clips(audio_model("f32"), "f32"); }
TEST(AudioTower, AllClipsMatchGoldensF16) { check_audio_all_clips(audio_model("f16"), "f16"); }

TEST(AudioTower, IntermediatesMatchGoldensF32) { check_audio_intermediates(audio_model("f32"), "f32"); }
TEST(AudioTower, IntermediatesMatchGoldensF16) { check_audio_intermediates(audio_model("f16"), "f16"); }

TEST(AudioTower, HardRowsMatchGoldens) {
  for (const std::string type : {"f32", "f16"}) {
    check_audio_hard_rows(audio_model(type), type);
    const AudioMmproj mm = load_audio_mmproj(audio_model(type));
    ThreadPool pool(2);
    EXPECT_NO_THROW(check_audio_projector_width(mm, 256));
    EXPECT_THROW(check_audio_projector_width(mm, 2048), std::runtime_error);
  }
}

// Trap T1: the variance sums each frame's squared deviations from ITS OWN cumulative mean.
TEST(AudioTower, CumulativeGroupNormUsesEachFramesOwnMean) {
  // Two frames of two values, one channel, weight 2.
  std::vector<float> y = {1, 3, 5, 11};
  const float w = 2;
  ThreadPool pool(1);
  cumulative_group_norm(y.data(), 2, 2, 1, &w, pool);
  // Frame 0: mean 2, deviations ±1 -> var 1. Frame 1: mean (1+3+5+11)/4 = 5, its own deviations 0, 6
  // -> var (1 + 1 + 0 + 36) / 4 = 9.5 (the "true" cumulative variance would be 14).
  const double s0 = 1 / std::sqrt(1.0 + 1e-3), s1 = 1 / std::sqrt(9.5 + 1e-3);
  EXPECT_NEAR(y[0], -1 * s0 * 2, 1e-6);
  EXPECT_NEAR(y[1], 1 * s0 * 2, 1e-6);
  EXPECT_NEAR(y[2], 0, 1e-6);
  EXPECT_NEAR(y[3], 6 * s1 * 2, 1e-5);
}

TEST(AudioTower, TokenCounts) {
  // README §2 per-clip table and the docs' length table.
  EXPECT_EQ(audio_token_count(368), 23);
  EXPECT_EQ(audio_token_count(297), 19);
  EXPECT_EQ(audio_token_count(2997), 188);
  EXPECT_EQ(audio_token_count(12), 1);
  EXPECT_EQ(audio_token_count(97), 7);
}

TEST(AudioTower, RejectsBadFeatures) {
  const AudioMmproj mm = load_audio_mmproj(audio_model("f16"));
  ThreadPool pool(1);
  LogMelFeatures none;
  EXPECT_THROW(encode_audio(mm, none, pool), std::runtime_error);
  LogMelFeatures ragged;
  ragged.frames = 3;
  ragged.data.assign(3 * 128 - 1, 0.0f);
  ragged.valid.assign(3, 1);
  EXPECT_THROW(encode_audio(mm, ragged, pool), std::runtime_error);
  // 3,100 frames would give 194 tokens: more than one clip's 188 rows.
  LogMelFeatures too_long;
  too_long.frames = 3100;
  too_long.data.assign(3100 * 128, -5.0f);
  too_long.valid.assign(3100, 1);
  for (bool fast : {false, true}) {
    try {
      encode_audio(mm, too_long, pool, AudioOptions{fast});
      ADD_FAILURE() << "no error";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("188"), std::string::npos) << e.what();
    }
  }
}

// Padded frames (mask 0) are zeroed, excluded as keys and become the padding row (trap T12): clip a with
// its last 40 mel frames marked invalid keeps the goldens' first tokens and pads the rest with hard(127).
TEST(AudioTower, InvalidFramesBecomePaddingRows) {
  const AudioMmproj mm = load_audio_mmproj(audio_model("f32"));
  ThreadPool pool(2);
  LogMelFeatures f = golden_features(audio_clips()[0]);
  for (int64_t t = f.frames - 40; t < f.frames; ++t) f.valid[static_cast<size_t>(t)] = 0;
  const AudioEncoding e = encode_audio(mm, f, pool);
  const std::vector<float> hard = audio_hard_rows(mm, pool);
  const std::vector<float> pad(hard.end() - 256, hard.end());
  const std::vector<float> golden = read_f32_file(audio_golden(audio_clips()[0]) + "embeddings_188.f32.bin");
  int64_t n_valid = 0;
  for (int64_t j = 0; j < e.n_tokens; ++j) n_valid += e.valid[static_cast<size_t>(j)];
  EXPECT_EQ(n_valid, 21);  // tokens j with 16j < 368 - 40
  for (int64_t j = 0; j < 188; ++j) {
    const std::vector<float> row(e.rows.begin() + j * 256, e.rows.begin() + (j + 1) * 256);
    if (j < n_valid) EXPECT_LE(audio_max_diff(row, std::vector<float>(golden.begin() + j * 256, golden.begin() + (j + 1) * 256)), kAudioTolExact) << j;
    else EXPECT_EQ(row, pad) << j;
  }
  for (int64_t j = n_valid; j < e.n_tokens; ++j)
    for (int64_t c = 0; c < 64; ++c) EXPECT_EQ(e.encoder_out[static_cast<size_t>(j * 64 + c)], 0.0f);
}

// HF's batched semantics (README §4.4, golden/batch_a_plus_a2660): each clip of the batch, fed with its
// padded features and mask, reproduces the batch goldens; the short clip gets 2 valid tokens there (frames
// starting inside the real audio stay valid), the rest become padding rows. Exact and fast paths.
TEST(AudioTower, BatchedMaskMatchesGoldens) {
  const AudioMmproj mm = load_audio_mmproj(audio_model("f32"));
  ThreadPool pool(2);
  const std::string g = audio_dir() + "/golden/batch_a_plus_a2660/";
  const std::vector<float> logmel = read_f32_file(g + "logmel.f32.bin"), enc = read_f32_file(g + "encoder_out.f32.bin"),
                           rows = read_f32_file(g + "embeddings_188.f32.bin");
  const std::vector<uint8_t> mask = read_u8_file(g + "logmel_valid.u8.bin"), enc_valid = read_u8_file(g + "encoder_valid.u8.bin");
  ASSERT_EQ(mask.size(), 2u * 368);
  for (int64_t b = 0; b < 2; ++b)
    for (bool fast : {false, true}) {
      SCOPED_TRACE(std::to_string(b) + (fast ? " fast" : " exact"));
      LogMelFeatures f;
      f.frames = 368;
      f.data.assign(logmel.begin() + b * 368 * 128, logmel.begin() + (b + 1) * 368 * 128);
      f.valid.assign(mask.begin() + b * 368, mask.begin() + (b + 1) * 368);
      const AudioEncoding e = encode_audio(mm, f, pool, AudioOptions{fast});
      EXPECT_EQ(e.valid, std::vector<uint8_t>(enc_valid.begin() + b * 23, enc_valid.begin() + (b + 1) * 23));
      const float de = audio_max_diff(e.encoder_out, std::vector<float>(enc.begin() + b * 23 * 64, enc.begin() + (b + 1) * 23 * 64));
      const float dr = audio_max_diff(e.rows, std::vector<float>(rows.begin() + b * 188 * 256, rows.begin() + (b + 1) * 188 * 256));
      std::printf("  batch clip %lld %s: valid tokens %d, encoder_out max|d| %.3g, embeddings_188 max|d| %.3g\n", static_cast<long long>(b),
                  fast ? "fast" : "exact", static_cast<int>(std::count(e.valid.begin(), e.valid.end(), 1)), de, dr);
      EXPECT_LE(de, fast ? kAudioTolFast : kAudioTolExact);
      EXPECT_LE(dr, fast ? kAudioTolFast : kAudioTolExact);
    }
}

// Every split is by frames or output rows: the thread count does not change a single bit.
TEST(AudioTower, ResultDoesNotDependOnThreadCount) {
  const AudioMmproj mm = load_audio_mmproj(audio_model("f16"));
  ThreadPool one(1), three(3);
  const LogMelFeatures f = golden_features(audio_clips()[1]);
  const AudioEncoding a = encode_audio(mm, f, one), b = encode_audio(mm, f, three);
  EXPECT_EQ(a.encoder_out, b.encoder_out);
  EXPECT_EQ(a.rows, b.rows);
}

TEST(AudioTower, CancelFlagStopsTheExactPath) {
  const AudioMmproj mm = load_audio_mmproj(audio_model("f16"));
  ThreadPool pool(2);
  std::atomic<bool> cancel{false};
  AudioOptions o;
  o.cancel = &cancel;
  int taps = 0;
  // Set during the SSCP: the encode stops at the next stage.
  EXPECT_THROW(encode_audio(mm, golden_features(audio_clips()[0]), pool, o,
                            [&](const std::string&, std::span<const float>) {
                              ++taps;
                              cancel = true;
                            }),
               AudioCancelled);
  EXPECT_EQ(taps, 1);
}

}  // namespace
}  // namespace g3n
