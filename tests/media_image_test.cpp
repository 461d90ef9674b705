// src/media: decoding (every format, Pillow's convert("RGB") rules, every error) and the reference
// preprocessing, checked against the gemma3n-vision-tiny fixture's decoded and preprocessed inputs.
#include <webp/encode.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "golden_util.h"
#include "gtest/gtest.h"
#include "media/image.h"
#include "media/preprocess.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

using namespace g3n;

namespace {

std::string inputs_dir() { return test::fixtures_dir() + "/gemma3n-vision-tiny/inputs/"; }

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

struct FixtureInput {
  std::string name, file;
  int width, height;
};
const FixtureInput kInputs[] = {
    {"gradient_shapes_512x512", "gradient_shapes_512x512.png", 512, 512},
    {"noise_photo_384x384", "noise_photo_384x384.png", 384, 384},
    {"wide_640x360", "wide_640x360.png", 640, 360},
    {"scene_640x480", "scene_640x480.jpg", 640, 480},
};

// ---- tiny encoders for the synthetic cases ----

uint32_t crc32(const uint8_t* p, size_t n, uint32_t crc = 0) {
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
  }
  return ~crc;
}

void put_be32(std::vector<uint8_t>& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
}

void png_chunk(std::vector<uint8_t>& b, const char* type, const std::vector<uint8_t>& data) {
  put_be32(b, static_cast<uint32_t>(data.size()));
  const size_t at = b.size();
  b.insert(b.end(), type, type + 4);
  b.insert(b.end(), data.begin(), data.end());
  put_be32(b, crc32(&b[at], b.size() - at));
}

// A PNG of any bit depth and colour type that stb_image_write cannot make (16-bit, palette + tRNS):
// unfiltered rows in stored (uncompressed) deflate blocks. `rows` holds the packed samples, big-endian.
std::vector<uint8_t> make_png(uint32_t w, uint32_t h, int depth, int ctype, const std::vector<uint8_t>& rows,
                              const std::vector<uint8_t>& plte = {}, const std::vector<uint8_t>& trns = {}) {
  std::vector<uint8_t> b = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<uint8_t> ihdr;
  put_be32(ihdr, w);
  put_be32(ihdr, h);
  ihdr.insert(ihdr.end(), {static_cast<uint8_t>(depth), static_cast<uint8_t>(ctype), 0, 0, 0});
  png_chunk(b, "IHDR", ihdr);
  if (!plte.empty()) png_chunk(b, "PLTE", plte);
  if (!trns.empty()) png_chunk(b, "tRNS", trns);
  const size_t row_bytes = h ? rows.size() / h : 0;
  std::vector<uint8_t> raw;
  for (uint32_t y = 0; y < h; ++y) {
    raw.push_back(0);  // filter: none
    raw.insert(raw.end(), rows.begin() + y * row_bytes, rows.begin() + (y + 1) * row_bytes);
  }
  std::vector<uint8_t> z = {0x78, 0x01};
  size_t pos = 0;
  do {
    const size_t len = std::min<size_t>(raw.size() - pos, 65535);
    z.push_back(pos + len == raw.size() ? 1 : 0);
    z.insert(z.end(), {static_cast<uint8_t>(len), static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(~len),
                       static_cast<uint8_t>(~len >> 8)});
    z.insert(z.end(), raw.begin() + pos, raw.begin() + pos + len);
    pos += len;
  } while (pos < raw.size());
  uint32_t a = 1, s = 0;
  for (uint8_t v : raw) a = (a + v) % 65521, s = (s + a) % 65521;
  put_be32(z, (s << 16) | a);
  png_chunk(b, "IDAT", z);
  png_chunk(b, "IEND", {});
  return b;
}

void collect(void* ctx, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(ctx);
  out->insert(out->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
}

// A GIF89a with a 4-colour global table. LZW codes stay 3 bits wide because a clear code follows every
// two literals (the table never reaches 8 entries).
std::vector<uint8_t> make_gif(int w, int h, const uint8_t palette[12], const std::vector<uint8_t>& idx) {
  std::vector<uint8_t> b = {'G', 'I', 'F', '8', '9', 'a'};
  auto le16 = [&](int v) { b.push_back(static_cast<uint8_t>(v)), b.push_back(static_cast<uint8_t>(v >> 8)); };
  le16(w), le16(h);
  b.insert(b.end(), {0x91, 0, 0});  // global table of 4 entries, background 0
  b.insert(b.end(), palette, palette + 12);
  b.push_back(0x2C);
  le16(0), le16(0), le16(w), le16(h);
  b.push_back(0);
  b.push_back(2);  // LZW minimum code size: clear = 4, end = 5
  std::vector<uint8_t> data;
  uint32_t acc = 0;
  int bits = 0;
  auto code = [&](uint32_t c) {
    acc |= c << bits, bits += 3;
    while (bits >= 8) data.push_back(static_cast<uint8_t>(acc)), acc >>= 8, bits -= 8;
  };
  for (size_t i = 0; i < idx.size(); ++i) {
    if (i % 2 == 0) code(4);
    code(idx[i]);
  }
  code(5);
  if (bits) data.push_back(static_cast<uint8_t>(acc));
  for (size_t pos = 0; pos < data.size(); pos += 255) {
    const size_t n = std::min<size_t>(255, data.size() - pos);
    b.push_back(static_cast<uint8_t>(n));
    b.insert(b.end(), data.begin() + pos, data.begin() + pos + n);
  }
  b.push_back(0);
  b.push_back(0x3B);
  return b;
}

// A deterministic RGB test pattern, HWC.
std::vector<uint8_t> pattern(int w, int h, int comps) {
  std::vector<uint8_t> p(static_cast<size_t>(w) * h * comps);
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<uint8_t>((i * 37 + (i >> 3) * 11) & 0xFF);
  return p;
}

std::string error_of(const std::vector<uint8_t>& bytes, const ImageLimits& limits = {}) {
  try {
    (void)decode_image(bytes, limits);
  } catch (const MediaError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    return msg;
  }
  return "(no error)";
}

bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

// ---- the fixture ----

TEST(MediaImage, SniffsFormats) {
  EXPECT_EQ(sniff_image_format(read_bytes(inputs_dir() + "scene_640x480.jpg")), ImageFormat::Jpeg);
  EXPECT_EQ(sniff_image_format(read_bytes(inputs_dir() + "wide_640x360.png")), ImageFormat::Png);
  const std::vector<uint8_t> webp = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'E', 'B', 'P'};
  EXPECT_EQ(sniff_image_format(webp), ImageFormat::Webp);
  const std::vector<uint8_t> text = {'h', 'e', 'l', 'l', 'o'};
  EXPECT_EQ(sniff_image_format(text), ImageFormat::Unknown);
}

TEST(MediaImage, FixtureJpegDecodesAsPillow) {
  const RgbImage img = decode_image_file(inputs_dir() + "scene_640x480.jpg");
  ASSERT_EQ(img.width, 640);
  ASSERT_EQ(img.height, 480);
  const auto want = read_bytes(inputs_dir() + "scene_640x480.decoded_rgb.u8.bin");
  ASSERT_EQ(img.rgb.size(), want.size());
  int max_diff = 0;
  size_t n_diff = 0;
  for (size_t k = 0; k < want.size(); ++k) {
    const int d = std::abs(int(img.rgb[k]) - int(want[k]));
    max_diff = std::max(max_diff, d);
    n_diff += d != 0;
  }
  EXPECT_EQ(max_diff, 0) << n_diff << " of " << want.size() << " values differ";
}

TEST(MediaImage, FixturePngsDecode) {
  for (const auto& in : kInputs) {
    const RgbImage img = decode_image_file(inputs_dir() + in.file);
    EXPECT_EQ(img.width, in.width) << in.name;
    EXPECT_EQ(img.height, in.height) << in.name;
    const ImageInfo info = probe_image(read_bytes(inputs_dir() + in.file));
    EXPECT_EQ(info.width, in.width);
    EXPECT_EQ(info.height, in.height);
  }
  // The 512x512 image is not resized, so its golden pixel_values are its decoded pixels.
  const RgbImage img = decode_image_file(inputs_dir() + "gradient_shapes_512x512.png");
  const auto pv = test::read_f32_file(inputs_dir() + "gradient_shapes_512x512.pixel_values.f32.bin");
  ASSERT_EQ(pv.size(), size_t{3} * 512 * 512);
  size_t n_diff = 0;
  for (size_t p = 0; p < size_t{512} * 512; ++p)
    for (int c = 0; c < 3; ++c) n_diff += std::lround(pv[c * 512 * 512 + p] * 255.0f) != img.rgb[p * 3 + c];
  EXPECT_EQ(n_diff, 0u);
}

namespace {

struct Diff {
  float max_abs = 0;
  size_t n_diff = 0;
};

Diff compare(const std::vector<float>& got, const std::vector<float>& want) {
  Diff d;
  EXPECT_EQ(got.size(), want.size());
  for (size_t k = 0; k < std::min(got.size(), want.size()); ++k) {
    const float a = std::fabs(got[k] - want[k]);
    d.max_abs = std::max(d.max_abs, a);
    d.n_diff += got[k] != want[k];
  }
  return d;
}

}  // namespace

// Decode + resize + rescale from the file: bit-exact with the golden pixel_values (the README's tolerance is
// one uint8 level; reproducing torch's float32 kernel gives none).
TEST(MediaPreprocess, FixtureInputsMatchGoldenPixelValues) {
  for (const auto& in : kInputs) {
    const auto got = preprocess_image(decode_image_file(inputs_dir() + in.file), 512);
    const auto want = test::read_f32_file(inputs_dir() + in.name + ".pixel_values.f32.bin");
    const Diff d = compare(got, want);
    EXPECT_LE(d.max_abs, 1.0f / 255.0f + 1e-7f) << in.name;  // the README's tolerance
    EXPECT_EQ(d.n_diff, 0u) << in.name << ": max " << d.max_abs;
  }
}

// The resize alone, from the fixture's decoded JPEG pixels (independent of the JPEG decoder).
TEST(MediaPreprocess, FromFixtureDecodedJpeg) {
  RgbImage img{640, 480, read_bytes(inputs_dir() + "scene_640x480.decoded_rgb.u8.bin")};
  const Diff d = compare(preprocess_image(img, 512), test::read_f32_file(inputs_dir() + "scene_640x480.pixel_values.f32.bin"));
  EXPECT_EQ(d.n_diff, 0u) << "max " << d.max_abs;
}

// The 768 input: the 512 PNG up-sampled by 3/2 with the same rule, as uint8 CHW.
TEST(MediaPreprocess, Gradient768MatchesGolden) {
  const auto got = resize_to_square_u8_chw(decode_image_file(inputs_dir() + "gradient_shapes_512x512.png"), 768);
  const auto want = read_bytes(inputs_dir() + "gradient_shapes_512x512.res768.u8.bin");
  ASSERT_EQ(got.size(), want.size());
  size_t n_diff = 0;
  for (size_t k = 0; k < got.size(); ++k) n_diff += got[k] != want[k];
  EXPECT_EQ(n_diff, 0u);
}

TEST(MediaPreprocess, RescaleIsFloat32Product) {
  const auto v = rescale_u8_chw({0, 1, 128, 255});
  const float inv = static_cast<float>(1.0 / 255.0);
  EXPECT_EQ(v[0], 0.0f);
  EXPECT_EQ(v[1], inv);
  EXPECT_EQ(v[2], 128.0f * inv);
  EXPECT_EQ(v[3], 255.0f * inv);
}

TEST(MediaPreprocess, StretchesAndHandlesExtremeShapes) {
  // A uniform image stays uniform at any size and aspect (weights sum to 1).
  for (auto [w, h] : {std::pair{1, 1}, {1, 300}, {700, 3}, {2000, 2000}, {31, 17}}) {
    RgbImage img{w, h, std::vector<uint8_t>(static_cast<size_t>(w) * h * 3)};
    for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = static_cast<uint8_t>(i % 3 == 0 ? 200 : i % 3 == 1 ? 7 : 255);
    const auto out = resize_to_square_u8_chw(img, 64);
    ASSERT_EQ(out.size(), size_t{3} * 64 * 64);
    for (size_t p = 0; p < size_t{64} * 64; ++p) {
      ASSERT_EQ(out[p], 200) << w << "x" << h;
      ASSERT_EQ(out[64 * 64 + p], 7);
      ASSERT_EQ(out[2 * 64 * 64 + p], 255);
    }
  }
  // A left/right split stays left/right after stretching a wide image (no letterbox, no crop).
  RgbImage wide{400, 100, std::vector<uint8_t>(400 * 100 * 3)};
  for (int y = 0; y < 100; ++y)
    for (int x = 200; x < 400; ++x) std::fill_n(&wide.rgb[(y * 400 + x) * 3], 3, 255);
  const auto out = resize_to_square_u8_chw(wide, 32);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y) {
      EXPECT_EQ(out[c * 1024 + y * 32 + 0], 0);
      EXPECT_EQ(out[c * 1024 + y * 32 + 31], 255);
    }
  EXPECT_THROW(resize_to_square_u8_chw(wide, 0), MediaError);
  EXPECT_THROW(resize_to_square_u8_chw(wide, kMaxPreprocessSize + 1), MediaError);
  EXPECT_THROW(resize_to_square_u8_chw(RgbImage{}, 16), MediaError);
}

// ---- formats and Pillow's convert("RGB") rules ----

TEST(MediaImage, PngWithAlphaDropsAlpha) {
  const int w = 5, h = 3;
  const auto rgba = pattern(w, h, 4);
  std::vector<uint8_t> png;
  ASSERT_TRUE(stbi_write_png_to_func(collect, &png, w, h, 4, rgba.data(), w * 4));
  const RgbImage img = decode_image(png);
  ASSERT_EQ(img.width, w);
  ASSERT_EQ(img.height, h);
  for (int i = 0; i < w * h; ++i)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(img.rgb[i * 3 + c], rgba[i * 4 + c]);  // not premultiplied
}

TEST(MediaImage, GrayscaleIsReplicated) {
  const int w = 4, h = 4;
  const auto gray = pattern(w, h, 1);
  std::vector<uint8_t> png;
  ASSERT_TRUE(stbi_write_png_to_func(collect, &png, w, h, 1, gray.data(), w));
  const RgbImage img = decode_image(png);
  for (int i = 0; i < w * h; ++i)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(img.rgb[i * 3 + c], gray[i]);
  // Gray + alpha: the alpha is dropped.
  const auto la = pattern(w, h, 2);
  png.clear();
  ASSERT_TRUE(stbi_write_png_to_func(collect, &png, w, h, 2, la.data(), w * 2));
  const RgbImage img2 = decode_image(png);
  for (int i = 0; i < w * h; ++i)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(img2.rgb[i * 3 + c], la[i * 2]);
}

TEST(MediaImage, SixteenBitPngAsPillow) {
  // RGB 16-bit: the high byte of each sample.
  const std::vector<uint16_t> rgb16 = {0x0000, 0x00FF, 0x0100, 0x7F80, 0x8000, 0xFFFF};
  std::vector<uint8_t> rows;
  for (uint16_t v : rgb16) rows.push_back(static_cast<uint8_t>(v >> 8)), rows.push_back(static_cast<uint8_t>(v));
  RgbImage img = decode_image(make_png(2, 1, 16, 2, rows));
  EXPECT_EQ(img.rgb, (std::vector<uint8_t>{0x00, 0x00, 0x01, 0x7F, 0x80, 0xFF}));
  // RGBA 16-bit: high bytes, alpha dropped.
  const std::vector<uint16_t> rgba16 = {0x1234, 0xABCD, 0xFF00, 0x0001};
  rows.clear();
  for (uint16_t v : rgba16) rows.push_back(static_cast<uint8_t>(v >> 8)), rows.push_back(static_cast<uint8_t>(v));
  img = decode_image(make_png(1, 1, 16, 6, rows));
  EXPECT_EQ(img.rgb, (std::vector<uint8_t>{0x12, 0xAB, 0xFF}));
  // Gray 16-bit: Pillow's mode "I" clipped to 255 (not the high byte).
  const std::vector<uint16_t> g16 = {0, 200, 255, 256, 0x8000, 0xFFFF};
  rows.clear();
  for (uint16_t v : g16) rows.push_back(static_cast<uint8_t>(v >> 8)), rows.push_back(static_cast<uint8_t>(v));
  img = decode_image(make_png(6, 1, 16, 0, rows));
  const std::vector<uint8_t> want = {0, 200, 255, 255, 255, 255};
  for (int i = 0; i < 6; ++i)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(img.rgb[i * 3 + c], want[i]) << i;
}

TEST(MediaImage, PalettePngWithTransparencyUsesPaletteColours) {
  const std::vector<uint8_t> plte = {10, 20, 30, 200, 100, 50};
  const std::vector<uint8_t> trns = {0};  // index 0 fully transparent: its colour is still used
  const RgbImage img = decode_image(make_png(2, 1, 8, 3, {0, 1}, plte, trns));
  EXPECT_EQ(img.rgb, (std::vector<uint8_t>{10, 20, 30, 200, 100, 50}));
}

TEST(MediaImage, GifFirstFrame) {
  const uint8_t palette[12] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 99, 199};
  const std::vector<uint8_t> idx = {0, 1, 2, 3, 3, 2, 1, 0, 0, 0, 3, 3};
  const RgbImage img = decode_image(make_gif(4, 3, palette, idx));
  ASSERT_EQ(img.width, 4);
  ASSERT_EQ(img.height, 3);
  for (size_t i = 0; i < idx.size(); ++i)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(img.rgb[i * 3 + c], palette[idx[i] * 3 + c]) << i;
}

TEST(MediaImage, Bmp) {
  const int w = 7, h = 5;  // odd width: rows are padded in the file
  const auto rgb = pattern(w, h, 3);
  std::vector<uint8_t> bmp;
  ASSERT_TRUE(stbi_write_bmp_to_func(collect, &bmp, w, h, 3, rgb.data()));
  EXPECT_EQ(sniff_image_format(bmp), ImageFormat::Bmp);
  const RgbImage img = decode_image(bmp);
  EXPECT_EQ(img.width, w);
  EXPECT_EQ(img.rgb, rgb);
}

TEST(MediaImage, WebpLosslessAndWithAlpha) {
  const int w = 9, h = 6;
  const auto rgb = pattern(w, h, 3);
  uint8_t* out = nullptr;
  size_t n = WebPEncodeLosslessRGB(rgb.data(), w, h, w * 3, &out);
  ASSERT_GT(n, 0u);
  std::vector<uint8_t> webp(out, out + n);
  WebPFree(out);
  RgbImage img = decode_image(webp);
  EXPECT_EQ(img.width, w);
  EXPECT_EQ(img.rgb, rgb);
  // Alpha is dropped, not composited (alpha 128 so the encoder keeps the colours exactly).
  auto rgba = pattern(w, h, 4);
  for (int i = 0; i < w * h; ++i) rgba[i * 4 + 3] = 128;
  n = WebPEncodeLosslessRGBA(rgba.data(), w, h, w * 4, &out);
  ASSERT_GT(n, 0u);
  webp.assign(out, out + n);
  WebPFree(out);
  img = decode_image(webp);
  for (int i = 0; i < w * h; ++i)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(img.rgb[i * 3 + c], rgba[i * 4 + c]);
  // Lossy decodes too (values not compared: the codec is lossy).
  n = WebPEncodeRGB(rgb.data(), w, h, w * 3, 90, &out);
  ASSERT_GT(n, 0u);
  webp.assign(out, out + n);
  WebPFree(out);
  EXPECT_EQ(decode_image(webp).rgb.size(), rgb.size());
}

// ---- errors: one-line MediaError, never a crash ----

TEST(MediaImage, UnknownAndEmptyInput) {
  EXPECT_TRUE(has(error_of({}), "empty input"));
  EXPECT_TRUE(has(error_of({'h', 'e', 'l', 'l', 'o'}), "unknown format"));
  EXPECT_THROW(probe_image(std::vector<uint8_t>{0, 1, 2}), MediaError);
  EXPECT_THROW(decode_image_file("/nonexistent/x.png"), MediaError);
}

TEST(MediaImage, TruncatedInputsOfEveryFormat) {
  const auto jpg = read_bytes(inputs_dir() + "scene_640x480.jpg");
  const auto png = read_bytes(inputs_dir() + "wide_640x360.png");
  const auto rgb = pattern(8, 8, 3);
  std::vector<uint8_t> bmp;
  ASSERT_TRUE(stbi_write_bmp_to_func(collect, &bmp, 8, 8, 3, rgb.data()));
  uint8_t* out = nullptr;
  const size_t n = WebPEncodeLosslessRGB(rgb.data(), 8, 8, 24, &out);
  const std::vector<uint8_t> webp(out, out + n);
  WebPFree(out);
  const uint8_t palette[12] = {};
  const auto gif = make_gif(4, 4, palette, std::vector<uint8_t>(16, 1));
  for (const std::vector<uint8_t>* file : std::vector<const std::vector<uint8_t>*>{&jpg, &png, &bmp, &webp, &gif}) {
    const ImageFormat f = sniff_image_format(*file);
    // Cuts in the header, at the middle and just before the end.
    for (size_t cut : {size_t{4}, size_t{12}, size_t{30}, file->size() / 2, file->size() * 9 / 10}) {
      if (cut >= file->size()) continue;
      const std::vector<uint8_t> part(file->begin(), file->begin() + cut);
      const std::string msg = error_of(part);
      EXPECT_NE(msg, "(no error)") << image_format_name(f) << " cut at " << cut;
      EXPECT_TRUE(has(msg, image_format_name(f)) || has(msg, "unknown format")) << msg;
    }
  }
  EXPECT_TRUE(has(error_of({jpg.begin(), jpg.begin() + jpg.size() / 2}), "truncated"));
  EXPECT_TRUE(has(error_of({png.begin(), png.begin() + png.size() / 2}), "PNG image: truncated chunk"));
  // A chunk claiming 2 GiB in a small file is refused before stb_image allocates for it.
  auto big = make_png(2, 2, 8, 2, std::vector<uint8_t>(12, 7));
  big[33] = 0x7F, big[34] = 0xFF, big[35] = 0xFF, big[36] = 0xFF;  // the IDAT length (after IHDR)
  EXPECT_TRUE(has(error_of(big), "PNG image: truncated chunk")) << error_of(big);
}

TEST(MediaImage, CorruptData) {
  auto png = read_bytes(inputs_dir() + "wide_640x360.png");
  for (size_t k = png.size() / 3; k < png.size() / 3 + 64; ++k) png[k] ^= 0x5A;  // inside the zlib stream
  EXPECT_TRUE(has(error_of(png), "PNG image: corrupt"));
  std::vector<uint8_t> webp = {'R', 'I', 'F', 'F', 30, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8', 'X'};
  webp.resize(38, 0xEE);
  EXPECT_TRUE(has(error_of(webp), "WebP image"));
  std::vector<uint8_t> bm = {'B', 'M', 1, 2, 3, 4, 5, 6, 7, 8, 9};
  EXPECT_TRUE(has(error_of(bm), "BMP image: truncated header"));
  // A complete info header with an impossible 7 bits per pixel.
  bm.assign(80, 0);
  bm[0] = 'B', bm[1] = 'M', bm[10] = 54, bm[14] = 40, bm[18] = 2, bm[22] = 2, bm[26] = 1, bm[28] = 7;
  EXPECT_TRUE(has(error_of(bm), "BMP image: corrupt")) << error_of(bm);
}

// A PNG whose compressed stream inflates far past what its header's size needs (a 1x1 image whose IDAT is 8 MB
// of zeros in 50 KB): refused instead of inflated whole (stb's inflater grows its buffer for as long as the
// stream goes on; a 2 MB file took 2 GB and was accepted).
TEST(MediaImage, PngInflatingPastItsSizeIsRefused) {
  std::vector<uint8_t> z = {0x78, 0x01};
  uint64_t acc = 0;
  int nbits = 0;
  auto put = [&](uint32_t v, int n) {  // n bits, least significant first
    acc |= static_cast<uint64_t>(v) << nbits;
    nbits += n;
    while (nbits >= 8) z.push_back(static_cast<uint8_t>(acc)), acc >>= 8, nbits -= 8;
  };
  auto put_code = [&](uint32_t code, int n) {  // a Huffman code, most significant bit first
    for (int i = n - 1; i >= 0; --i) put((code >> i) & 1, 1);
  };
  put(1, 1);  // the final block
  put(1, 2);  // fixed Huffman codes
  put_code(0x30, 8);  // literal 0
  const uint64_t matches = (8u << 20) / 258;
  for (uint64_t i = 0; i < matches; ++i) {
    put_code(0xC5, 8);  // length code 285: 258 bytes
    put_code(0, 5);     // distance code 0: distance 1
  }
  put_code(0, 7);  // end of block
  if (nbits) put(0, 8 - nbits);
  const uint64_t n = 1 + matches * 258;
  put_be32(z, static_cast<uint32_t>(((n % 65521) << 16) | 1));  // Adler-32 of n zero bytes
  std::vector<uint8_t> b = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<uint8_t> ihdr;
  put_be32(ihdr, 1);
  put_be32(ihdr, 1);
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});
  png_chunk(b, "IHDR", ihdr);
  png_chunk(b, "IDAT", z);
  png_chunk(b, "IEND", {});
  ASSERT_LT(b.size(), 100u << 10);
  EXPECT_TRUE(has(error_of(b), "PNG image: corrupt")) << error_of(b);
  // The same stream cut to what the image needs decodes (the limit leaves room for real files).
  EXPECT_EQ(error_of(make_png(1, 1, 8, 2, {0, 0, 0})), "(no error)");
}

TEST(MediaImage, ZeroSize) {
  EXPECT_TRUE(has(error_of(make_png(0, 4, 8, 2, {})), "PNG image")) << error_of(make_png(0, 4, 8, 2, {}));
  const uint8_t palette[12] = {};
  EXPECT_NE(error_of(make_gif(0, 0, palette, {})), "(no error)");
  // A JPEG whose SOF0 says height 0 (a DNL-style height libjpeg-turbo refuses).
  auto jpg = read_bytes(inputs_dir() + "scene_640x480.jpg");
  for (size_t k = 2; k + 8 < jpg.size(); ++k)
    if (jpg[k] == 0xFF && (jpg[k + 1] == 0xC0 || jpg[k + 1] == 0xC2)) {
      jpg[k + 5] = 0, jpg[k + 6] = 0;
      break;
    }
  EXPECT_TRUE(has(error_of(jpg), "JPEG image")) << error_of(jpg);
}

TEST(MediaImage, HugeRejectedFromTheHeaderBeforeDecoding) {
  // A PNG header claiming 60000 x 60000 with almost no data: refused by the limit, not by the decoder.
  std::string msg = error_of(make_png(60000, 60000, 8, 2, {}));
  EXPECT_TRUE(has(msg, "60000x60000")) << msg;
  EXPECT_TRUE(has(msg, "above the limit")) << msg;
  // A JPEG whose frame header is rewritten to 65000 x 65000.
  auto jpg = read_bytes(inputs_dir() + "scene_640x480.jpg");
  for (size_t k = 2; k + 8 < jpg.size(); ++k)
    if (jpg[k] == 0xFF && (jpg[k + 1] == 0xC0 || jpg[k + 1] == 0xC2)) {
      jpg[k + 5] = 0xFD, jpg[k + 6] = 0xE8, jpg[k + 7] = 0xFD, jpg[k + 8] = 0xE8;
      break;
    }
  msg = error_of(jpg);
  EXPECT_TRUE(has(msg, "JPEG image: 65000x65000 is 4225000000 pixels, above the limit")) << msg;
  // A real file over a caller's smaller limit.
  msg = error_of(read_bytes(inputs_dir() + "wide_640x360.png"), {.max_pixels = 640 * 360 - 1});
  EXPECT_TRUE(has(msg, "PNG image: 640x360 is 230400 pixels, above the limit of 230399")) << msg;
  EXPECT_EQ(decode_image(read_bytes(inputs_dir() + "wide_640x360.png"), {.max_pixels = 640 * 360}).width, 640);
  // WebP and GIF headers over the limit.
  const auto rgb = pattern(20, 20, 3);
  uint8_t* out = nullptr;
  const size_t n = WebPEncodeLosslessRGB(rgb.data(), 20, 20, 60, &out);
  const std::vector<uint8_t> webp(out, out + n);
  WebPFree(out);
  EXPECT_TRUE(has(error_of(webp, {.max_pixels = 399}), "WebP image: 20x20 is 400 pixels")) << error_of(webp, {.max_pixels = 399});
  const uint8_t palette[12] = {};
  const auto gif = make_gif(20, 20, palette, std::vector<uint8_t>(400, 0));
  EXPECT_TRUE(has(error_of(gif, {.max_pixels = 399}), "GIF image: 20x20")) << error_of(gif, {.max_pixels = 399});
}

// The fuzz seeds (one tiny file per format and variant) decode and preprocess; the inputs that once failed
// under the fuzzer decode or throw a MediaError.
TEST(MediaImage, FuzzSeedsAndRegressions) {
  const std::filesystem::path fuzz = std::filesystem::path(G3N_SOURCE_DIR) / "fuzz";
  int seeds = 0;
  for (const auto& e : std::filesystem::directory_iterator(fuzz / "image-seeds")) {
    const RgbImage img = decode_image(read_bytes(e.path()));
    EXPECT_EQ(img.width, 24) << e.path();
    EXPECT_EQ(preprocess_image(img, 16).size(), size_t{3} * 16 * 16);
    ++seeds;
  }
  EXPECT_GE(seeds, 10);
  for (const auto& e : std::filesystem::directory_iterator(fuzz / "image-regressions")) {
    try {
      (void)preprocess_image(decode_image(read_bytes(e.path())), 16);
    } catch (const MediaError&) {
    }
  }
}
