// libFuzzer target for the image path: sniff, probe, decode (every format) and the reference preprocessing of
// arbitrary bytes. A MediaError is the expected outcome for most inputs; anything else (a crash, a sanitizer
// report, another exception, an inconsistent result) is a bug.
#include <cstdint>
#include <span>

#include "media/image.h"
#include "media/image_orientation.h"
#include "media/preprocess.h"

using namespace g3n;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  (void)image_format_name(sniff_image_format(bytes));
  ImageInfo info;
  bool probed = false;
  try {
    info = probe_image(bytes);
    probed = true;
  } catch (const MediaError&) {
  }
  // A small pixel limit keeps each run fast and its allocations bounded; the limit check is what's tested.
  const ImageLimits limits{.max_pixels = uint64_t{1} << 20};
  RgbImage img;
  try {
    img = decode_image(bytes, limits);
  } catch (const MediaError&) {
    return 0;
  }
  // probe_image reports the stored dimensions; decode applies the EXIF orientation, and 5-8 exchange them.
  const int orientation = exif_orientation(bytes);
  const bool swapped = orientation >= 5 && orientation <= 8;
  if (!probed || img.width != (swapped ? info.height : info.width) || img.height != (swapped ? info.width : info.height))
    __builtin_trap();
  if (img.width <= 0 || img.height <= 0 || static_cast<uint64_t>(img.width) * img.height > limits.max_pixels)
    __builtin_trap();
  if (img.rgb.size() != static_cast<size_t>(img.width) * img.height * 3) __builtin_trap();
  // Two sizes: one below and one above typical fuzz image sizes (down- and up-sampling).
  for (int n : {7, 40}) {
    const std::vector<float> px = preprocess_image(img, n);
    if (px.size() != static_cast<size_t>(3) * n * n) __builtin_trap();
    for (float v : px)
      if (!(v >= 0.0f && v <= 1.0f)) __builtin_trap();
  }
  return 0;
}
