// What a projector ("mmproj") file holds: a vision tower, an audio tower or both (llama.cpp's converter
// writes one file for both towers of a real checkpoint; the fixtures hold one each). Read from the header
// only, so callers load just the encoders a request needs.
#pragma once
#include <string>

namespace g3n {

struct ProjectorParts {
  bool vision = false;  // clip.has_vision_encoder (absent: true, as older files) and v.* tensors
  bool audio = false;   // clip.has_audio_encoder and a.* tensors
};

// Throws std::runtime_error (GgufError for a malformed container) when the file is not a "clip" GGUF or
// holds neither tower.
ProjectorParts probe_projector(const std::string& path);

}  // namespace g3n
