// POST /api/create's body (Ollama's CreateRequest), parsed and checked before any work: names, types,
// file names, digests, parameters (against the parameter table), messages. Errors are HttpError(400).
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/model_name.h"
#include "store/modelfile.h"

namespace g3n::server {

struct CreateRequest {
  std::string model;                                        // as given (messages, unloading)
  store::ModelName name;
  bool stream = true;
  std::optional<std::string> from;                          // a model name in the store (never a path)
  std::vector<std::pair<std::string, std::string>> files;  // file name -> "sha256:<hex>" (normalized), in order
  std::optional<std::string> quantize;                     // as given ("q4_K_M"); checked by the quantizer
  store::Modelfile fields;                                  // template, system, parameters, messages, licenses
};

// Throws HttpError(400): no model ("model is required"), an invalid name, neither `from` nor `files`,
// a file name that is absolute or leaves its folder ("file path must be relative"), an invalid digest,
// any adapter ("adapters are not supported"), a value of the wrong type, an unknown parameter or one of the wrong type.
CreateRequest parse_create(const nlohmann::json& body);

}  // namespace g3n::server
