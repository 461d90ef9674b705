// Speculative decoding's options (docs/speculative.md): the request/Modelfile parameters `spec` and
// `draft_max`, `g3n run --spec/--draft-max`.
#pragma once
#include <string>

namespace g3n {

enum class SpecMode { None, Auto, Ngram, Draft, Self };
// "none", "auto", "ngram", "draft", "self"; parse throws std::invalid_argument for another word.
const char* spec_mode_name(SpecMode m);
SpecMode parse_spec_mode(const std::string& s);

struct SpecOptions {
  SpecMode mode = SpecMode::None;
  int draft_max = 8;     // the longest draft (the adaptive length stays at or below it)
  bool adaptive = true;  // false: always draft_max (benchmarks of a fixed length)
};

}  // namespace g3n
