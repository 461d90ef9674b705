// Image decoding for the vision input: JPEG (libjpeg-turbo), PNG, GIF (first frame) and BMP (stb_image),
// WebP (libwebp), always to 8-bit RGB the way Pillow's Image.open(...).convert("RGB") gives it, which is
// what Hugging Face's Gemma 3n processor feeds its resize:
//   - alpha is dropped, never composited (RGBA, LA, palette with transparency, WebP with alpha);
//   - grayscale is replicated into R, G and B;
//   - 16-bit samples of RGB, RGBA and gray+alpha images keep their high byte (v >> 8), as Pillow's ";16B"
//     unpackers do; a 16-bit grayscale PNG is clipped to min(v, 255), as Pillow opens it as mode "I" and
//     converts I -> RGB by clipping (so such images come out mostly white: Pillow's behaviour, kept);
//   - JPEG with libjpeg-turbo's defaults (islow DCT, fancy upsampling), as Pillow decodes it; libjpeg
//     warnings are accepted as Pillow accepts them, except a premature end (truncated file);
//   - GIF: the first frame; its transparent pixels come out black (stb_image), where Pillow gives the
//     transparent index's palette colour. A GIF or uncompressed BMP whose data ends early is refused.
// Not supported, each with its own error: CMYK/YCCK JPEG, animated WebP, PNG/GIF/BMP variants stb_image
// refuses. A JPEG's or PNG's EXIF orientation is applied after decoding, as Hugging Face's load_image does
// (media/image_orientation.h); probe_image reports the stored (unrotated) dimensions.
// Every error is a MediaError whose what() is one line. Dimensions are read from the header and checked
// against ImageLimits before any pixel is decoded (decompression bombs).
#pragma once
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace g3n {

class MediaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class ImageFormat { Unknown, Jpeg, Png, Gif, Bmp, Webp };

// The format from the first bytes (magic numbers only; the rest is not validated here).
ImageFormat sniff_image_format(std::span<const uint8_t> bytes);
const char* image_format_name(ImageFormat f);

// Default pixel limit: 64 Mi pixels (8192 x 8192; 192 MiB of RGB). Pillow warns at 89.5 M and refuses
// at twice that; a smaller cap keeps one request's decode memory bounded.
inline constexpr uint64_t kDefaultMaxImagePixels = uint64_t{1} << 26;
// Files larger than this are refused before reading (decode_image_file).
inline constexpr uint64_t kMaxImageFileBytes = uint64_t{256} << 20;

struct ImageLimits {
  uint64_t max_pixels = kDefaultMaxImagePixels;  // width * height, checked from the header
};

// 8-bit RGB, row-major HWC: pixel (y, x) channel c at rgb[(y * width + x) * 3 + c].
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;
};

// Header only: format and dimensions, without decoding pixels. Throws MediaError.
struct ImageInfo {
  ImageFormat format = ImageFormat::Unknown;
  int width = 0;
  int height = 0;
};
ImageInfo probe_image(std::span<const uint8_t> bytes);

RgbImage decode_image(std::span<const uint8_t> bytes, const ImageLimits& limits = {});
RgbImage decode_image_file(const std::string& path, const ImageLimits& limits = {});
// The file's bytes (MediaError when it cannot be read or is larger than kMaxImageFileBytes).
std::vector<uint8_t> read_image_file(const std::string& path);

}  // namespace g3n
