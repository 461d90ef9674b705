#include "media/projector.h"

#include <stdexcept>

#include "gguf/gguf.h"

namespace g3n {

ProjectorParts probe_projector(const std::string& path) {
  const GgufFile f = GgufFile::open(path);
  const std::string arch = f.get_string("general.architecture").value_or("");
  if (arch != "clip") throw std::runtime_error("general.architecture is '" + arch + "', expected 'clip' (a projector / mmproj file)");
  bool v_tensors = false, a_tensors = false;
  for (const auto& t : f.tensors()) {
    v_tensors = v_tensors || t.name.rfind("v.", 0) == 0;
    a_tensors = a_tensors || t.name.rfind("a.", 0) == 0;
  }
  ProjectorParts p;
  p.vision = f.get_bool("clip.has_vision_encoder").value_or(true) && v_tensors;
  p.audio = f.get_bool("clip.has_audio_encoder").value_or(false) && a_tensors;
  if (!p.vision && !p.audio) throw std::runtime_error("the projector holds neither a vision nor an audio tower");
  return p;
}

}  // namespace g3n
