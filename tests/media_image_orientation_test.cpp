// EXIF orientation (media/image_orientation.h): the eight transposes against hand-written expectations
// (PIL's exif_transpose), JPEG APP1 and PNG eXIf in both byte orders through decode_image, and malformed
// tags, which must leave the image as stored and never fail the decode.
#include <turbojpeg.h>

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "media/image.h"
#include "media/image_orientation.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

using namespace g3n;

namespace {

// 3 x 2 pixels "A B C / D E F", each a distinct grey level (so PNG keeps them exactly).
RgbImage letters() {
  RgbImage img{3, 2, {}};
  for (uint8_t v : {10, 20, 30, 40, 50, 60}) img.rgb.insert(img.rgb.end(), {v, uint8_t(v + 1), uint8_t(v + 2)});
  return img;
}
// The red channel of each pixel, row by row, as letters.
std::string spell(const RgbImage& img) {
  std::string s;
  for (int y = 0; y < img.height; ++y) {
    if (y) s += '/';
    for (int x = 0; x < img.width; ++x) s += char('A' + img.rgb[(size_t(y) * img.width + x) * 3] / 10 - 1);
  }
  return s;
}

// What Pillow's exif_transpose makes of "ABC/DEF" for orientations 1..8 (worked out by hand).
const char* const kExpected[9] = {"", "ABC/DEF", "CBA/FED", "FED/CBA", "DEF/ABC", "AD/BE/CF", "DA/EB/FC", "FC/EB/DA", "CF/BE/AD"};

// A TIFF block with one IFD0 entry (tag, type, count, value) after an unrelated entry.
std::vector<uint8_t> tiff(bool little, uint32_t value, uint16_t type = 3, uint32_t count = 1, uint16_t tag = 0x0112) {
  std::vector<uint8_t> t;
  auto u16 = [&](uint32_t v) {
    if (little) t.insert(t.end(), {uint8_t(v), uint8_t(v >> 8)});
    else t.insert(t.end(), {uint8_t(v >> 8), uint8_t(v)});
  };
  auto u32 = [&](uint32_t v) {
    if (little) u16(v & 0xFFFF), u16(v >> 16);
    else u16(v >> 16), u16(v & 0xFFFF);
  };
  const uint8_t order = little ? 'I' : 'M';
  t.push_back(order);
  t.push_back(order);
  u16(42);
  u32(8);
  u16(2);
  u16(0x010F), u16(2), u32(4), u32(0);  // Make: an ASCII entry before the orientation
  u16(tag), u16(type), u32(count);
  u16(value), u16(0);  // a SHORT sits left-justified in the value field
  u32(0);              // no next IFD
  return t;
}

void collect(void* ctx, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(ctx);
  out->insert(out->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
}

uint32_t crc32(const uint8_t* p, size_t n) {
  uint32_t crc = ~0u;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
  }
  return ~crc;
}

// The letters as a PNG, with an eXIf chunk holding `exif` right after IHDR when it is not empty.
std::vector<uint8_t> png(const std::vector<uint8_t>& exif) {
  const RgbImage img = letters();
  std::vector<uint8_t> b;
  EXPECT_TRUE(stbi_write_png_to_func(collect, &b, img.width, img.height, 3, img.rgb.data(), img.width * 3));
  if (exif.empty()) return b;
  std::vector<uint8_t> chunk;
  for (int s = 24; s >= 0; s -= 8) chunk.push_back(uint8_t(exif.size() >> s));
  chunk.insert(chunk.end(), {'e', 'X', 'I', 'f'});
  chunk.insert(chunk.end(), exif.begin(), exif.end());
  const uint32_t crc = crc32(chunk.data() + 4, chunk.size() - 4);
  for (int s = 24; s >= 0; s -= 8) chunk.push_back(uint8_t(crc >> s));
  b.insert(b.begin() + 33, chunk.begin(), chunk.end());  // signature (8) + IHDR chunk (25)
  return b;
}

// A 16 x 8 JPEG of a left-to-right, top-to-bottom ramp, with an APP1 "Exif" segment holding `tiff_block`
// right after SOI when it is not empty.
std::vector<uint8_t> jpeg(const std::vector<uint8_t>& tiff_block) {
  const int w = 16, h = 8;
  std::vector<uint8_t> rgb;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) rgb.insert(rgb.end(), {uint8_t(x * 15), uint8_t(y * 30), uint8_t(128)});
  tjhandle tj = tjInitCompress();
  unsigned char* out = nullptr;
  unsigned long size = 0;
  EXPECT_EQ(tjCompress2(tj, rgb.data(), w, 0, h, TJPF_RGB, &out, &size, TJSAMP_444, 95, 0), 0);
  std::vector<uint8_t> b(out, out + size);
  tjFree(out);
  tjDestroy(tj);
  if (tiff_block.empty()) return b;
  std::vector<uint8_t> app1 = {0xFF, 0xE1, 0, 0, 'E', 'x', 'i', 'f', 0, 0};
  app1.insert(app1.end(), tiff_block.begin(), tiff_block.end());
  const size_t len = app1.size() - 2;
  app1[2] = uint8_t(len >> 8), app1[3] = uint8_t(len);
  b.insert(b.begin() + 2, app1.begin(), app1.end());
  return b;
}

TEST(MediaImageOrientation, EightTransposesAsPillow) {
  for (int o = 1; o <= 8; ++o) {
    const RgbImage r = apply_orientation(letters(), o);
    EXPECT_EQ(spell(r), kExpected[o]) << "orientation " << o;
    EXPECT_EQ(r.rgb[1], r.rgb[0] + 1) << "channels stay together";
  }
  EXPECT_EQ(spell(apply_orientation(letters(), 0)), "ABC/DEF");
  EXPECT_EQ(spell(apply_orientation(letters(), 9)), "ABC/DEF");
}

TEST(MediaImageOrientation, PngExifChunkInBothByteOrders) {
  EXPECT_EQ(spell(decode_image(png({}))), "ABC/DEF");
  for (bool little : {true, false})
    for (int o = 1; o <= 8; ++o) {
      const std::vector<uint8_t> bytes = png(tiff(little, uint32_t(o)));
      EXPECT_EQ(exif_orientation(bytes), o);
      const RgbImage img = decode_image(bytes);
      EXPECT_EQ(spell(img), kExpected[o]) << "orientation " << o << (little ? " II" : " MM");
      const ImageInfo info = probe_image(bytes);  // the stored size
      EXPECT_EQ(info.width, 3);
      EXPECT_EQ(info.height, 2);
    }
  // Some writers keep JPEG's "Exif\0\0" prefix inside the PNG chunk.
  std::vector<uint8_t> prefixed = {'E', 'x', 'i', 'f', 0, 0};
  const std::vector<uint8_t> t = tiff(false, 6);
  prefixed.insert(prefixed.end(), t.begin(), t.end());
  EXPECT_EQ(spell(decode_image(png(prefixed))), kExpected[6]);
}

TEST(MediaImageOrientation, JpegApp1TurnsTheDecodedPixels) {
  const RgbImage plain = decode_image(jpeg({}));
  ASSERT_EQ(plain.width, 16);
  for (bool little : {true, false})
    for (int o = 1; o <= 8; ++o) {
      const std::vector<uint8_t> bytes = jpeg(tiff(little, uint32_t(o)));
      EXPECT_EQ(exif_orientation(bytes), o);
      const RgbImage img = decode_image(bytes);
      const RgbImage want = apply_orientation(plain, o);
      EXPECT_EQ(img.width, o >= 5 ? 8 : 16);
      EXPECT_EQ(img.width, want.width);
      EXPECT_EQ(img.height, want.height);
      EXPECT_EQ(img.rgb, want.rgb) << "orientation " << o;
    }
  // Orientation 6 (90 degrees clockwise): the stored bottom-left corner (dark red, bright green) is now
  // the top-left one.
  const RgbImage six = decode_image(jpeg(tiff(true, 6)));
  EXPECT_LT(six.rgb[0], 40);
  EXPECT_GT(six.rgb[1], 180);
}

TEST(MediaImageOrientation, MalformedTagsAreIgnored) {
  const RgbImage plain = decode_image(jpeg({}));
  std::vector<std::vector<uint8_t>> bad = {
      tiff(true, 0), tiff(true, 9), tiff(false, 300),  // values outside 1..8
      tiff(true, 6, 4),                                // LONG instead of SHORT
      tiff(true, 6, 3, 0),                             // no values
      tiff(true, 6, 3, 1, 0x0113),                     // another tag
      {'I', 'I', 42, 0},                               // truncated header
      {'X', 'X', 42, 0, 8, 0, 0, 0, 1, 0},             // no byte order mark
  };
  std::vector<uint8_t> far = tiff(true, 6);
  far[4] = 0xF0, far[5] = 0xFF, far[6] = 0xFF, far[7] = 0x7F;  // IFD0 far outside the data
  bad.push_back(far);
  std::vector<uint8_t> many = tiff(false, 6);
  many[8] = 0xFF, many[9] = 0xFF;  // 65535 entries in a 38-byte block
  bad.push_back(many);
  std::vector<uint8_t> cut = tiff(true, 6);
  cut.resize(cut.size() - 10);  // ends inside the orientation entry
  bad.push_back(cut);
  for (size_t i = 0; i < bad.size(); ++i) {
    const std::vector<uint8_t> bytes = jpeg(bad[i]);
    EXPECT_EQ(exif_orientation(bytes), 1) << "case " << i;
    EXPECT_EQ(decode_image(bytes).rgb, plain.rgb) << "case " << i;
    EXPECT_EQ(exif_orientation(png(bad[i])), 1) << "png case " << i;
  }
  // An APP1 length running past the end of the file, and a PNG chunk length past the end: no orientation,
  // and the parsers stop without reading outside.
  std::vector<uint8_t> j = jpeg(tiff(true, 6));
  j[4] = 0xFF, j[5] = 0xF0;
  EXPECT_EQ(exif_orientation(j), 1);
  std::vector<uint8_t> p = png(tiff(true, 6));
  p[33] = 0x7F;
  EXPECT_EQ(exif_orientation(p), 1);
  // Formats without an orientation, and inputs too short to have one.
  EXPECT_EQ(exif_orientation({}), 1);
  const std::vector<uint8_t> soi = {0xFF, 0xD8, 0xFF};
  EXPECT_EQ(exif_orientation(soi), 1);
}

}  // namespace
