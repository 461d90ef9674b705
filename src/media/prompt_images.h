// Image and audio files named in a typed prompt, as Ollama's CLI finds images: `g3n run MODEL "what is in
// ./photo.jpg?"` attaches ./photo.jpg and sends "what is in?" with the image placed before the text;
// `g3n run MODEL "transcribe ./talk.wav"` attaches the recording the same way.
//
// A path is recognised when all of these hold:
//  - it starts a word (start of the prompt, or after whitespace or an opening bracket) with "/", "./",
//    "../" or "~/", or is the whole of a '...' or "..." quoted word starting that way;
//  - it ends with an image extension (.jpg .jpeg .png .gif .bmp .webp) or an audio one (.wav .flac .ogg .oga
//    .opus .mp3), any case, followed by the end of the prompt or a character that is not a letter, digit or
//    '_' (so "./a.jpg?" is ./a.jpg);
//  - the file exists (a path to no file stays in the text, as in Ollama).
// Unquoted paths may hold shell escapes ("\ " for a space, "\(" and the like: the backslash is dropped)
// and "%20" for a space; like Ollama's, they may also run over plain spaces up to the first image extension
// (the shortest candidate, taken only if it is a file), never over a line end. "~/" is the home directory.
#pragma once
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace g3n {

// .jpg .jpeg .png .gif .bmp .webp, any case.
bool has_image_extension(std::string_view path);

// An image or audio file found in a prompt.
struct PromptImage {
  std::string written;  // as typed, escapes resolved ("./my photo.jpg"): for messages
  std::string path;     // the file to open (~/ expanded)
  bool audio = false;   // an audio file (by its extension)
};

// An image or an audio extension.
bool has_media_extension(std::string_view path);

struct PromptWithImages {
  std::string text;                 // the prompt without the recognised paths (and their quotes), trimmed
  std::vector<PromptImage> images;  // images and audio files, in the order they appear
};

// exists(path): whether a file is there. home: what "~/" expands to (no expansion when empty).
PromptWithImages extract_prompt_images(std::string_view prompt, const std::function<bool(const std::string&)>& exists,
                                       std::string_view home);

// The same with the file system (a regular file) and $HOME.
PromptWithImages extract_prompt_images(std::string_view prompt);

}  // namespace g3n
