// Constrained decoding for structured output: a byte-level pushdown automaton that accepts exactly the
// prefixes of JSON texts matching a (subset of) JSON Schema, and a logits mask built from it so that
// every sampled token keeps the output such a prefix. Supported schema subset: type object (properties,
// required; no additional properties), array (items, minItems, maxItems), string (maxLength), number,
// integer, boolean, null, enum, const; anything else (anyOf, $ref, ...) accepts any JSON value.
// "format": "json" is a free JSON object.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "sampling/constraint.h"

namespace g3n {

class Tokenizer;

struct SchemaNode;

// A compiled schema; immutable, shared by every request that uses it.
class JsonSchema {
 public:
  // Any JSON object (Ollama's "format": "json").
  static std::shared_ptr<const JsonSchema> any_object();
  // Throws std::invalid_argument with a message for schemas that are not objects/booleans. An object's
  // properties are written in the order the schema declares them, so pass the schema as parsed into an
  // ordered_json; a plain json (keys sorted) gives them in key order.
  static std::shared_ptr<const JsonSchema> compile(const nlohmann::ordered_json& schema);
  static std::shared_ptr<const JsonSchema> compile(const nlohmann::json& schema);
  const SchemaNode* root() const { return root_; }
  ~JsonSchema();
  JsonSchema();

 private:
  const SchemaNode* add(std::unique_ptr<SchemaNode> n);
  const SchemaNode* build(const nlohmann::ordered_json& s, int depth);
  std::vector<std::unique_ptr<SchemaNode>> nodes_;
  const SchemaNode* root_ = nullptr;
};

// The automaton's state. Copying is cheap (a short vector of frames).
class JsonMatcher {
 public:
  explicit JsonMatcher(const JsonSchema& schema);
  // Appends a byte; false (and the state is then unusable) when the byte cannot extend a valid prefix.
  bool feed(unsigned char c);
  bool feed(std::string_view s);
  // A complete value has been read.
  bool complete() const;

  struct Frame {
    uint8_t kind = 0;
    uint8_t stage = 0;
    int16_t key = -1;        // object: property being read
    int32_t count = 0;       // object: next property index; array: items; string: characters; number: digits
    uint64_t alive = 0;      // literal: candidates still possible; number: the exponent read so far
    const SchemaNode* node = nullptr;
    const std::vector<std::string>* cands = nullptr;  // literal candidates
    int32_t pos = 0;         // literal: bytes matched; number: the largest exponent that cannot overflow
  };

 private:
  bool feed_one(unsigned char c);
  bool start_value(Frame& f, unsigned char c);
  void pop();
  std::vector<Frame> stack_;
  int ws_run_ = 0;
  bool done_ = false;
};

// Token texts of a vocabulary, computed once per tokenizer, bucketed by first byte.
class TokenTexts {
 public:
  explicit TokenTexts(const Tokenizer& tok);
  std::string_view text(int32_t id) const { return texts_[static_cast<size_t>(id)]; }
  const std::vector<int32_t>& starting_with(unsigned char b) const { return by_first_[b]; }
  int32_t n_vocab() const { return static_cast<int32_t>(texts_.size()); }

 private:
  std::vector<std::string> texts_;  // empty for control/unusable tokens (never allowed)
  std::array<std::vector<int32_t>, 256> by_first_;
};

// Per-request constraint: masks logits and advances with each accepted token.
class JsonConstraint final : public LogitsConstraint {
 public:
  JsonConstraint(std::shared_ptr<const JsonSchema> schema, const TokenTexts& texts, std::vector<int32_t> stop_ids);
  // out = logits with every token that would break the grammar set to -inf. Only the `need` best allowed
  // tokens (by logit) are guaranteed to be kept when scanning everything would be costly: a sampler
  // that looks at top_k candidates needs no more.
  void mask(std::span<const float> logits, int need, std::vector<float>& out) override;
  // Advances over a sampled token (must have been allowed).
  void accept(int32_t id) override;
  bool complete() const override { return state_.complete(); }

 private:
  std::shared_ptr<const JsonSchema> schema_;
  const TokenTexts& texts_;
  std::vector<int32_t> stop_ids_;
  JsonMatcher state_;
  JsonMatcher scratch_;
  std::vector<std::pair<float, int32_t>> order_;
};

}  // namespace g3n
