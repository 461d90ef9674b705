#include "media/image_orientation.h"

#include <cstring>
#include <string_view>

namespace g3n {
namespace {

// A bounds-checked view of untrusted bytes: every read outside the data returns nullopt-like false.
struct Reader {
  std::span<const uint8_t> b;
  bool little = false;  // TIFF byte order
  bool u16(size_t at, uint32_t& v) const {
    if (at > b.size() || b.size() - at < 2) return false;
    v = little ? (b[at] | (b[at + 1] << 8)) : ((b[at] << 8) | b[at + 1]);
    return true;
  }
  bool u32(size_t at, uint32_t& v) const {
    uint32_t a = 0, c = 0;
    if (!u16(at, a) || !u16(at + 2, c)) return false;
    v = little ? (a | (c << 16)) : ((a << 16) | c);
    return true;
  }
};

// Orientation from a TIFF structure ("II*\0" or "MM\0*", IFD0 offset, 12-byte entries).
int tiff_orientation(std::span<const uint8_t> tiff) {
  if (tiff.size() < 8) return 1;
  Reader r{tiff};
  if (tiff[0] == 'I' && tiff[1] == 'I') r.little = true;
  else if (!(tiff[0] == 'M' && tiff[1] == 'M')) return 1;
  uint32_t magic = 0, ifd = 0, count = 0;
  if (!r.u16(2, magic) || magic != 42 || !r.u32(4, ifd) || !r.u16(ifd, count)) return 1;
  if (tiff.size() - ifd - 2 < size_t{12} * count) return 1;  // the directory must fit, as Pillow reads it whole
  for (uint32_t i = 0; i < count; ++i) {
    const size_t at = size_t{ifd} + 2 + size_t{12} * i;
    uint32_t tag = 0, type = 0, n = 0, value = 0;
    if (!r.u16(at, tag) || !r.u16(at + 2, type) || !r.u32(at + 4, n) || !r.u16(at + 8, value)) return 1;
    if (tag != 0x0112) continue;
    // SHORT, one value, stored left-justified in the 4-byte value field.
    return type == 3 && n >= 1 && value >= 1 && value <= 8 ? static_cast<int>(value) : 1;
  }
  return 1;
}

int jpeg_orientation(std::span<const uint8_t> b) {
  size_t at = 2;  // after SOI
  while (at + 4 <= b.size()) {
    if (b[at] != 0xFF) return 1;
    const uint8_t marker = b[at + 1];
    if (marker == 0xFF) {  // fill byte
      ++at;
      continue;
    }
    if (marker == 0xDA || marker == 0xD9) return 1;  // start of scan / end of image: no APP1 before
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // markers without a length
      at += 2;
      continue;
    }
    const size_t len = (size_t{b[at + 2]} << 8) | b[at + 3];  // includes its own two bytes
    if (len < 2 || len > b.size() - at - 2) return 1;
    const std::span<const uint8_t> payload = b.subspan(at + 4, len - 2);
    if (marker == 0xE1 && payload.size() >= 6 && std::memcmp(payload.data(), "Exif\0\0", 6) == 0)
      return tiff_orientation(payload.subspan(6));
    at += 2 + len;
  }
  return 1;
}

int png_orientation(std::span<const uint8_t> b) {
  size_t at = 8;  // after the signature
  while (at + 12 <= b.size()) {
    const size_t len = (size_t{b[at]} << 24) | (size_t{b[at + 1]} << 16) | (size_t{b[at + 2]} << 8) | b[at + 3];
    if (len > b.size() - at - 12) return 1;
    const std::string_view type(reinterpret_cast<const char*>(b.data() + at + 4), 4);
    if (type == "eXIf") {
      std::span<const uint8_t> tiff = b.subspan(at + 8, len);
      // Some writers keep JPEG's "Exif\0\0" prefix in the chunk; Pillow accepts both.
      if (tiff.size() >= 6 && std::memcmp(tiff.data(), "Exif\0\0", 6) == 0) tiff = tiff.subspan(6);
      return tiff_orientation(tiff);
    }
    if (type == "IEND") return 1;
    at += 12 + len;
  }
  return 1;
}

}  // namespace

int exif_orientation(std::span<const uint8_t> bytes) {
  switch (sniff_image_format(bytes)) {
    case ImageFormat::Jpeg: return jpeg_orientation(bytes);
    case ImageFormat::Png: return png_orientation(bytes);
    default: return 1;
  }
}

RgbImage apply_orientation(RgbImage img, int orientation) {
  if (orientation < 2 || orientation > 8) return img;
  const int w = img.width, h = img.height;
  const bool swap = orientation >= 5;  // 5-8 exchange width and height
  RgbImage out{swap ? h : w, swap ? w : h, {}};
  out.rgb.resize(img.rgb.size());
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;  // the source pixel of output (x, y)
      switch (orientation) {
        case 2: sx = w - 1 - x; break;                     // mirror left-right
        case 3: sx = w - 1 - x, sy = h - 1 - y; break;     // 180 degrees
        case 4: sy = h - 1 - y; break;                     // mirror top-bottom
        case 5: sx = y, sy = x; break;                     // transpose
        case 6: sx = y, sy = h - 1 - x; break;             // 90 degrees clockwise
        case 7: sx = w - 1 - y, sy = h - 1 - x; break;     // transverse
        case 8: sx = w - 1 - y, sy = x; break;             // 90 degrees counter-clockwise
      }
      std::memcpy(&out.rgb[(size_t(y) * out.width + x) * 3], &img.rgb[(size_t(sy) * w + sx) * 3], 3);
    }
  return out;
}

}  // namespace g3n
