#include "server/declared_order.h"

namespace g3n::server {

nlohmann::ordered_json DeclaredOrder::at(const nlohmann::json::json_pointer& at, const nlohmann::json& sorted) const {
  if (raw_.empty()) return nlohmann::ordered_json(sorted);
  if (!doc_) doc_ = nlohmann::ordered_json::parse(raw_, nullptr, false);
  const nlohmann::ordered_json::json_pointer p(at.to_string());
  if (doc_->is_discarded() || !doc_->contains(p)) return nlohmann::ordered_json(sorted);
  return doc_->at(p);
}

}  // namespace g3n::server
