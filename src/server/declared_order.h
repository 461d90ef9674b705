// A request body parsed again keeping the order of its object keys, for the one thing that needs it: a JSON
// schema (`format`, `response_format`, a tool's `parameters`), whose object properties the model writes in
// the order declared. The body is parsed once for the field readers into a nlohmann::json, whose keys are
// sorted; this second parse happens only when a schema is there, and only once per request.
#pragma once
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

namespace g3n::server {

class DeclaredOrder {
 public:
  // `raw`: the body as sent (empty: not at hand, keys stay sorted). It must outlive this object.
  explicit DeclaredOrder(std::string_view raw = {}) : raw_(raw) {}
  // The value at `at` in the body as sent; `sorted` (the same value from the sorted parse) when the body is
  // not at hand or holds nothing there.
  nlohmann::ordered_json at(const nlohmann::json::json_pointer& at, const nlohmann::json& sorted) const;

 private:
  std::string_view raw_;
  mutable std::optional<nlohmann::ordered_json> doc_;
};

}  // namespace g3n::server
