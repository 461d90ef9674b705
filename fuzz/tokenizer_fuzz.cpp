// libFuzzer target for the tokenizer with the real Gemma 3 vocabulary (../shared/fixtures/gemma3-vocab/
// vocab.gguf, or $G3N_FIXTURES_DIR/gemma3-vocab/vocab.gguf): encodes arbitrary bytes (UTF-8 or not), and
// decodes arbitrary ids, whole and through the streaming detokenizer.
// Input: one flags byte (bit 0: parse_special, bit 1: add_bos, bit 2: the rest are little-endian int32
// ids to decode rather than text to encode, bit 3: decode with control tokens shown), then the payload.
// Properties checked (a failure is a bug, reported by __builtin_trap):
//  - encode gives ids of the vocabulary, BOS first when asked (and only then, unless spelled and parsed);
//  - plain text (parse_special off) that is valid UTF-8 round-trips: decode(encode(text)) == text, but
//    for U+2581, the vocabulary's spelling of a space, which comes back as a space;
//  - streaming the ids one by one gives the whole decode when that is valid UTF-8;
//  - the streaming detokenizer's output is always valid UTF-8, whatever the ids.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

using namespace g3n;

namespace {

const Tokenizer& tokenizer() {
  static const Tokenizer tok = [] {
    const char* dir = std::getenv("G3N_FIXTURES_DIR");
    const std::string path = std::string(dir && *dir ? dir : "../shared/fixtures") + "/gemma3-vocab/vocab.gguf";
    return Tokenizer::from_gguf(GgufFile::open(path));
  }();
  return tok;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    const size_t n = utf8::decode(s, i, cp);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// The streaming detokenizer's text for ids: what each push releases, then the flush.
std::string streamed(const Tokenizer& tok, const std::vector<int32_t>& ids, bool show_control) {
  StreamingDetokenizer d(tok, show_control);
  std::string out;
  for (int32_t id : ids) out += d.push(id);
  out += d.flush();
  if (d.pending_bytes() != 0) __builtin_trap();
  return out;
}

}  // namespace

// The vocabulary loads once, before the first input is timed (it takes seconds under the sanitizers).
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)tokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const Tokenizer& tok = tokenizer();
  const uint8_t flags = data[0];
  const bool special = flags & 1, add_bos = flags & 2, show_control = flags & 8;
  ++data;
  --size;
  std::vector<int32_t> ids;
  if (flags & 4) {
    // Arbitrary ids, out-of-range ones included: decoding must skip what it cannot spell.
    for (size_t i = 0; i + 4 <= size; i += 4) {
      int32_t id;
      std::memcpy(&id, data + i, 4);
      ids.push_back(id);
    }
    (void)tok.decode(ids, show_control);
    if (!valid_utf8(streamed(tok, ids, show_control))) __builtin_trap();
    return 0;
  }
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  ids = tok.encode(text, add_bos, special);
  const int32_t n = tok.n_vocab();
  for (int32_t id : ids)
    if (id < 0 || id >= n) __builtin_trap();
  // BOS leads exactly when asked for, or when the text spells it and special tokens are parsed.
  if (add_bos && (ids.empty() || ids[0] != tok.bos())) __builtin_trap();
  if (!add_bos && !special && !ids.empty() && ids[0] == tok.bos()) __builtin_trap();
  const std::vector<int32_t> body(ids.begin() + (add_bos ? 1 : 0), ids.end());
  if (!text.empty() && body.empty()) __builtin_trap();  // every byte is spelled by some token
  const std::string back = tok.decode(body, false);
  const bool utf8 = valid_utf8(text);
  // The vocabulary spells a space as U+2581 ("▁"), so that character in the text decodes as a space.
  std::string expect(text);
  for (size_t p = 0; (p = expect.find("\xE2\x96\x81", p)) != std::string::npos;) expect.replace(p, 3, " ");
  if (!special && utf8 && back != expect) __builtin_trap();
  const std::string stream = streamed(tok, body, false);
  if (!valid_utf8(stream)) __builtin_trap();
  if (valid_utf8(back) && stream != back) __builtin_trap();
  return 0;
}
