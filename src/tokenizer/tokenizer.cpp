#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <unordered_map>
#include <stdexcept>

#include "gguf/gguf.h"
#include "tokenizer/utf8.h"

namespace g3n {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 "▁"

uint64_t hash_bytes(std::string_view s) {
  // FNV-1a: pieces are short (<= 48 bytes), so a byte loop is as fast as anything fancier here.
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h ^ (h >> 29);
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (true) {
    size_t j = s.find(from, i);
    if (j == std::string_view::npos) break;
    out.append(s.substr(i, j - i));
    out.append(to);
    i = j + from.size();
  }
  out.append(s.substr(i));
  return out;
}

// "<0xNN>" with upper- or lower-case hex -> the byte, else -1.
int parse_byte_piece(std::string_view s) {
  if (s.size() != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  int hi = hex(s[3]), lo = hex(s[4]);
  return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// "<unusedN>"
bool is_unused_name(std::string_view s) {
  if (!starts_with(s, "<unused") || s.size() < 9 || s.back() != '>') return false;
  for (char c : s.substr(7, s.size() - 8))
    if (c < '0' || c > '9') return false;
  return true;
}

struct Symbol {
  uint32_t start, len;
  int32_t prev, next;
};
struct Bigram {
  float score;
  int32_t left, right;
  uint32_t len;
};
struct Scratch {
  std::string buf;
  std::vector<Symbol> syms;
  std::vector<Bigram> heap;
  // Per-thread word cache (text is Zipfian: most words repeat). Tied to one tokenizer by its uid.
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view v) const { return hash_bytes(v); }
  };
  uint64_t owner = 0;
  std::unordered_map<std::string, std::pair<uint32_t, uint32_t>, Hash, std::equal_to<>> cache;
  std::vector<int32_t> pool;  // cached ids: cache values are (offset, count) into it
};

}  // namespace

struct Tokenizer::Impl {
  struct Entry {
    uint32_t text_off, text_len;    // normalized text (hash key)
    uint32_t piece_off, piece_len;  // decoded bytes (rendering with special = true)
    float score;
    TokenType type;
  };
  std::string keys;    // normalized token texts, packed (hash keys)
  std::string pieces;  // decoded bytes, packed
  std::vector<Entry> entries;
  // Open-addressing map text -> id, laid out for the BPE's lookups, which are cache misses on a
  // 262k-entry vocabulary: a 1-byte fingerprint array (fits in L2) rejects most absent pairs without
  // touching the slots, and a slot holds short keys inline with the id and score, so a hit costs one
  // cache line.
  static constexpr size_t kInlineKey = 20;
  struct Slot {
    int32_t id;
    float score;
    uint32_t len;
    char key[kInlineKey];
  };
  std::vector<uint8_t> fps;  // 0 = empty
  std::vector<Slot> slots;
  uint64_t slot_mask = 0;
  size_t max_text_len = 0;
  int32_t limit = 0;           // ids >= limit are never produced by encode

  // Special-token trie over raw bytes. Root has a full 256 table; other nodes keep sorted edge lists.
  struct Node {
    int32_t token = -1;        // terminal token, -1 if none
    bool always = false;       // matched even without parse_special (USER_DEFINED)
    uint32_t edge_begin = 0, edge_end = 0;
  };
  std::vector<Node> nodes;
  std::vector<std::pair<uint8_t, int32_t>> edges;
  int32_t root_next[256];

  int32_t byte_ids[256];
  int32_t bos = -1, eos = -1, unk = -1, pad = -1;
  std::optional<int32_t> eot;
  std::vector<int32_t> stop;
  bool add_bos = true, add_space_prefix = false, ollama = false;
  bool split_words = false;  // see encode_fragment
  std::vector<std::pair<std::string_view, size_t>> cross_pieces;  // see compute_split_words
  uint64_t uid = 0;          // identifies this tokenizer to the per-thread word caches

  std::string_view text(int32_t id) const {
    const Entry& e = entries[id];
    return {keys.data() + e.text_off, e.text_len};
  }

  static uint8_t fingerprint(uint64_t h) {
    const auto f = static_cast<uint8_t>(h >> 56);
    return f ? f : 1;
  }

  // Returns the slot for s, or nullptr.
  const Slot* find(std::string_view s) const {
    if (s.size() > max_text_len || slots.empty()) return nullptr;
    const uint64_t h = hash_bytes(s);
    const uint8_t fp = fingerprint(h);
    for (uint64_t i = h & slot_mask;; i = (i + 1) & slot_mask) {
      const uint8_t f = fps[i];
      if (f == 0) return nullptr;
      if (f != fp) continue;
      const Slot& sl = slots[i];
      if (sl.len != s.size()) continue;
      const char* key = s.size() <= kInlineKey ? sl.key : keys.data() + entries[sl.id].text_off;
      if (std::memcmp(key, s.data(), s.size()) == 0) return &sl;
    }
  }

  int32_t lookup(std::string_view s) const {
    const Slot* sl = find(s);
    return sl ? sl->id : -1;
  }

  void build_map() {
    uint64_t cap = 16;
    while (cap < entries.size() * 2) cap <<= 1;
    fps.assign(cap, 0);
    slots.assign(cap, Slot{});
    slot_mask = cap - 1;
    for (int32_t id = 0; id < static_cast<int32_t>(entries.size()); ++id) {
      std::string_view s = text(id);
      max_text_len = std::max(max_text_len, s.size());
      // The lowest id keeps a duplicated text: it is the higher-priority piece, and it is below limit.
      if (find(s)) continue;
      const uint64_t h = hash_bytes(s);
      uint64_t i = h & slot_mask;
      while (fps[i] != 0) i = (i + 1) & slot_mask;
      fps[i] = fingerprint(h);
      Slot& sl = slots[i];
      sl.id = id;
      sl.score = entries[id].score;
      sl.len = static_cast<uint32_t>(s.size());
      std::memcpy(sl.key, s.data(), std::min(s.size(), kInlineKey));
    }
  }

  void build_trie() {
    nodes.assign(1, Node{});
    std::fill(std::begin(root_next), std::end(root_next), -1);
    // Build with per-node child vectors, then flatten into sorted edge lists.
    std::vector<std::vector<std::pair<uint8_t, int32_t>>> kids(1);
    for (int32_t id = 0; id < limit; ++id) {
      const TokenType t = entries[id].type;
      if (t != TokenType::Control && t != TokenType::UserDefined && t != TokenType::Unknown) continue;
      std::string_view s = text(id);
      if (s.empty()) continue;
      int32_t cur = 0;
      for (unsigned char c : s) {
        int32_t next = -1;
        for (auto& [b, child] : kids[cur])
          if (b == c) { next = child; break; }
        if (next < 0) {
          next = static_cast<int32_t>(nodes.size());
          nodes.push_back(Node{});
          kids.emplace_back();
          kids[cur].emplace_back(c, next);
        }
        cur = next;
      }
      if (nodes[cur].token < 0) {
        nodes[cur].token = id;
        nodes[cur].always = (t == TokenType::UserDefined);
      }
    }
    edges.clear();
    for (size_t n = 0; n < nodes.size(); ++n) {
      std::sort(kids[n].begin(), kids[n].end());
      nodes[n].edge_begin = static_cast<uint32_t>(edges.size());
      edges.insert(edges.end(), kids[n].begin(), kids[n].end());
      nodes[n].edge_end = static_cast<uint32_t>(edges.size());
    }
    for (auto& [b, child] : kids[0]) root_next[b] = child;
  }

  // Longest allowed special token starting at text[pos]: returns its id and sets len, or -1.
  int32_t match_special(std::string_view s, size_t pos, bool parse_special, size_t& len) const {
    int32_t cur = root_next[static_cast<uint8_t>(s[pos])];
    int32_t best = -1;
    size_t i = pos + 1;
    while (cur >= 0) {
      const Node& n = nodes[cur];
      if (n.token >= 0 && (parse_special || n.always)) { best = n.token; len = i - pos; }
      if (i >= s.size()) break;
      const auto c = static_cast<uint8_t>(s[i]);
      int32_t next = -1;
      for (uint32_t e = n.edge_begin; e < n.edge_end; ++e) {
        if (edges[e].first == c) { next = edges[e].second; break; }
        if (edges[e].first > c) break;
      }
      cur = next;
      ++i;
    }
    return best;
  }

  static bool heap_less(const Bigram& a, const Bigram& b) {
    // Max-heap on score; on a tie the leftmost pair (lower symbol index) merges first.
    if (a.score != b.score) return a.score < b.score;
    return a.left > b.left;
  }

  void try_add(Scratch& sc, int32_t left, int32_t right) const {
    if (left < 0 || right < 0) return;
    const Symbol& l = sc.syms[left];
    const Symbol& r = sc.syms[right];
    const uint32_t len = l.len + r.len;
    if (len > max_text_len) return;
    const Slot* sl = find(std::string_view(sc.buf.data() + l.start, len));
    if (!sl || sl->id >= limit) return;
    sc.heap.push_back(Bigram{sl->score, left, right, len});
    std::push_heap(sc.heap.begin(), sc.heap.end(), heap_less);
  }

  // BPE on sc.buf[begin, end) (space-escaped text without special tokens).
  void bpe(Scratch& sc, size_t begin, size_t end, std::vector<int32_t>& out) const {
    const std::string& s = sc.buf;
    sc.syms.clear();
    sc.heap.clear();
    for (size_t i = begin; i < end;) {
      size_t n = std::min(utf8::seq_len(static_cast<uint8_t>(s[i])), end - i);
      const auto idx = static_cast<int32_t>(sc.syms.size());
      sc.syms.push_back(Symbol{static_cast<uint32_t>(i), static_cast<uint32_t>(n), idx - 1, idx + 1});
      i += n;
    }
    if (sc.syms.empty()) return;
    sc.syms.back().next = -1;
    // The first pair lookups are independent cache misses: start them all before using any.
    for (size_t i = 1; i < sc.syms.size(); ++i) {
      const Symbol& l = sc.syms[i - 1];
      const uint64_t h = hash_bytes(std::string_view(s.data() + l.start, l.len + sc.syms[i].len)) & slot_mask;
      __builtin_prefetch(&fps[h]);
      __builtin_prefetch(&slots[h]);
    }
    for (int32_t i = 1; i < static_cast<int32_t>(sc.syms.size()); ++i) try_add(sc, i - 1, i);

    while (!sc.heap.empty()) {
      std::pop_heap(sc.heap.begin(), sc.heap.end(), heap_less);
      const Bigram bg = sc.heap.back();
      sc.heap.pop_back();
      Symbol& l = sc.syms[bg.left];
      Symbol& r = sc.syms[bg.right];
      // Stale entry: one side was already merged into something else.
      if (l.len == 0 || r.len == 0 || l.len + r.len != bg.len) continue;
      l.len += r.len;
      r.len = 0;
      l.next = r.next;
      if (r.next >= 0) sc.syms[r.next].prev = bg.left;
      try_add(sc, l.prev, bg.left);
      try_add(sc, bg.left, l.next);
    }

    for (int32_t i = 0; i >= 0; i = sc.syms[i].next) {
      const Symbol& sym = sc.syms[i];
      std::string_view piece(s.data() + sym.start, sym.len);
      int32_t id = lookup(piece);
      if (id >= 0 && id < limit) {
        out.push_back(id);
        continue;
      }
      // Only single characters can be missing (merges only ever build vocabulary pieces).
      for (unsigned char c : piece) out.push_back(byte_ids[c] >= 0 ? byte_ids[c] : unk);
    }
  }

  void encode_word(Scratch& sc, size_t begin, size_t end, std::vector<int32_t>& out) const {
    constexpr size_t kMaxCachedWord = 128;
    if (end - begin > kMaxCachedWord) {
      bpe(sc, begin, end, out);
      return;
    }
    std::string_view word(sc.buf.data() + begin, end - begin);
    if (auto it = sc.cache.find(word); it != sc.cache.end()) {
      const auto [off, n] = it->second;
      out.insert(out.end(), sc.pool.begin() + off, sc.pool.begin() + off + n);
      return;
    }
    const size_t first = out.size();
    bpe(sc, begin, end, out);
    if (sc.cache.size() >= (1u << 16)) {  // bound the memory; a fresh cache refills quickly
      sc.cache.clear();
      sc.pool.clear();
    }
    sc.cache.emplace(std::string(word), std::make_pair(static_cast<uint32_t>(sc.pool.size()),
                                                       static_cast<uint32_t>(out.size() - first)));
    sc.pool.insert(sc.pool.end(), out.begin() + first, out.end());
  }

  void encode_fragment(Scratch& sc, std::string_view raw, bool prefix_space,
                       std::vector<int32_t>& out) const {
    sc.buf.clear();
    if (prefix_space) sc.buf.append(kSpaceMarker);
    for (char c : raw) {
      if (c == ' ') sc.buf.append(kSpaceMarker);
      else sc.buf.push_back(c);
    }
    if (!split_words) {
      bpe(sc, 0, sc.buf.size(), out);
      return;
    }
    if (sc.owner != uid) {
      sc.cache.clear();
      sc.pool.clear();
      sc.owner = uid;
    }
    // Cut before each "▁" symbol that follows a non-"▁" symbol (symbols as bpe() splits them) unless a
    // piece could span the cut (cut_blocked). Then no merge crosses a cut, so BPE per word gives the same
    // ids as BPE on the whole fragment.
    const std::string& b = sc.buf;
    size_t word = 0;
    bool prev_marker = true;
    for (size_t i = 0; i < b.size();) {
      const size_t n = std::min(utf8::seq_len(static_cast<uint8_t>(b[i])), b.size() - i);
      const bool marker = n == 3 && std::memcmp(b.data() + i, kSpaceMarker.data(), 3) == 0;
      if (marker && !prev_marker && i > word && !cut_blocked(b, i)) {
        encode_word(sc, word, i, out);
        word = i;
      }
      prev_marker = marker;
      i += n;
    }
    if (word < b.size()) encode_word(sc, word, b.size(), out);
  }

  // Finds the pieces that hold a "▁" symbol right after a symbol that is not "▁" (Gemma: only ">▁</"),
  // with the offset of each such "▁". Word splitting must not cut where one of them fits. With too
  // many of them, splitting is not worth it and stays off.
  void compute_split_words() {
    cross_pieces.clear();
    for (int32_t id = 0; id < limit; ++id) {
      std::string_view t = text(id);
      bool prev_other = false;
      for (size_t i = 0; i < t.size();) {
        const size_t n = std::min(utf8::seq_len(static_cast<uint8_t>(t[i])), t.size() - i);
        const bool marker = n == 3 && t.substr(i, 3) == kSpaceMarker;
        if (marker && prev_other) cross_pieces.emplace_back(t, i);
        prev_other = !marker;
        i += n;
      }
    }
    split_words = cross_pieces.size() <= 64;
  }

  // Whether a piece could span a cut before the "▁" at b[i].
  bool cut_blocked(std::string_view b, size_t i) const {
    for (const auto& [t, k] : cross_pieces)
      if (i >= k && i - k + t.size() <= b.size() && b.compare(i - k, t.size(), t) == 0) return true;
    return false;
  }
};

Tokenizer::Tokenizer(VocabData d) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  const size_t n = d.tokens.size();
  if (n == 0) throw std::runtime_error("tokenizer: empty vocabulary");
  if (n > static_cast<size_t>(INT32_MAX / 2)) throw std::runtime_error("tokenizer: vocabulary too large");
  if (!d.scores.empty() && d.scores.size() != n)
    throw std::runtime_error("tokenizer: scores has " + std::to_string(d.scores.size()) + " entries, tokens " +
                             std::to_string(n));
  if (!d.types.empty() && d.types.size() != n)
    throw std::runtime_error("tokenizer: token_type has " + std::to_string(d.types.size()) + " entries, tokens " +
                             std::to_string(n));

  bool has_byte_type = false, has_byte_text = false;
  for (size_t i = 0; i < n; ++i) {
    if (!d.types.empty() && d.types[i] == static_cast<int32_t>(TokenType::Byte)) has_byte_type = true;
    if (parse_byte_piece(d.tokens[i]) >= 0) has_byte_text = true;
  }
  const bool gemma = starts_with(d.architecture, "gemma");
  // Ollama's converter writes the SentencePiece vocabulary of Gemma as "gpt2" without BYTE types.
  m.ollama = (d.model != "llama") || (has_byte_text && !has_byte_type);
  if (d.model != "llama" && !(d.model == "gpt2" && (gemma || has_byte_text)))
    throw std::runtime_error("tokenizer: unsupported tokenizer model '" + d.model + "'");

  // Ollama's scores are ranks (score = id, lower wins); llama.cpp merges the highest score first.
  bool scores_are_ranks = false;
  if (!d.scores.empty()) {
    size_t normal = 0, equal_id = 0;
    for (size_t i = 0; i < n; ++i) {
      if (!d.types.empty() && d.types[i] != static_cast<int32_t>(TokenType::Normal)) continue;
      ++normal;
      if (d.scores[i] == static_cast<float>(i)) ++equal_id;
    }
    scores_are_ranks = normal > 1 && equal_id * 10 >= normal * 9;
  }

  m.limit = static_cast<int32_t>(n);
  if (d.text_vocab_limit > 0 && d.text_vocab_limit < m.limit) m.limit = d.text_vocab_limit;
  else if (m.ollama && d.architecture == "gemma3n" && n > 262144) m.limit = 262144;

  m.entries.resize(n);
  std::fill(std::begin(m.byte_ids), std::end(m.byte_ids), -1);
  std::string piece;
  for (size_t i = 0; i < n; ++i) {
    std::string_view raw = d.tokens[i];
    auto type = d.types.empty() ? TokenType::Normal : static_cast<TokenType>(d.types[i]);
    if (d.types.empty() == false && (d.types[i] < 0 || d.types[i] > 6)) type = TokenType::Undefined;
    const int byte = parse_byte_piece(raw);
    if (m.ollama) {
      if (byte >= 0 && (type == TokenType::Normal || type == TokenType::Undefined)) type = TokenType::Byte;
      // Ollama marks <unused…> and <mask> non-special; llama.cpp treats them as CONTROL (parse_special only).
      if (type == TokenType::UserDefined && (is_unused_name(raw) || raw == "<mask>")) type = TokenType::Control;
    }
    std::string text = (type == TokenType::UserDefined) ? replace_all(raw, kSpaceMarker, " ") : std::string(raw);
    float score = d.scores.empty() ? 0.0f : d.scores[i];
    if (scores_are_ranks) score = -score;

    switch (type) {
      case TokenType::Normal:
      case TokenType::UserDefined:
        piece = replace_all(text, kSpaceMarker, " ");
        break;
      case TokenType::Byte:
        piece = byte >= 0 ? std::string(1, static_cast<char>(byte)) : text;
        if (byte >= 0 && m.byte_ids[byte] < 0 && static_cast<int32_t>(i) < m.limit)
          m.byte_ids[byte] = static_cast<int32_t>(i);
        break;
      default:
        piece = text;
        break;
    }
    auto& e = m.entries[i];
    e.text_off = static_cast<uint32_t>(m.keys.size());
    e.text_len = static_cast<uint32_t>(text.size());
    m.keys += text;
    e.piece_off = static_cast<uint32_t>(m.pieces.size());
    e.piece_len = static_cast<uint32_t>(piece.size());
    m.pieces += piece;
    e.score = score;
    e.type = type;
  }
  m.build_map();
  static std::atomic<uint64_t> next_uid{1};
  m.uid = next_uid++;
  m.compute_split_words();
  m.build_trie();

  auto valid = [&](int32_t id) { return id >= 0 && id < static_cast<int32_t>(n) ? id : -1; };
  m.bos = valid(d.bos);
  m.eos = valid(d.eos);
  m.unk = valid(d.unk);
  m.pad = valid(d.pad);
  m.add_bos = d.add_bos;
  m.add_space_prefix = d.add_space_prefix.value_or(!gemma);
  if (int32_t id = m.lookup("<end_of_turn>"); id >= 0) m.eot = id;
  if (m.eos >= 0) m.stop.push_back(m.eos);
  if (m.eot) m.stop.push_back(*m.eot);
  for (int32_t id : d.eos_ids)
    if (valid(id) >= 0) m.stop.push_back(id);
  std::sort(m.stop.begin(), m.stop.end());
  m.stop.erase(std::unique(m.stop.begin(), m.stop.end()), m.stop.end());
}

Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

VocabData Tokenizer::read_vocab(const GgufFile& f) {
  VocabData d;
  const GgufValue* tokens = f.find("tokenizer.ggml.tokens");
  if (!tokens || tokens->type != GgufValueType::ARRAY || tokens->elem_type() != GgufValueType::STRING)
    throw std::runtime_error("tokenizer: GGUF has no tokenizer.ggml.tokens string array");
  d.model = f.get_string("tokenizer.ggml.model").value_or("llama");
  d.architecture = f.get_string("general.architecture").value_or("");
  d.tokens.reserve(tokens->array.size());
  for (size_t k = 0; k < tokens->array.size(); ++k) d.tokens.emplace_back(tokens->array.string_at(k));
  if (const GgufValue* s = f.find("tokenizer.ggml.scores"); s && s->type == GgufValueType::ARRAY) {
    d.scores.reserve(s->array.size());
    for (const GgufValue& v : s->array) d.scores.push_back(static_cast<float>(v.as_double().value_or(0.0)));
  }
  if (const GgufValue* t = f.find("tokenizer.ggml.token_type"); t && t->type == GgufValueType::ARRAY) {
    d.types.reserve(t->array.size());
    for (const GgufValue& v : t->array) d.types.push_back(static_cast<int32_t>(v.as_int().value_or(1)));
  }
  auto id = [&](const char* key) -> int32_t {
    auto v = f.get_int(key);
    return v && *v >= 0 && *v <= INT32_MAX ? static_cast<int32_t>(*v) : -1;
  };
  d.bos = id("tokenizer.ggml.bos_token_id");
  d.eos = id("tokenizer.ggml.eos_token_id");
  d.unk = id("tokenizer.ggml.unknown_token_id");
  d.pad = id("tokenizer.ggml.padding_token_id");
  if (const GgufValue* e = f.find("tokenizer.ggml.eos_token_ids"); e && e->type == GgufValueType::ARRAY) {
    for (const GgufValue& v : e->array)
      if (auto x = v.as_int(); x && *x >= 0 && *x <= INT32_MAX) d.eos_ids.push_back(static_cast<int32_t>(*x));
  }
  d.add_bos = f.get_bool("tokenizer.ggml.add_bos_token").value_or(true);
  d.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix");
  // The model can only embed ids that have a per-layer row (Gemma 3n): cap what encode produces.
  if (const GgufTensorInfo* t = f.find_tensor("per_layer_token_embd.weight"); t && t->ne.size() >= 2) {
    if (t->ne[1] > 0 && t->ne[1] < static_cast<int64_t>(d.tokens.size())) d.text_vocab_limit = static_cast<int32_t>(t->ne[1]);
  }
  return d;
}

Tokenizer Tokenizer::from_gguf(const GgufFile& f) { return Tokenizer(read_vocab(f)); }

namespace {
Scratch& thread_scratch() {
  thread_local Scratch sc;
  return sc;
}
}  // namespace

void Tokenizer::clear_thread_cache() {
  auto& sc = thread_scratch();
  sc.cache = {};
  sc.pool = {};
  sc.owner = 0;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  const Impl& m = *impl_;
  Scratch& sc = thread_scratch();
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos && m.bos >= 0) out.push_back(m.bos);
  bool prev_special = true;  // llama.cpp adds the space prefix at the start and after each special token
  size_t frag = 0, pos = 0;
  while (pos < text.size()) {
    if (m.root_next[static_cast<uint8_t>(text[pos])] >= 0) {
      size_t len = 0;
      int32_t id = m.match_special(text, pos, parse_special, len);
      if (id >= 0) {
        if (pos > frag) m.encode_fragment(sc, text.substr(frag, pos - frag), m.add_space_prefix && prev_special, out);
        out.push_back(id);
        prev_special = true;
        pos += len;
        frag = pos;
        continue;
      }
    }
    ++pos;
  }
  if (pos > frag) m.encode_fragment(sc, text.substr(frag, pos - frag), m.add_space_prefix && prev_special, out);
  return out;
}

std::string_view Tokenizer::piece_view(int32_t id, bool special) const {
  const Impl& m = *impl_;
  if (id < 0 || id >= static_cast<int32_t>(m.entries.size())) return {};
  const Impl::Entry& e = m.entries[id];
  switch (e.type) {
    case TokenType::Normal:
    case TokenType::UserDefined:
    case TokenType::Byte:
      break;
    default:
      if (!special) return {};
  }
  return {m.pieces.data() + e.piece_off, e.piece_len};
}

std::string Tokenizer::piece(int32_t id, bool special) const { return std::string(piece_view(id, special)); }

std::string_view Tokenizer::text(int32_t id) const {
  if (id < 0 || id >= n_vocab()) return {};
  return impl_->text(id);
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool special) const {
  std::string out;
  for (int32_t id : ids) out += piece_view(id, special);
  return out;
}

int32_t Tokenizer::n_vocab() const { return static_cast<int32_t>(impl_->entries.size()); }
TokenType Tokenizer::type(int32_t id) const {
  return id >= 0 && id < n_vocab() ? impl_->entries[id].type : TokenType::Undefined;
}
bool Tokenizer::is_control(int32_t id) const { return type(id) == TokenType::Control; }
bool Tokenizer::is_byte(int32_t id) const { return type(id) == TokenType::Byte; }
float Tokenizer::score(int32_t id) const { return id >= 0 && id < n_vocab() ? impl_->entries[id].score : 0.0f; }
int32_t Tokenizer::bos() const { return impl_->bos; }
int32_t Tokenizer::eos() const { return impl_->eos; }
int32_t Tokenizer::unk() const { return impl_->unk; }
int32_t Tokenizer::pad() const { return impl_->pad; }
std::optional<int32_t> Tokenizer::eot() const { return impl_->eot; }
bool Tokenizer::add_bos_default() const { return impl_->add_bos; }
bool Tokenizer::add_space_prefix() const { return impl_->add_space_prefix; }
std::vector<int32_t> Tokenizer::stop_ids() const { return impl_->stop; }
bool Tokenizer::is_stop(int32_t id) const {
  return std::binary_search(impl_->stop.begin(), impl_->stop.end(), id);
}
std::optional<int32_t> Tokenizer::find_token(std::string_view text) const {
  int32_t id = impl_->lookup(text);
  if (id < 0) return std::nullopt;
  return id;
}
bool Tokenizer::ollama_typing() const { return impl_->ollama; }

// ---- streaming detokenizer ----

std::string take_complete_utf8(std::string& buf) {
  std::string out;
  size_t i = 0;
  while (i < buf.size()) {
    const auto b0 = static_cast<uint8_t>(buf[i]);
    if (b0 < 0x80) { out += static_cast<char>(b0); ++i; continue; }
    uint32_t cp;
    size_t n = utf8::decode(buf, i, cp);
    if (n > 0) { out.append(buf, i, n); i += n; continue; }
    // Malformed or truncated. A truncated-but-so-far-valid sequence at the end is held back.
    size_t want = (b0 & 0xE0) == 0xC0 ? 2 : (b0 & 0xF0) == 0xE0 ? 3 : (b0 & 0xF8) == 0xF0 ? 4 : 0;
    if (want > 0 && i + want > buf.size()) {
      bool prefix_ok = b0 >= 0xC2 && b0 <= 0xF4;
      for (size_t k = i + 1; k < buf.size(); ++k)
        if ((static_cast<uint8_t>(buf[k]) & 0xC0) != 0x80) prefix_ok = false;
      if (prefix_ok) break;
    }
    out += "\xEF\xBF\xBD";  // U+FFFD for one bad byte, then resynchronize
    ++i;
  }
  buf.erase(0, i);
  return out;
}

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tok, bool show_control)
    : tok_(&tok), show_control_(show_control) {}

std::string StreamingDetokenizer::push(int32_t id) {
  pending_ += tok_->piece_view(id, show_control_);
  return take_complete_utf8(pending_);
}

std::string StreamingDetokenizer::flush() {
  std::string out = take_complete_utf8(pending_);
  if (!pending_.empty()) out += "\xEF\xBF\xBD";  // the held bytes are one truncated character
  pending_.clear();
  return out;
}

void StreamingDetokenizer::reset() { pending_.clear(); }

}  // namespace g3n
