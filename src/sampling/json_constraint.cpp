#include "sampling/json_constraint.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "sampling/byte_mask.h"
#include "tokenizer/tokenizer.h"

namespace g3n {

enum class NodeKind : uint8_t { Any, Object, FreeObject, Array, String, Number, Integer, Literal };

struct SchemaNode {
  NodeKind kind = NodeKind::Any;
  // Object: keys as JSON text ("\"name\""), in the order the output must follow.
  std::vector<std::string> keys;
  std::vector<const SchemaNode*> values;
  std::vector<bool> required;
  // Array: items; FreeObject: the value node. Any: the array node.
  const SchemaNode* items = nullptr;
  const SchemaNode* object = nullptr;  // Any: the free object node
  int min_items = 0, max_items = -1;
  int max_length = -1;                 // String
  std::vector<std::string> literals;   // Literal (and Any's true/false/null)
};

namespace {

enum FrameKind : uint8_t { kValue, kObject, kArray, kString, kNumber, kLiteral };
constexpr int kMaxWhitespace = 1;   // one blank between tokens (llama.cpp's schema grammars allow the same)
constexpr int kMaxDigits = 15;      // keeps numbers exactly representable
constexpr int kMaxExpDigits = 3;
// A number with D integer digits and exponent E is below 10^(D+E); up to 10^308 every parser reads it as a
// finite double (past it strtod overflows and nlohmann::json refuses the text: what we generate must parse).
constexpr int kMaxDecimalMagnitude = 308;
constexpr size_t kMaxCandidates = 64;  // literal alternatives tracked in a 64-bit mask

bool is_ws(unsigned char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_hex(unsigned char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
unsigned hex_value(unsigned char c) { return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10; }

// \u escapes in strings: UTF-16 surrogates must pair, a high one (\uD800..\uDBFF) then at once a low one
// (\uDC00..\uDFFF), as JSON parsers that check them require (nlohmann's, which reads tool-call
// arguments, rejects a lone one; fuzz/json_schema-regressions). While an escape is read, a string frame's
// `alive` (its UTF-8 byte range otherwise, unused between characters) holds the escape's first two hex
// digits and whether a high surrogate awaits its low half.
constexpr uint64_t kHighPending = uint64_t{1} << 40;
constexpr int kHexShift = 32;  // first digit in bits 32..35, second in 36..39

uint64_t all_bits(size_t n) { return n >= 64 ? ~uint64_t{0} : ((uint64_t{1} << n) - 1); }

// Properties that may come next after property index `next`: each optional one may be skipped, the first
// required one may not.
uint64_t allowed_keys(const SchemaNode* n, int next) {
  uint64_t m = 0;
  for (size_t j = static_cast<size_t>(next); j < n->keys.size(); ++j) {
    m |= uint64_t{1} << j;
    if (n->required[j]) break;
  }
  return m;
}

bool closable(const SchemaNode* n, int next) {
  for (size_t j = static_cast<size_t>(next); j < n->keys.size(); ++j)
    if (n->required[j]) return false;
  return true;
}

}  // namespace

JsonSchema::JsonSchema() = default;
JsonSchema::~JsonSchema() = default;

const SchemaNode* JsonSchema::add(std::unique_ptr<SchemaNode> n) {
  nodes_.push_back(std::move(n));
  return nodes_.back().get();
}

std::shared_ptr<const JsonSchema> JsonSchema::any_object() {
  auto s = std::make_shared<JsonSchema>();
  s->root_ = s->build(nlohmann::ordered_json{{"type", "object"}}, 0);
  return s;
}

const SchemaNode* JsonSchema::build(const nlohmann::ordered_json& s, int depth) {
  if (depth > 64) throw std::invalid_argument("schema is nested too deeply");
  auto node = std::make_unique<SchemaNode>();
  auto any = [&]() -> const SchemaNode* {
    auto a = std::make_unique<SchemaNode>();
    SchemaNode* raw = a.get();
    raw->kind = NodeKind::Any;
    raw->literals = {"true", "false", "null"};
    add(std::move(a));
    auto arr = std::make_unique<SchemaNode>();
    arr->kind = NodeKind::Array;
    arr->items = raw;
    raw->items = add(std::move(arr));
    auto obj = std::make_unique<SchemaNode>();
    obj->kind = NodeKind::FreeObject;
    obj->items = raw;
    raw->object = add(std::move(obj));
    return raw;
  };
  if (s.is_boolean()) return any();
  if (!s.is_object()) throw std::invalid_argument("a JSON schema must be an object");

  auto literal_of = [&](const nlohmann::ordered_json& values) -> const SchemaNode* {
    if (values.empty() || values.size() > kMaxCandidates) return any();
    node->kind = NodeKind::Literal;
    for (const auto& v : values) node->literals.push_back(v.dump());
    return add(std::move(node));
  };
  if (auto it = s.find("const"); it != s.end()) return literal_of(nlohmann::ordered_json::array({*it}));
  if (auto it = s.find("enum"); it != s.end() && it->is_array()) return literal_of(*it);

  std::string type;
  if (auto it = s.find("type"); it != s.end()) {
    if (it->is_string()) type = it->get<std::string>();
    else if (it->is_array()) {
      // A union such as ["string", "null"]: the first non-null type (a documented simplification).
      for (const auto& t : *it)
        if (t.is_string() && t != "null") { type = t.get<std::string>(); break; }
    }
  } else if (s.contains("properties")) {
    type = "object";
  } else if (s.contains("items")) {
    type = "array";
  }

  if (type == "object") {
    const auto props = s.find("properties");
    if (props == s.end() || !props->is_object() || props->empty() || props->size() > kMaxCandidates) {
      const SchemaNode* a = any();
      return a->object;
    }
    node->kind = NodeKind::Object;
    std::vector<std::string> req;
    if (auto r = s.find("required"); r != s.end() && r->is_array())
      for (const auto& x : *r)
        if (x.is_string()) req.push_back(x.get<std::string>());
    for (auto it = props->begin(); it != props->end(); ++it) {
      node->keys.push_back(nlohmann::ordered_json(it.key()).dump());
      node->values.push_back(build(it.value(), depth + 1));
      node->required.push_back(std::find(req.begin(), req.end(), it.key()) != req.end());
    }
    return add(std::move(node));
  }
  if (type == "array") {
    node->kind = NodeKind::Array;
    const auto items = s.find("items");
    node->items = items != s.end() ? build(*items, depth + 1) : any();
    if (auto v = s.find("minItems"); v != s.end() && v->is_number_integer()) node->min_items = std::max(0, v->get<int>());
    if (auto v = s.find("maxItems"); v != s.end() && v->is_number_integer()) node->max_items = std::max(0, v->get<int>());
    if (node->max_items >= 0 && node->max_items < node->min_items) throw std::invalid_argument("schema: maxItems < minItems");
    return add(std::move(node));
  }
  if (type == "string") {
    node->kind = NodeKind::String;
    if (auto v = s.find("maxLength"); v != s.end() && v->is_number_integer()) node->max_length = std::max(0, v->get<int>());
    return add(std::move(node));
  }
  if (type == "number") { node->kind = NodeKind::Number; return add(std::move(node)); }
  if (type == "integer") { node->kind = NodeKind::Integer; return add(std::move(node)); }
  if (type == "boolean") return literal_of(nlohmann::ordered_json::array({true, false}));
  if (type == "null") return literal_of(nlohmann::ordered_json::array({nullptr}));
  return any();
}

std::shared_ptr<const JsonSchema> JsonSchema::compile(const nlohmann::ordered_json& schema) {
  auto s = std::make_shared<JsonSchema>();
  s->root_ = s->build(schema, 0);
  return s;
}

std::shared_ptr<const JsonSchema> JsonSchema::compile(const nlohmann::json& schema) { return compile(nlohmann::ordered_json(schema)); }

// ---- the automaton ----

JsonMatcher::JsonMatcher(const JsonSchema& schema) {
  Frame f;
  f.kind = kValue;
  f.node = schema.root();
  stack_.push_back(f);
}

bool JsonMatcher::complete() const {
  if (done_) return true;
  if (stack_.size() != 1) return false;
  const Frame& f = stack_.back();
  if (f.kind == kNumber) return f.stage == 2 || f.stage == 3 || f.stage == 5 || f.stage == 8;
  if (f.kind == kLiteral) {
    for (size_t i = 0; i < f.cands->size(); ++i)
      if ((f.alive >> i & 1) && static_cast<int>((*f.cands)[i].size()) == f.pos) return true;
  }
  return false;
}

void JsonMatcher::pop() {
  const Frame child = stack_.back();
  stack_.pop_back();
  if (stack_.empty()) {
    done_ = true;
    return;
  }
  Frame& p = stack_.back();
  if (p.kind == kObject && p.stage == 1) {
    p.stage = 2;
    if (child.kind == kLiteral) {  // a schema object's key: which property it was
      for (size_t i = 0; i < child.cands->size(); ++i)
        if ((child.alive >> i & 1) && static_cast<int>((*child.cands)[i].size()) == child.pos) {
          p.key = static_cast<int16_t>(i);
          p.count = static_cast<int32_t>(i) + 1;
          break;
        }
    }
  }
}

bool JsonMatcher::feed(std::string_view s) {
  for (char c : s)
    if (!feed_one(static_cast<unsigned char>(c))) return false;
  return true;
}

bool JsonMatcher::feed(unsigned char c) { return feed_one(c); }

bool JsonMatcher::feed_one(unsigned char c) {
  auto blank = [&]() { return ++ws_run_ <= kMaxWhitespace; };
  for (;;) {  // a frame that ends on a byte it does not take hands that byte to its parent
    if (stack_.empty()) return false;
    Frame& f = stack_.back();
    switch (f.kind) {
      case kValue: {
        if (is_ws(c)) return stack_.size() > 1 && blank();  // no padding before the top-level value
        ws_run_ = 0;
        const SchemaNode* n = f.node;
        const bool any = n->kind == NodeKind::Any;
        if (c == '{' && (any || n->kind == NodeKind::Object || n->kind == NodeKind::FreeObject)) {
          f = Frame{};
          f.kind = kObject;
          f.node = any ? n->object : n;
          return true;
        }
        if (c == '[' && (any || n->kind == NodeKind::Array)) {
          f = Frame{};
          f.kind = kArray;
          f.node = any ? n->items : n;
          return true;
        }
        if (c == '"' && (any || n->kind == NodeKind::String)) {
          f = Frame{};
          f.kind = kString;
          f.node = any ? nullptr : n;
          return true;
        }
        if ((c == '-' || is_digit(c)) && (any || n->kind == NodeKind::Number || n->kind == NodeKind::Integer)) {
          f = Frame{};
          f.kind = kNumber;
          f.node = any ? nullptr : n;
          continue;
        }
        if (n->kind == NodeKind::Literal || (any && (c == 't' || c == 'f' || c == 'n'))) {
          const std::vector<std::string>* cands = &n->literals;
          f = Frame{};
          f.kind = kLiteral;
          f.cands = cands;
          f.alive = all_bits(cands->size());
          continue;
        }
        return false;
      }
      case kObject: {
        const SchemaNode* n = f.node;
        const bool schema = n->kind == NodeKind::Object;
        if (is_ws(c)) return f.stage != 1 && blank();
        ws_run_ = 0;
        switch (f.stage) {
          case 0:
          case 5:
            if (c == '"') {
              if (schema) {
                const uint64_t keys = allowed_keys(n, f.count);
                if (!keys) return false;
                f.stage = 1;
                Frame k;
                k.kind = kLiteral;
                k.cands = &n->keys;
                k.alive = keys;
                stack_.push_back(k);
                continue;  // the quote is the key literal's first byte
              }
              f.stage = 1;
              Frame k;
              k.kind = kString;
              stack_.push_back(k);
              return true;
            }
            if (c == '}' && f.stage == 0 && (!schema || closable(n, f.count))) { pop(); return true; }
            return false;
          case 2:
            if (c == ':') { f.stage = 3; return true; }
            return false;
          case 3: {
            f.stage = 4;
            Frame v;
            v.kind = kValue;
            v.node = schema ? n->values[static_cast<size_t>(f.key)] : n->items;
            stack_.push_back(v);
            continue;
          }
          case 4:
            if (c == ',' && (!schema || allowed_keys(n, f.count))) { f.stage = 5; return true; }
            if (c == '}' && (!schema || closable(n, f.count))) { pop(); return true; }
            return false;
          default:
            return false;
        }
      }
      case kArray: {
        const SchemaNode* n = f.node;
        if (is_ws(c)) return blank();
        ws_run_ = 0;
        if (f.stage == 0 && c == ']') {
          if (n->min_items > 0) return false;
          pop();
          return true;
        }
        if (f.stage == 0 || f.stage == 2) {
          ++f.count;
          f.stage = 1;
          Frame v;
          v.kind = kValue;
          v.node = n->items;
          stack_.push_back(v);
          continue;
        }
        if (c == ',' && (n->max_items < 0 || f.count < n->max_items)) { f.stage = 2; return true; }
        if (c == ']' && f.count >= n->min_items) { pop(); return true; }
        return false;
      }
      case kString: {
        const int max_len = f.node ? f.node->max_length : -1;
        const bool full = max_len >= 0 && f.count >= max_len;
        ws_run_ = 0;
        const bool pending = f.alive & kHighPending;
        if (f.stage == 0 && pending) {  // only the low surrogate's escape may follow
          if (c != '\\') return false;
          f.stage = 1;
          return true;
        }
        if (f.stage == 0) {
          // Only well-formed UTF-8: the detokenizer would turn stray bytes into U+FFFD, and maxLength
          // counts characters. pos = continuation bytes still due; alive = the next byte's range.
          if (f.pos > 0) {
            const unsigned lo = static_cast<unsigned>(f.alive & 0xFF), hi = static_cast<unsigned>(f.alive >> 8 & 0xFF);
            if (c < lo || c > hi) return false;
            --f.pos;
            f.alive = 0x80 | (0xBF << 8);
            return true;
          }
          if (c == '"') { pop(); return true; }
          if (c < 0x20) return false;
          if (full) return false;
          if (c == '\\') {
            f.stage = 1;
            return true;
          }
          if (c >= 0x80) {
            unsigned lo = 0x80, hi = 0xBF;
            if (c >= 0xC2 && c <= 0xDF) f.pos = 1;
            else if (c >= 0xE0 && c <= 0xEF) {
              f.pos = 2;
              if (c == 0xE0) lo = 0xA0;   // no overlong forms
              if (c == 0xED) hi = 0x9F;   // no surrogates
            } else if (c >= 0xF0 && c <= 0xF4) {
              f.pos = 3;
              if (c == 0xF0) lo = 0x90;
              if (c == 0xF4) hi = 0x8F;   // nothing above U+10FFFF
            } else {
              return false;
            }
            f.alive = lo | (hi << 8);
          }
          ++f.count;
          return true;
        }
        if (f.stage == 1) {
          if (c == 'u') { f.stage = 2; return true; }
          if (pending) return false;
          if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't') {
            f.stage = 0;
            ++f.count;
            return true;
          }
          return false;
        }
        if (!is_hex(c)) return false;
        const unsigned v = hex_value(c);
        if (f.stage == 2) {  // first digit: after a high surrogate, the low one's D
          if (pending && v != 0xD) return false;
          f.alive = (f.alive & kHighPending) | uint64_t{v} << kHexShift;
        } else if (f.stage == 3) {  // second digit: D8..DB is a high surrogate, DC..DF a low one
          if ((f.alive >> kHexShift & 0xF) == 0xD) {
            const bool low = v >= 0xC;
            if (low != pending) return false;  // a lone low surrogate, or no low one after a high one
          }
          f.alive |= uint64_t{v} << (kHexShift + 4);
        }
        if (++f.stage == 6) {
          f.stage = 0;
          const bool surrogate = (f.alive >> kHexShift & 0xF) == 0xD && (f.alive >> (kHexShift + 4) & 0xF) >= 0x8;
          if (surrogate && !pending) {
            f.alive = kHighPending;  // half a character: counted with its low half
          } else {
            f.alive = 0;
            ++f.count;
          }
        }
        return true;
      }
      case kNumber: {
        const bool integer = f.node && f.node->kind == NodeKind::Integer;
        const bool accepting = f.stage == 2 || f.stage == 3 || f.stage == 5 || f.stage == 8;
        bool took = false;
        switch (f.stage) {
          case 0:
          case 1:
            if (c == '-' && f.stage == 0) { f.stage = 1; took = true; }
            else if (c == '0') { f.stage = 3; took = true; }
            else if (is_digit(c)) { f.stage = 2; f.count = 1; took = true; }
            else return false;
            break;
          case 2:
          case 3:
            if (f.stage == 2 && is_digit(c) && f.count < kMaxDigits) { ++f.count; took = true; }
            else if ((c == '.' || c == 'e' || c == 'E') && !integer) {
              f.pos = kMaxDecimalMagnitude - (f.stage == 2 ? f.count : 0);  // the exponent's room
              f.stage = c == '.' ? 4 : 6;
              took = true;
            }
            break;
          case 4:
            if (!is_digit(c)) return false;
            f.stage = 5;
            f.count = 1;
            return true;
          case 5:
            if (is_digit(c) && f.count < kMaxDigits) { ++f.count; took = true; }
            else if (c == 'e' || c == 'E') { f.stage = 6; took = true; }
            break;
          case 6:
          case 7:
            if ((c == '+' || c == '-') && f.stage == 6) {
              if (c == '-') f.pos = std::numeric_limits<int32_t>::max();  // a negative exponent only shrinks the value
              f.stage = 7;
              took = true;
              break;
            }
            if (!is_digit(c)) return false;
            f.stage = 8;  // the first exponent digit, taken (or refused: then not accepting) as the others
            f.count = 0;
            f.alive = 0;
            [[fallthrough]];
          case 8:
            if (is_digit(c) && f.count < kMaxExpDigits && f.alive * 10 + (c - '0') <= static_cast<uint64_t>(f.pos)) {
              ++f.count;
              f.alive = f.alive * 10 + (c - '0');
              took = true;
            }
            break;
        }
        if (took) { ws_run_ = 0; return true; }
        if (!accepting) return false;
        pop();
        continue;
      }
      case kLiteral: {
        uint64_t next = 0;
        bool can_end = false;
        const auto& cands = *f.cands;
        for (size_t i = 0; i < cands.size() && i < 64; ++i) {
          if (!(f.alive >> i & 1)) continue;
          const std::string& s = cands[i];
          if (static_cast<int>(s.size()) == f.pos) can_end = true;
          else if (static_cast<unsigned char>(s[static_cast<size_t>(f.pos)]) == c) next |= uint64_t{1} << i;
        }
        if (next) {
          ws_run_ = 0;
          // A candidate that ended here is no longer possible once a longer one took the byte.
          f.alive = next;
          ++f.pos;
          bool longer = false;
          for (size_t i = 0; i < cands.size() && i < 64; ++i)
            if ((next >> i & 1) && static_cast<int>(cands[i].size()) > f.pos) longer = true;
          if (!longer) pop();
          return true;
        }
        if (!can_end) return false;
        {
          uint64_t ended = 0;
          for (size_t i = 0; i < cands.size() && i < 64; ++i)
            if ((f.alive >> i & 1) && static_cast<int>(cands[i].size()) == f.pos) ended |= uint64_t{1} << i;
          f.alive = ended;
        }
        pop();
        continue;
      }
    }
    return false;
  }
}

// ---- token texts and the mask ----

TokenTexts::TokenTexts(const Tokenizer& tok) {
  const int32_t n = tok.n_vocab();
  texts_.resize(static_cast<size_t>(n));
  for (int32_t id = 0; id < n; ++id) {
    const TokenType t = tok.type(id);
    if (tok.is_control(id) || t == TokenType::Unknown || t == TokenType::Unused) continue;
    texts_[static_cast<size_t>(id)] = tok.piece(id, false);
    if (!texts_[static_cast<size_t>(id)].empty())
      by_first_[static_cast<unsigned char>(texts_[static_cast<size_t>(id)][0])].push_back(id);
  }
}

JsonConstraint::JsonConstraint(std::shared_ptr<const JsonSchema> schema, const TokenTexts& texts,
                               std::vector<int32_t> stop_ids)
    : schema_(std::move(schema)), texts_(texts), stop_ids_(std::move(stop_ids)), state_(*schema_), scratch_(*schema_) {}

void JsonConstraint::mask(std::span<const float> logits, int need, std::vector<float>& out) {
  if (state_.complete()) {  // the value is whole: end here rather than pad with blanks
    out.assign(logits.size(), -std::numeric_limits<float>::infinity());
    allow_tokens(stop_ids_, logits, out);
    return;
  }
  // No way on cannot happen with byte tokens; if it did, end rather than emit garbage.
  if (mask_by_bytes(texts_, state_, scratch_, logits, need, out, order_) == 0) allow_tokens(stop_ids_, logits, out);
}

void JsonConstraint::accept(int32_t id) {
  if (id < 0 || id >= texts_.n_vocab()) return;
  JsonMatcher next = state_;
  if (next.feed(texts_.text(id))) state_ = std::move(next);
}

}  // namespace g3n
