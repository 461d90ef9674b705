// EXIF orientation, applied the way Hugging Face's image loading does it (transformers' load_image calls
// PIL.ImageOps.exif_transpose before convert("RGB")): a phone photo stored sideways with Orientation = 6
// reaches the model upright, as in the reference. Read from a JPEG's APP1 "Exif" segment or a PNG's eXIf
// chunk (the TIFF structure inside both: byte order, IFD0, tag 0x0112). GIF, BMP and WebP carry none that
// g3n reads. Anything malformed (truncated segments, offsets outside the data, a value outside 1..8) means
// "no orientation": a bad tag never fails a decode.
#pragma once
#include <cstdint>
#include <span>

#include "media/image.h"

namespace g3n {

// The EXIF Orientation value of an image file (1..8), or 1 where there is none or it is unreadable.
int exif_orientation(std::span<const uint8_t> bytes);

// The image turned upright for an EXIF orientation (PIL's exif_transpose): 2 mirrors left-right, 3 turns
// 180 degrees, 4 mirrors top-bottom, 5 transposes, 6 turns 90 degrees clockwise, 7 transverses, 8 turns 90
// degrees counter-clockwise; 1 (or any other value) leaves it as it is.
RgbImage apply_orientation(RgbImage img, int orientation);

}  // namespace g3n
