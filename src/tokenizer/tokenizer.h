// SentencePiece-style BPE tokenizer (GGUF tokenizer.ggml.model = "llama") with byte fallback, built from
// GGUF metadata. Follows llama.cpp's SPM path: special tokens are cut out of the raw text first, spaces
// become U+2581, pieces merge by highest score, and unknown symbols fall back to <0xNN> byte tokens.
//
// Two typings of the same Gemma vocabulary are accepted and normalized to one behaviour:
//  - llama.cpp's converter (model "llama", BYTE types, score = -rank, user-defined spaces stored as " ");
//  - Ollama's converter (model "gpt2", no BYTE type, score = id, "▁" in user-defined pieces,
//    <unused…>/<mask> typed USER_DEFINED, 262,400 entries). See fixtures/gemma3-vocab/README.md.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace g3n {

class GgufFile;

// GGUF tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class TokenType : uint8_t {
  Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6,
};

// Raw vocabulary arrays plus the special ids, as read from GGUF (or built by hand in tests).
struct VocabData {
  std::string model = "llama";        // tokenizer.ggml.model
  std::string architecture;           // general.architecture (picks defaults)
  std::vector<std::string> tokens;
  std::vector<float> scores;          // empty = all 0
  std::vector<int32_t> types;         // empty = all Normal
  int32_t bos = -1, eos = -1, unk = -1, pad = -1;
  std::vector<int32_t> eos_ids;       // tokenizer.ggml.eos_token_ids (Ollama)
  bool add_bos = true;
  std::optional<bool> add_space_prefix;  // absent: false for Gemma, true otherwise (llama.cpp)
  // Ids at or above this are never produced by encode() (0 = no limit): Gemma 3n's image/audio/[PAD]
  // entries past the per-layer vocabulary, which a text-only engine must not feed.
  int32_t text_vocab_limit = 0;
};

class Tokenizer {
 public:
  explicit Tokenizer(VocabData data);
  // Reads the tokenizer.ggml.* keys; works on vocab-only files. Throws std::runtime_error if the
  // vocabulary is missing or of an unsupported kind.
  static Tokenizer from_gguf(const GgufFile& file);
  static VocabData read_vocab(const GgufFile& file);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // add_bos: prepend BOS (pass add_bos_default() for the file's choice). parse_special: also match
  // CONTROL tokens (e.g. "<start_of_turn>") in the text; USER_DEFINED tokens are always matched.
  // Thread-safe: each thread keeps its own scratch buffers and word cache (see clear_thread_cache).
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;
  // Frees the calling thread's word cache (encode results are memoized per word, up to 64k words).
  static void clear_thread_cache();
  // The bytes a token stands for: "▁" → " ", <0xNN> → that byte; control/unknown/unused tokens give
  // their text when `special`, else nothing (llama_token_to_piece).
  std::string piece(int32_t id, bool special = true) const;
  std::string_view piece_view(int32_t id, bool special = true) const;
  // The token's text as stored in the vocabulary (normalized: user-defined "▁" → " ").
  std::string_view text(int32_t id) const;
  // Concatenated pieces; may hold partial UTF-8 at the ends (see StreamingDetokenizer).
  std::string decode(std::span<const int32_t> ids, bool special = false) const;

  int32_t n_vocab() const;
  TokenType type(int32_t id) const;
  bool is_control(int32_t id) const;  // CONTROL (after normalization)
  bool is_byte(int32_t id) const;
  float score(int32_t id) const;      // merge priority as used (higher merges first)

  int32_t bos() const;
  int32_t eos() const;
  int32_t unk() const;
  int32_t pad() const;
  std::optional<int32_t> eot() const;  // "<end_of_turn>", found by its text
  bool add_bos_default() const;
  bool add_space_prefix() const;
  // End-of-generation ids: eos, <end_of_turn> and eos_token_ids, deduplicated, ascending.
  std::vector<int32_t> stop_ids() const;
  bool is_stop(int32_t id) const;

  std::optional<int32_t> find_token(std::string_view text) const;
  // True when the file used Ollama's typing and was normalized (diagnostics).
  bool ollama_typing() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Turns a stream of ids into printable UTF-8 text: never emits part of a character (byte-fallback tokens
// arrive one byte at a time), renders "▁" as a space, and hides control tokens unless asked.
// Malformed byte sequences come out as U+FFFD so the output is always valid UTF-8.
class StreamingDetokenizer {
 public:
  explicit StreamingDetokenizer(const Tokenizer& tok, bool show_control = false);
  // Returns the text that became complete with this token (possibly empty).
  std::string push(int32_t id);
  // Returns what is still held back (an incomplete character becomes U+FFFD) and resets.
  std::string flush();
  void reset();
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer* tok_;
  bool show_control_;
  std::string pending_;
};

// Splits bytes into a valid-UTF-8 prefix and a held-back tail that may still become a character.
// Malformed sequences in the prefix are replaced with U+FFFD. Exposed for tests.
std::string take_complete_utf8(std::string& buf);

}  // namespace g3n
