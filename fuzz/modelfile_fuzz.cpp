// libFuzzer target for the Modelfile parser (store/modelfile.h): arbitrary text through parse_modelfile,
// whose PARAMETER lines go through the parameter table's value parsers (runtime/parameters.h). A
// StoreError is the expected outcome for most inputs; anything else (a crash, a sanitizer report, another
// exception, an inconsistent result) is a bug.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "store/model_store.h"
#include "store/modelfile.h"
#include "store/file_util.h"

using namespace g3n::store;
using json = nlohmann::json;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  Modelfile mf;
  try {
    mf = parse_modelfile(text);
  } catch (const StoreError&) {
    return 0;
  }
  // A parsed Modelfile always has its text model, typed parameters, and messages with a known role.
  if (mf.from.empty() || !mf.params.is_object() || !mf.messages.is_array()) __builtin_trap();
  for (const auto& m : mf.messages) {
    const std::string role = m.at("role").get<std::string>();
    if (role != "system" && role != "user" && role != "assistant") __builtin_trap();
    if (!m.at("content").is_string()) __builtin_trap();
  }
  for (auto it = mf.params.begin(); it != mf.params.end(); ++it) {
    if (it.key() == "stop") {
      if (!it->is_array() || it->empty()) __builtin_trap();
      for (const auto& s : *it)
        if (!s.is_string()) __builtin_trap();
    } else if (it->is_null() || it->is_object() || it->is_array()) {
      __builtin_trap();
    }
  }
  // The params layer is stored as JSON text; bytes that are not UTF-8 are replaced rather than thrown on.
  (void)mf.params.dump(-1, ' ', false, json::error_handler_t::replace);
  (void)mf.messages.dump(-1, ' ', false, json::error_handler_t::replace);
  return 0;
}
