// libFuzzer target for Ollama manifests (store/model_store.h: Manifest::parse, as read from a store or a
// registry's answer) and model names (store/model_name.h), both untrusted. A StoreError / NameError is the
// expected outcome for most inputs; anything else (a crash, a sanitizer report, another exception, an
// inconsistent result) is a bug.
// Properties checked: a parsed manifest serializes to a text that parses to the same manifest (Ollama's
// compact form is a fixed point), and a valid name's manifest path stays inside the store (no "..", ".",
// empty or absolute component).
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "store/file_util.h"
#include "store/model_name.h"
#include "store/model_store.h"

using namespace g3n::store;

namespace {

void check_manifest(std::string_view text) {
  Manifest m;
  try {
    m = Manifest::parse(text);
  } catch (const StoreError&) {
    return;
  }
  const std::string s = m.serialize();
  const Manifest again = Manifest::parse(s);  // a StoreError here is a bug: libFuzzer reports it
  if (again.serialize() != s) __builtin_trap();
  if (m.digests().empty()) __builtin_trap();
  if (m.total_size() < 0) __builtin_trap();
  (void)m.find_layer(media::kModel);
}

void check_name(std::string_view text) {
  ModelName n;
  if (!try_parse_model_name(text, &n)) return;
  const std::filesystem::path rel = n.manifest_relpath();
  if (rel.is_absolute()) __builtin_trap();
  int parts = 0;
  for (const auto& part : rel) {
    const std::string p = part.string();
    if (p.empty() || p == "." || p == "..") __builtin_trap();
    ++parts;
  }
  if (parts != 5) __builtin_trap();  // manifests/<host>/<namespace>/<model>/<tag>
  ModelName again;
  if (!try_parse_model_name(n.full(), &again) || !again.same_as(n)) __builtin_trap();
  if (!try_parse_model_name(n.display(), &again) || !again.same_as(n)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check_manifest(text);
  if (size <= 512) check_name(text);
  return 0;
}
