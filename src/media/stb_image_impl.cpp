// The stb_image implementation, compiled here (not Debian's prebuilt libstb) so that only the PNG, GIF and
// BMP decoders exist, nothing reads files, and the fuzz build instruments it. Its warnings are not ours.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#define STB_IMAGE_IMPLEMENTATION
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
