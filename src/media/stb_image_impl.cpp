// The stb_image implementation, compiled here (not Debian's prebuilt libstb) so that only the PNG, GIF and
// BMP decoders exist, nothing reads files, and the fuzz build instruments it. Its warnings are not ours.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "media/stb_alloc_limit.h"

size_t& g3n::media::stb_alloc_limit() {
  thread_local size_t limit = SIZE_MAX;
  return limit;
}

// Every allocation within the decode's limit (stb_alloc_limit.h); past it stb sees out of memory.
static void* stb_malloc(size_t n) { return n > g3n::media::stb_alloc_limit() ? nullptr : std::malloc(n); }
static void* stb_realloc(void* p, size_t n) { return n > g3n::media::stb_alloc_limit() ? nullptr : std::realloc(p, n); }

// stb_image copies zero bytes into a still-null buffer for an empty first IDAT chunk (memcpy(NULL, p, 0),
// undefined behaviour that UBSan reports; found by fuzz/image_fuzz.cpp): its memcpy skips empty copies.
static void* stb_memcpy(void* dst, const void* src, size_t n) { return n ? std::memcpy(dst, src, n) : dst; }
#define memcpy stb_memcpy

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#define STB_IMAGE_IMPLEMENTATION
#define STBI_MALLOC stb_malloc
#define STBI_REALLOC stb_realloc
#define STBI_FREE std::free
#define STBI_ONLY_PNG
#define STBI_ONLY_GIF
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_FAILURE_USERMSG  // the readable messages ("corrupt PNG", not "bad ctype")
#define STBI_MAX_DIMENSIONS (1 << 16)  // beyond any format's use here; the pixel limit is checked before
#include <stb/stb_image.h>
#pragma GCC diagnostic pop
