// The audio tower's fast path (src/audio/conformer_fast.h, AudioOptions::fast) against the
// gemma3n-audio-tiny goldens at the fixture README §7.2 fast criterion, with every conv kernel set the CPU
// runs; its thread-count invariance, cancellation and stage times.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "audio/audio_embedder.h"
#include "audio/audio_encode.h"
#include "audio/conformer_fast.h"
#include "audio_util.h"
#include "base/thread_pool.h"
#include "kernels/conv.h"

namespace g3n {
namespace {

using namespace test;

void check_fast_clips(const std::string& type) {
  const AudioMmproj mm = load_audio_mmproj(audio_model(type));
  ThreadPool pool(2);
  AudioOptions o;
  o.fast = true;
  for (const std::string& clip : audio_clips()) {
    SCOPED_TRACE(clip);
    const AudioEncoding e = encode_audio(mm, golden_features(clip), pool, o);
    EXPECT_EQ(e.valid, read_u8_file(audio_golden(clip) + "encoder_valid.u8.bin"));
    const float de = audio_max_diff(e.encoder_out, read_f32_file(audio_golden(clip) + "encoder_out.f32.bin"));
    const float dr = audio_max_diff(e.rows, read_f32_file(audio_golden(clip) + "embeddings_188.f32.bin"));
    std::printf("  [%s fast, %s] %-28s encoder_out max|d| %.3g  embeddings_188 max|d| %.3g\n", type.c_str(), conv_kernels().name,
                clip.c_str(), de, dr);
    EXPECT_LE(de, kAudioTolFast);
    EXPECT_LE(dr, kAudioTolFast);
  }
}

TEST(AudioFast, AllClipsWithinFastToleranceF32) { check_fast_clips("f32"); }
TEST(AudioFast, AllClipsWithinFastToleranceF16) { check_fast_clips("f16"); }

// Every kernel set (scalar first), tower run directly with that set: all intermediates of clip a and the
// tokens of clip c (188 tokens: every attention window full).
TEST(AudioFast, EveryKernelSetWithinFastTolerance) {
  const AudioMmproj mm = load_audio_mmproj(audio_model("f16"));
  ThreadPool pool(2);
  const std::string a = audio_clips()[0], c = audio_clips()[2];
  for (const ConvKernelSet* ks : conv_kernel_sets()) {
    SCOPED_TRACE(ks->name);
    FastAudioTower tower(mm, pool, *ks);
    std::set<std::string> seen;
    FastAudioTowerOptions o;
    o.tap = golden_stage_tap(std::string("fast, ") + ks->name, kAudioTolFast, seen);
    tower.run(golden_features(a), o);
    EXPECT_EQ(seen.size(), 10u);
    const AudioFrames t = tower.run(golden_features(c));
    const float d = audio_max_diff(t.x, read_f32_file(audio_golden(c) + "encoder_out.f32.bin"));
    const float dr = audio_max_diff(audio_clip_rows(mm, t, pool, &tower.gemm()), read_f32_file(audio_golden(c) + "embeddings_188.f32.bin"));
    std::printf("  [fast, %s] clip c encoder_out max|d| %.3g  embeddings_188 max|d| %.3g\n", ks->name, d, dr);
    EXPECT_LE(d, kAudioTolFast);
    EXPECT_LE(dr, kAudioTolFast);
  }
}

// Splits are by frames, rows or output columns with fixed arithmetic per value: same bits for 1 and 3 threads.
TEST(AudioFast, ResultDoesNotDependOnThreadCount) {
  const AudioMmproj mm = load_audio_mmproj(audio_model("f16"));
  ThreadPool one(1), three(3);
  AudioOptions o;
  o.fast = true;
  for (const std::string& clip : {audio_clips()[2], audio_clips()[3]}) {
    const LogMelFeatures f = golden_features(clip);
    const AudioEncoding a = encode_audio(mm, f, one, o), b = encode_audio(mm, f, three, o);
    EXPECT_EQ(a.encoder_out, b.encoder_out) << clip;
    EXPECT_EQ(a.rows, b.rows) << clip;
  }
}

TEST(AudioFast, CancelFlagStops) {
  const AudioMmproj mm = load_audio_mmproj(audio_model("f16"));
  ThreadPool pool(2);
  std::atomic<bool> cancel{true};
  AudioOptions o;
  o.fast = true;
  o.cancel = &cancel;
  EXPECT_THROW(encode_audio(mm, golden_features(audio_clips()[0]), pool, o), AudioCancelled);
  // Set from the first tap (inside the SSCP): stops before the next stage, no further tap.
  cancel = false;
  std::vector<std::string> names;
  EXPECT_THROW(encode_audio(mm, golden_features(audio_clips()[0]), pool, o,
                            [&](const std::string& name, std::span<const float>) {
                              names.push_back(name);
                              cancel = true;
                            }),
               AudioCancelled);
  EXPECT_EQ(names, std::vector<std::string>{"sscp_conv0"});
}

TEST(AudioFast, ReportsStageTimes) {
  const AudioMmproj mm = load_audio_mmproj(audio_model("f16"));
  ThreadPool pool(2);
  for (bool fast : {false, true}) {
    std::vector<AudioStageTime> times;
    AudioOptions o;
    o.fast = fast;
    o.times = &times;
    encode_audio(mm, golden_features(audio_clips()[2]), pool, o);
    ASSERT_EQ(times.size(), 3u);
    const std::vector<std::string> names = {times[0].name, times[1].name, times[2].name};
    EXPECT_EQ(names, (std::vector<std::string>{"sscp", "conformer", "embedder"}));
    for (const auto& t : times) {
      std::printf("  [%s] %-10s %.4f s\n", fast ? "fast" : "exact", t.name, t.seconds);
      EXPECT_GE(t.seconds, 0.0);
    }
  }
}

}  // namespace
}  // namespace g3n
