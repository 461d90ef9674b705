#include "media/image.h"

#include "media/image_orientation.h"
#include "media/stb_alloc_limit.h"

#include <turbojpeg.h>
#include <webp/decode.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <fstream>
#include <memory>
#include <string_view>

#include <stb/stb_image.h>

namespace g3n {

namespace {

bool starts_with(std::span<const uint8_t> b, std::string_view magic, size_t at = 0) {
  return b.size() >= at + magic.size() && std::memcmp(b.data() + at, magic.data(), magic.size()) == 0;
}

[[noreturn]] void fail(ImageFormat f, const std::string& what) {
  throw MediaError(std::string(image_format_name(f)) + " image: " + what);
}

// Library messages may end in a newline or contain one; keep the error to one line.
std::string one_line(const char* s) {
  std::string out = s ? s : "unknown error";
  for (char& c : out)
    if (c == '\n' || c == '\r') c = ' ';
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

void check_dims(ImageFormat f, int64_t w, int64_t h, const ImageLimits& limits) {
  if (w <= 0 || h <= 0) fail(f, "zero size (" + std::to_string(w) + "x" + std::to_string(h) + ")");
  const uint64_t pixels = static_cast<uint64_t>(w) * static_cast<uint64_t>(h);
  if (pixels > limits.max_pixels)
    fail(f, std::to_string(w) + "x" + std::to_string(h) + " is " + std::to_string(pixels) +
                " pixels, above the limit of " + std::to_string(limits.max_pixels));
}

struct TjDeleter {
  void operator()(void* h) const { tjDestroy(h); }
};
using TjHandle = std::unique_ptr<void, TjDeleter>;

struct StbDeleter {
  void operator()(void* p) const { stbi_image_free(p); }
};

TjHandle tj_open() {
  TjHandle h(tjInitDecompress());
  if (!h) throw MediaError("JPEG image: cannot initialise libjpeg-turbo: " + one_line(tjGetErrorStr2(nullptr)));
  return h;
}

ImageInfo jpeg_info(std::span<const uint8_t> b, tjhandle h) {
  int w = 0, hh = 0, subsamp = 0, cs = 0;
  if (b.size() > ULONG_MAX ||
      tjDecompressHeader3(h, b.data(), static_cast<unsigned long>(b.size()), &w, &hh, &subsamp, &cs) != 0)
    fail(ImageFormat::Jpeg, "bad header: " + one_line(tjGetErrorStr2(h)));
  if (cs == TJCS_CMYK || cs == TJCS_YCCK) fail(ImageFormat::Jpeg, "CMYK JPEG is not supported");
  return {ImageFormat::Jpeg, w, hh};
}

RgbImage decode_jpeg(std::span<const uint8_t> b, const ImageLimits& limits) {
  const TjHandle h = tj_open();
  const ImageInfo info = jpeg_info(b, h.get());
  check_dims(info.format, info.width, info.height, limits);
  RgbImage img{info.width, info.height, {}};
  img.rgb.resize(static_cast<size_t>(info.width) * info.height * 3);
  // libjpeg's defaults (islow DCT, fancy upsampling), which Pillow also uses; LIMITSCANS refuses a progressive
  // file of more than 500 scans (each a pass over the whole image: libjpeg-turbo's guard against CPU bombs).
  if (tjDecompress2(h.get(), b.data(), static_cast<unsigned long>(b.size()), img.rgb.data(), info.width, 0,
                    info.height, TJPF_RGB, TJFLAG_LIMITSCANS) != 0) {
    const std::string msg = one_line(tjGetErrorStr2(h.get()));
    // Warnings (e.g. extraneous bytes) leave a usable image and Pillow ignores them; a premature end is
    // a truncated file, which Pillow refuses ("image file is truncated").
    if (tjGetErrorCode(h.get()) != TJERR_WARNING || msg.find("Premature end") != std::string::npos)
      fail(ImageFormat::Jpeg, "corrupt or truncated: " + msg);
  }
  return img;
}

ImageInfo webp_info(std::span<const uint8_t> b, WebPBitstreamFeatures& feat) {
  const VP8StatusCode st = WebPGetFeatures(b.data(), b.size(), &feat);
  if (st == VP8_STATUS_NOT_ENOUGH_DATA) fail(ImageFormat::Webp, "truncated header");
  if (st != VP8_STATUS_OK) fail(ImageFormat::Webp, "bad header (libwebp status " + std::to_string(st) + ")");
  return {ImageFormat::Webp, feat.width, feat.height};
}

RgbImage decode_webp(std::span<const uint8_t> b, const ImageLimits& limits) {
  WebPBitstreamFeatures feat;
  const ImageInfo info = webp_info(b, feat);
  check_dims(info.format, info.width, info.height, limits);
  if (feat.has_animation) fail(ImageFormat::Webp, "animated WebP is not supported");
  RgbImage img{info.width, info.height, {}};
  img.rgb.resize(static_cast<size_t>(info.width) * info.height * 3);
  // MODE_RGB drops alpha without compositing, as convert("RGB") does.
  if (!WebPDecodeRGBInto(b.data(), b.size(), img.rgb.data(), img.rgb.size(), info.width * 3))
    fail(ImageFormat::Webp, "corrupt or truncated");
  return img;
}

uint32_t le16(std::span<const uint8_t> b, size_t at) { return b[at] | (b[at + 1] << 8); }
uint32_t le32(std::span<const uint8_t> b, size_t at) { return le16(b, at) | (le16(b, at + 2) << 16); }
uint32_t be32(std::span<const uint8_t> b, size_t at) {
  return (uint32_t{b[at]} << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3];
}

// Dimensions straight from the PNG, GIF or BMP header: stb_image's own info call refuses large images
// with a generic message, and the limit must be checked (and named) before it runs.
ImageInfo stb_info(std::span<const uint8_t> b, ImageFormat f) {
  int64_t w = 0, h = 0;
  if (f == ImageFormat::Png) {
    if (b.size() < 24 || std::memcmp(b.data() + 12, "IHDR", 4) != 0) fail(f, "truncated or missing IHDR header");
    w = be32(b, 16), h = be32(b, 20);
    if (w > INT32_MAX || h > INT32_MAX) fail(f, "bad header: dimensions out of range");
  } else if (f == ImageFormat::Gif) {
    if (b.size() < 10) fail(f, "truncated header");
    w = le16(b, 6), h = le16(b, 8);
  } else {
    if (b.size() < 26) fail(f, "truncated header");
    if (le32(b, 14) == 12) {  // OS/2 core header: 16-bit sizes
      w = le16(b, 18), h = le16(b, 20);
    } else {
      w = static_cast<int32_t>(le32(b, 18)), h = static_cast<int32_t>(le32(b, 22));
      if (h < 0 && h != INT32_MIN) h = -h;  // negative height: top-down rows
    }
  }
  return {f, static_cast<int>(std::clamp<int64_t>(w, INT32_MIN, INT32_MAX)),
          static_cast<int>(std::clamp<int64_t>(h, INT32_MIN, INT32_MAX))};
}

// stb_image decodes a GIF or an uncompressed BMP whose data ends early without an error (missing bytes read
// as zeros); Pillow refuses such files as truncated, and so do we. For PNG, stb allocates a chunk's claimed
// length before reading it (a 100-byte file could make it allocate 4 GiB; found by the fuzzer), so every
// chunk must fit in the file first.
void check_complete(std::span<const uint8_t> b, ImageFormat f, const ImageInfo& info) {
  if (f == ImageFormat::Png) {
    for (size_t pos = 8; pos < b.size();) {
      if (b.size() - pos < 12) fail(f, "truncated chunk");
      const uint64_t len = be32(b, pos);
      if (len > b.size() - pos - 12) fail(f, "truncated chunk");
      if (std::memcmp(b.data() + pos + 4, "IEND", 4) == 0) break;
      pos += 12 + len;
    }
    return;
  }
  if (f == ImageFormat::Bmp) {
    const uint32_t header = le32(b, 14);
    if (header < 40 || b.size() < 34) return;  // core header: stb checks what it reads
    const uint32_t bpp = le16(b, 28), compression = le32(b, 30);
    if (compression != 0 && compression != 3) return;  // RLE and others: stb refuses them itself
    const uint64_t row = (static_cast<uint64_t>(info.width) * bpp + 31) / 32 * 4;
    if (static_cast<uint64_t>(le32(b, 10)) + row * static_cast<uint64_t>(info.height) > b.size())
      fail(f, "truncated pixel data");
    return;
  }
  if (f != ImageFormat::Gif) return;
  // Walk the blocks up to the end of the first image's data.
  size_t pos = 13;
  if (b.size() < pos) fail(f, "truncated header");
  if (b[10] & 0x80) pos += size_t{3} << ((b[10] & 7) + 1);  // global colour table
  auto skip_sub_blocks = [&] {
    for (;;) {
      if (pos >= b.size()) fail(f, "truncated");
      const size_t n = b[pos++];
      if (n == 0) return;
      pos += n;
    }
  };
  for (;;) {
    if (pos >= b.size()) fail(f, "truncated");
    const uint8_t tag = b[pos];
    if (tag == 0x21) {  // extension: label, then sub-blocks
      pos += 2;
      skip_sub_blocks();
    } else if (tag == 0x2C) {  // image descriptor
      if (pos + 10 > b.size()) fail(f, "truncated");
      const uint8_t packed = b[pos + 9];
      pos += 10;
      if (packed & 0x80) pos += size_t{3} << ((packed & 7) + 1);  // local colour table
      pos += 1;  // LZW minimum code size
      skip_sub_blocks();
      return;
    } else if (tag == 0x3B) {
      fail(f, "no image in the file");
    } else {
      fail(f, "corrupt block structure");
    }
  }
}

RgbImage decode_stb(std::span<const uint8_t> b, ImageFormat f, const ImageLimits& limits) {
  const ImageInfo info = stb_info(b, f);
  check_dims(f, info.width, info.height, limits);
  check_complete(b, f, info);
  if (b.size() > static_cast<size_t>(INT_MAX)) fail(f, "file too large");
  const int len = static_cast<int>(b.size());
  int w = 0, h = 0, n = 0;
  RgbImage img;
  // No buffer beyond what this size needs: the inflated rows (filter byte + 8 bytes per pixel at most) twice over
  // (the inflater grows by doubling), or the 4-channel 16-bit output, plus slack for the small tables.
  const uint64_t pixels_bytes = static_cast<uint64_t>(info.height) * (static_cast<uint64_t>(info.width) * 8 + 1);
  const media::StbAllocLimit alloc_limit(static_cast<size_t>(2 * pixels_bytes + (4u << 20)));
  // Always ask for 4 channels: with 0, stb reports the file's channel count, which differs from the data's
  // for palette and tRNS images. Gray comes back replicated, and alpha is dropped below.
  if (stbi_is_16_bit_from_memory(b.data(), len)) {
    std::unique_ptr<stbi_us, StbDeleter> px(stbi_load_16_from_memory(b.data(), len, &w, &h, &n, 4));
    if (!px) fail(f, "corrupt or truncated: " + one_line(stbi_failure_reason()));
    img = {w, h, std::vector<uint8_t>(static_cast<size_t>(w) * h * 3)};
    // Pillow: 16-bit gray opens as mode "I" and clips to 255 on convert("RGB"); the others keep the high byte.
    const bool clip = n == 1;
    const size_t count = static_cast<size_t>(w) * h;
    for (size_t i = 0; i < count; ++i)
      for (int c = 0; c < 3; ++c) {
        const stbi_us v = px.get()[i * 4 + c];
        img.rgb[i * 3 + c] = static_cast<uint8_t>(clip ? (v > 255 ? 255 : v) : v >> 8);
      }
  } else {
    std::unique_ptr<stbi_uc, StbDeleter> px(stbi_load_from_memory(b.data(), len, &w, &h, &n, 4));
    if (!px) fail(f, "corrupt or truncated: " + one_line(stbi_failure_reason()));
    img = {w, h, std::vector<uint8_t>(static_cast<size_t>(w) * h * 3)};
    const size_t count = static_cast<size_t>(w) * h;
    for (size_t i = 0; i < count; ++i) std::memcpy(&img.rgb[i * 3], px.get() + i * 4, 3);
  }
  if (w != info.width || h != info.height) fail(f, "size differs from the header's");
  return img;
}

}  // namespace

ImageFormat sniff_image_format(std::span<const uint8_t> b) {
  if (starts_with(b, "\xFF\xD8\xFF")) return ImageFormat::Jpeg;
  if (starts_with(b, "\x89PNG\r\n\x1A\n")) return ImageFormat::Png;
  if (starts_with(b, "GIF87a") || starts_with(b, "GIF89a")) return ImageFormat::Gif;
  if (starts_with(b, "BM")) return ImageFormat::Bmp;
  if (starts_with(b, "RIFF") && starts_with(b, "WEBP", 8)) return ImageFormat::Webp;
  return ImageFormat::Unknown;
}

const char* image_format_name(ImageFormat f) {
  switch (f) {
    case ImageFormat::Jpeg: return "JPEG";
    case ImageFormat::Png: return "PNG";
    case ImageFormat::Gif: return "GIF";
    case ImageFormat::Bmp: return "BMP";
    case ImageFormat::Webp: return "WebP";
    case ImageFormat::Unknown: break;
  }
  return "unknown";
}

ImageInfo probe_image(std::span<const uint8_t> bytes) {
  const ImageFormat f = sniff_image_format(bytes);
  switch (f) {
    case ImageFormat::Jpeg: {
      const TjHandle h = tj_open();
      return jpeg_info(bytes, h.get());
    }
    case ImageFormat::Webp: {
      WebPBitstreamFeatures feat;
      return webp_info(bytes, feat);
    }
    case ImageFormat::Png:
    case ImageFormat::Gif:
    case ImageFormat::Bmp: return stb_info(bytes, f);
    case ImageFormat::Unknown: break;
  }
  if (bytes.empty()) throw MediaError("image: empty input");
  throw MediaError("image: unknown format (not JPEG, PNG, GIF, BMP or WebP)");
}

RgbImage decode_image(std::span<const uint8_t> bytes, const ImageLimits& limits) {
  const ImageFormat f = sniff_image_format(bytes);
  switch (f) {
    case ImageFormat::Jpeg: return apply_orientation(decode_jpeg(bytes, limits), exif_orientation(bytes));
    case ImageFormat::Webp: return decode_webp(bytes, limits);
    case ImageFormat::Png: return apply_orientation(decode_stb(bytes, f, limits), exif_orientation(bytes));
    case ImageFormat::Gif:
    case ImageFormat::Bmp: return decode_stb(bytes, f, limits);
    case ImageFormat::Unknown: break;
  }
  (void)probe_image(bytes);  // throws the unknown-format or empty-input error
  throw MediaError("image: unknown format");
}

std::vector<uint8_t> read_image_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw MediaError("image: cannot open " + path);
  const std::streamoff size = in.tellg();
  if (size < 0) throw MediaError("image: cannot read " + path);
  if (static_cast<uint64_t>(size) > kMaxImageFileBytes)
    throw MediaError("image: " + path + " is larger than " + std::to_string(kMaxImageFileBytes >> 20) + " MiB");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), size)) throw MediaError("image: cannot read " + path);
  return bytes;
}

RgbImage decode_image_file(const std::string& path, const ImageLimits& limits) {
  const std::vector<uint8_t> bytes = read_image_file(path);
  try {
    return decode_image(bytes, limits);
  } catch (const MediaError& e) {
    throw MediaError(path + ": " + e.what());
  }
}

}  // namespace g3n
