// src/media/audio: decoding, down-mixing and resampling against the gemma3n-audio-tiny fixture's waveforms
// (README §7.3: clips a, c, d bit-exact; clip b SNR ≥ 55 dB at the same length), other formats written by
// libsndfile, and every refusal: empty, unknown, truncated, absurd headers, over the limits.
#include <sndfile.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "golden_util.h"
#include "gtest/gtest.h"
#include "media/audio.h"
#include "media/image.h"

using namespace g3n;
namespace fs = std::filesystem;

namespace {

std::string inputs_dir() { return test::fixtures_dir() + "/gemma3n-audio-tiny/inputs/"; }

// A fresh directory per test: ctest runs the tests of this file in parallel processes.
fs::path test_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path d = fs::path(::testing::TempDir()) /
                     ("g3n-audio-" + std::string(info->test_suite_name()) + "-" + info->name() + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void put_le(std::vector<uint8_t>& b, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// A canonical RIFF/WAVE file with every header field given, so tests can state absurd ones.
struct WavHeader {
  uint16_t format = 1;  // 1 PCM, 3 IEEE float
  uint16_t channels = 1;
  uint32_t rate = 16000;
  uint16_t bits = 16;
};
std::vector<uint8_t> make_wav(const WavHeader& h, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> b;
  const uint32_t align = static_cast<uint32_t>(h.channels) * h.bits / 8;
  b.insert(b.end(), {'R', 'I', 'F', 'F'});
  put_le(b, 36 + data.size(), 4);
  b.insert(b.end(), {'W', 'A', 'V', 'E', 'f', 'm', 't', ' '});
  put_le(b, 16, 4);
  put_le(b, h.format, 2);
  put_le(b, h.channels, 2);
  put_le(b, h.rate, 4);
  put_le(b, static_cast<uint64_t>(h.rate) * align, 4);
  put_le(b, align, 2);
  put_le(b, h.bits, 2);
  b.insert(b.end(), {'d', 'a', 't', 'a'});
  put_le(b, data.size(), 4);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

std::vector<uint8_t> s16_data(const std::vector<int16_t>& v) {
  std::vector<uint8_t> d;
  for (int16_t x : v) put_le(d, static_cast<uint16_t>(x), 2);
  return d;
}

std::vector<uint8_t> f32_data(const std::vector<float>& v) {
  std::vector<uint8_t> d(v.size() * 4);
  std::memcpy(d.data(), v.data(), d.size());
  return d;
}

// A 440 Hz tone, 16 kHz mono s16.
std::vector<int16_t> tone(int n) {
  std::vector<int16_t> v(n);
  for (int i = 0; i < n; ++i) v[i] = static_cast<int16_t>(std::lround(12000 * std::sin(2 * M_PI * 440 * i / 16000.0)));
  return v;
}

double snr_db(const std::vector<float>& x, const std::vector<float>& ref) {
  double signal = 0, noise = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    signal += static_cast<double>(ref[i]) * ref[i];
    noise += (static_cast<double>(x[i]) - ref[i]) * (static_cast<double>(x[i]) - ref[i]);
  }
  return 10 * std::log10(signal / noise);
}

// The error must be a one-line MediaError; returns its message.
template <typename F>
std::string expect_media_error(F&& f, const std::string& what) {
  try {
    f();
    ADD_FAILURE() << what << ": no error";
  } catch (const MediaError& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    EXPECT_FALSE(std::string(e.what()).empty());
    return e.what();
  }
  return {};
}

class FixtureClip : public ::testing::TestWithParam<const char*> {};

TEST_P(FixtureClip, DecodesBitExact) {
  const std::string name = GetParam();
  const Waveform w = decode_audio(read_audio_file(inputs_dir() + name + ".wav"));
  const std::vector<float> golden = test::read_f32_file(inputs_dir() + name + ".f32.bin");
  EXPECT_EQ(w.source_rate, 16000);
  EXPECT_EQ(w.source_channels, 1);
  ASSERT_EQ(w.samples.size(), golden.size());
  EXPECT_EQ(std::memcmp(w.samples.data(), golden.data(), golden.size() * 4), 0);
}

INSTANTIATE_TEST_SUITE_P(Clips, FixtureClip,
                         ::testing::Values("a_speech_16k_mono_s16", "c_long_34s_16k_mono_s16", "d_short_0.15s_16k_mono_f32"),
                         [](const auto& info) { return std::string(1, info.param[0]); });

TEST(AudioDecode, StereoAt44k1IsAveragedAndResampled) {
  const std::string name = "b_speech_44k1_stereo_s16";
  const Waveform w = decode_audio(read_audio_file(inputs_dir() + name + ".wav"));
  const std::vector<float> golden = test::read_f32_file(inputs_dir() + name + ".f32.bin");
  EXPECT_EQ(w.source_rate, 44100);
  EXPECT_EQ(w.source_channels, 2);
  ASSERT_EQ(w.samples.size(), 47922u);  // round(132,084 · 16000 / 44100)
  ASSERT_EQ(golden.size(), 47922u);
  const double snr = snr_db(w.samples, golden);
  std::printf("clip b: soxr VHQ vs SoX rate -v: SNR %.2f dB over %zu samples\n", snr, golden.size());
  EXPECT_GE(snr, 55.0);
}

TEST(AudioDecode, ChannelsAreAveragedInDouble) {
  // Two and three channels at 16 kHz (no resampling), s16 and float.
  const std::vector<int16_t> st = {32767, -32768, 1, 2, -3, 7, 1000, -999};
  const Waveform w2 = decode_audio(make_wav({.channels = 2}, s16_data(st)));
  ASSERT_EQ(w2.samples.size(), 4u);
  EXPECT_EQ(w2.source_channels, 2);
  for (size_t i = 0; i < 4; ++i)
    EXPECT_EQ(w2.samples[i], static_cast<float>((st[2 * i] / 32768.0 + st[2 * i + 1] / 32768.0) / 2)) << i;

  const std::vector<float> f3 = {0.1f, 0.2f, 0.3f, 1e-8f, 1.0f, -1.0f};
  const Waveform w3 = decode_audio(make_wav({.format = 3, .channels = 3, .bits = 32}, f32_data(f3)));
  ASSERT_EQ(w3.samples.size(), 2u);
  EXPECT_EQ(w3.samples[0], static_cast<float>((double{0.1f} + double{0.2f} + double{0.3f}) / 3));
  EXPECT_EQ(w3.samples[1], static_cast<float>((double{1e-8f} + 1.0 - 1.0) / 3));
}

TEST(AudioDecode, PcmScalesAreLibsndfiles) {
  // README §3 step 1: u8 (x−128)/128, s24 x/8388608, s16 x/32768.
  const Waveform u8 = decode_audio(make_wav({.bits = 8}, {0, 128, 255, 64}));
  EXPECT_EQ(u8.samples, (std::vector<float>{-1.0f, 0.0f, 127 / 128.0f, -0.5f}));
  std::vector<uint8_t> d24;
  for (int32_t x : {8388607, -8388608, 1, -2}) put_le(d24, static_cast<uint32_t>(x), 3);
  const Waveform s24 = decode_audio(make_wav({.bits = 24}, d24));
  EXPECT_EQ(s24.samples, (std::vector<float>{8388607 / 8388608.0f, -1.0f, 1 / 8388608.0f, -2 / 8388608.0f}));
  const Waveform s16 = decode_audio(make_wav({}, s16_data({-32768, 16384, 3})));
  EXPECT_EQ(s16.samples, (std::vector<float>{-1.0f, 0.5f, 3 / 32768.0f}));
}

TEST(AudioDecode, OtherRatesGiveSoxrLengths) {
  for (uint32_t rate : {8000u, 22050u, 48000u, 96000u}) {
    const Waveform w = decode_audio(make_wav({.rate = rate}, s16_data(tone(10000))));
    EXPECT_EQ(w.samples.size(), static_cast<size_t>(std::lround(10000.0 * 16000 / rate))) << rate;
  }
}

// FLAC bit-exact; Vorbis, Opus and MP3 (LAME's gapless header trimmed by libsndfile) at their exact length.
TEST(AudioDecode, LosslessAndLossyFormatsRoundTrip) {
  const fs::path dir = test_dir();
  const std::vector<int16_t> pcm = tone(16000);
  struct Case {
    const char* file;
    int format;
  };
  for (const Case c : {Case{"t.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16}, Case{"t.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS},
                       Case{"t.opus", SF_FORMAT_OGG | SF_FORMAT_OPUS}, Case{"t.mp3", SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III}}) {
    SF_INFO info{};
    info.samplerate = 16000;
    info.channels = 1;
    info.format = c.format;
    if (!sf_format_check(&info)) {
      std::printf("libsndfile cannot write %s: not checked\n", c.file);
      continue;
    }
    const fs::path path = dir / c.file;
    SNDFILE* out = sf_open(path.c_str(), SFM_WRITE, &info);
    ASSERT_NE(out, nullptr) << sf_strerror(nullptr);
    ASSERT_EQ(sf_write_short(out, pcm.data(), static_cast<sf_count_t>(pcm.size())), static_cast<sf_count_t>(pcm.size()));
    sf_close(out);
    ASSERT_TRUE(has_audio_extension(path.string()));
    const Waveform w = decode_audio(read_audio_file(path.string()));
    ASSERT_EQ(w.samples.size(), pcm.size()) << c.file;
    std::vector<float> ref(pcm.size());
    for (size_t i = 0; i < pcm.size(); ++i) ref[i] = pcm[i] / 32768.0f;
    if ((c.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_FLAC) {
      EXPECT_EQ(w.samples, ref);
    } else {
      const double snr = snr_db(w.samples, ref);
      std::printf("%s: SNR %.1f dB\n", c.file, snr);
      EXPECT_GE(snr, 15.0) << c.file;  // lossy codecs: the tone must survive, not the bits
    }
  }
  fs::remove_all(dir);
}

TEST(AudioDecode, EmptyAndUnknownAreRefused) {
  expect_media_error([] { decode_audio({}); }, "empty");
  const std::vector<uint8_t> garbage = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', 0, 1, 2, 3, 4, 5};
  expect_media_error([&] { decode_audio(garbage); }, "garbage");
  // Formats libsndfile knows but g3n does not accept (AIFF) are refused before parsing.
  std::vector<uint8_t> aiff = {'F', 'O', 'R', 'M', 0, 0, 0, 4, 'A', 'I', 'F', 'F'};
  expect_media_error([&] { decode_audio(aiff); }, "aiff");
  // A valid WAV magic with nothing usable behind it.
  std::vector<uint8_t> riff = {'R', 'I', 'F', 'F', 4, 0, 0, 0, 'W', 'A', 'V', 'E'};
  expect_media_error([&] { decode_audio(riff); }, "bare riff");
  // A header with no samples.
  expect_media_error([] { decode_audio(make_wav({}, {})); }, "no samples");
  // Two frames at 96 kHz resample to round(1/3) = 0 samples (found by the fuzzer).
  expect_media_error([] { decode_audio(make_wav({.rate = 96000}, s16_data({100, 200}))); }, "nothing at 16 kHz");
}

TEST(AudioDecode, EveryTruncationIsHandled) {
  const std::vector<int16_t> pcm = tone(200);
  const std::vector<uint8_t> full = make_wav({}, s16_data(pcm));
  const Waveform whole = decode_audio(full);
  ASSERT_EQ(whole.samples.size(), pcm.size());
  for (size_t n = 0; n < full.size(); ++n) {
    const std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    if (n < 46) {  // the header and at least one whole sample are needed
      expect_media_error([&] { decode_audio(cut); }, "cut at " + std::to_string(n));
      continue;
    }
    // A cut data chunk decodes its whole frames (the documented choice), which are the file's first ones.
    const Waveform w = decode_audio(cut);
    ASSERT_EQ(w.samples.size(), (n - 44) / 2) << n;
    EXPECT_TRUE(std::equal(w.samples.begin(), w.samples.end(), whole.samples.begin())) << n;
  }
}

TEST(AudioDecode, AbsurdHeadersAreRefused) {
  const std::vector<uint8_t> data = s16_data(tone(64));
  for (uint32_t rate : {0u, 1u, 999u, 768001u, 1000000u, 0x7FFFFFFFu, 0xFFFFFFFFu})
    expect_media_error([&] { decode_audio(make_wav({.rate = rate}, data)); }, "rate " + std::to_string(rate));
  for (uint16_t ch : {uint16_t{0}, uint16_t{65}, uint16_t{1000}, uint16_t{65535}}) {
    std::vector<uint8_t> big(static_cast<size_t>(std::max<int>(ch, 1)) * 2 * 4, 0);
    expect_media_error([&] { decode_audio(make_wav({.channels = ch}, big)); }, "channels " + std::to_string(ch));
  }
  // (Odd widths such as 12 or 13 bits in whole-byte containers are valid WAV and decode.)
  for (uint16_t bits : {uint16_t{0}, uint16_t{4096}})
    expect_media_error([&] { decode_audio(make_wav({.bits = bits}, data)); }, "bits " + std::to_string(bits));
  expect_media_error([&] { decode_audio(make_wav({.format = 0x1234}, data)); }, "unknown codec");
  // The limits hold at the edges of the accepted range.
  EXPECT_EQ(decode_audio(make_wav({.rate = 1000}, data)).source_rate, 1000);
  EXPECT_EQ(decode_audio(make_wav({.channels = 64}, std::vector<uint8_t>(64 * 2 * 3, 0))).samples.size(), 3u);
}

TEST(AudioDecode, NonFiniteSamplesAreRefused) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    const std::vector<float> v = {0.1f, bad, 0.2f};
    expect_media_error([&] { decode_audio(make_wav({.format = 3, .bits = 32}, f32_data(v))); }, "non-finite");
  }
}

TEST(AudioDecode, DurationOverTheLimitIsRefused) {
  const std::vector<uint8_t> two_seconds = make_wav({}, s16_data(tone(32000)));
  EXPECT_EQ(decode_audio(two_seconds, {.max_seconds = 2.0}).samples.size(), 32000u);
  EXPECT_NE(expect_media_error([&] { decode_audio(two_seconds, {.max_seconds = 1.5}); }, "2 s over 1.5 s").find("longer than"),
            std::string::npos);
  // A FLAC header claiming 2^35 samples (about 24 days at 16 kHz) and nothing else: refused from the
  // header alone, before decoding or allocating.
  std::vector<uint8_t> flac = {'f', 'L', 'a', 'C', 0x80, 0, 0, 34,  // last metadata block: STREAMINFO, 34 bytes
                               0x10, 0x00, 0x10, 0x00,              // block sizes 4096 / 4096
                               0, 0, 0, 0, 0, 0};                   // frame sizes unknown
  // 20 bits rate 16000, 3 bits channels − 1 = 0, 5 bits bits-per-sample − 1 = 15, 36 bits total samples = 2^35.
  const uint64_t packed = (uint64_t{16000} << 44) | (uint64_t{15} << 36) | (uint64_t{1} << 35);
  for (int s = 56; s >= 0; s -= 8) flac.push_back(static_cast<uint8_t>(packed >> s));
  flac.insert(flac.end(), 16, 0);  // MD5
  const std::string err = expect_media_error([&] { decode_audio(flac); }, "FLAC claiming 24 days");
  EXPECT_NE(err.find("longer than"), std::string::npos) << err;
}

TEST(AudioFile, ReadsAndRefusesOversizedFiles) {
  EXPECT_EQ(read_audio_file(inputs_dir() + "d_short_0.15s_16k_mono_f32.wav").size(), 9658u);
  expect_media_error([] { read_audio_file("/nonexistent/g3n/clip.wav"); }, "missing");
  const fs::path dir = test_dir();
  const fs::path big = dir / "big.wav";
  { std::ofstream(big) << "RIFF"; }
  fs::resize_file(big, kMaxAudioFileBytes + 1);  // sparse: no disk used
  expect_media_error([&] { read_audio_file(big.string()); }, "over the size limit");
  fs::remove_all(dir);
}

TEST(AudioFile, ExtensionsAreCaseInsensitive) {
  for (const char* yes : {"a.wav", "dir/b.WAV", "c.Flac", "d.ogg", "e.oga", "f.opus", "g.MP3", "/x.y/z.wav"})
    EXPECT_TRUE(has_audio_extension(yes)) << yes;
  for (const char* no : {"wav", "a.wav.txt", "a.png", "dir.wav/file", "a.", "", "a.wave"})
    EXPECT_FALSE(has_audio_extension(no)) << no;
}

}  // namespace
