#include "runtime/spec_options.h"

#include <stdexcept>

namespace g3n {

const char* spec_mode_name(SpecMode m) {
  switch (m) {
    case SpecMode::None: return "none";
    case SpecMode::Auto: return "auto";
    case SpecMode::Ngram: return "ngram";
    case SpecMode::Draft: return "draft";
    case SpecMode::Self: return "self";
  }
  return "none";
}

SpecMode parse_spec_mode(const std::string& s) {
  for (SpecMode m : {SpecMode::None, SpecMode::Auto, SpecMode::Ngram, SpecMode::Draft, SpecMode::Self})
    if (s == spec_mode_name(m)) return m;
  throw std::invalid_argument("unknown speculative mode \"" + s + "\" (none, auto, ngram, draft or self)");
}

}  // namespace g3n
