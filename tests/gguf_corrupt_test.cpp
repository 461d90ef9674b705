// Malformed GGUF input: every truncation of a small file, and hand-built hostile headers. Each must raise a
// GgufError whose message names the specific problem (never a crash, an over-read or a huge allocation).
#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "gtest/gtest.h"

using namespace g3n;

namespace {

constexpr uint32_t kMagic = 0x46554747;

// Hand-assembles GGUF bytes, including invalid ones the writer refuses to produce.
struct Raw {
  std::vector<uint8_t> b;
  Raw& u8(uint8_t v) {
    b.push_back(v);
    return *this;
  }
  Raw& le(uint64_t v, int n) {
    for (int k = 0; k < n; ++k) b.push_back(static_cast<uint8_t>(v >> (8 * k)));
    return *this;
  }
  Raw& u32(uint32_t v) { return le(v, 4); }
  Raw& u64(uint64_t v) { return le(v, 8); }
  Raw& str(const std::string& s) {
    u64(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Raw& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    return u32(kMagic).u32(version).u64(n_tensors).u64(n_kv);
  }
  Raw& kv_u32(const std::string& key, uint32_t v) { return str(key).u32(4).u32(v); }
  Raw& tensor(const std::string& name, const std::vector<uint64_t>& ne, uint32_t type, uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(ne.size()));
    for (uint64_t d : ne) u64(d);
    return u32(type).u64(offset);
  }
  Raw& pad(size_t a = 32) {
    while (b.size() % a) b.push_back(0);
    return *this;
  }
  Raw& zeros(size_t n) {
    b.insert(b.end(), n, 0);
    return *this;
  }
};

// Parses an exact-size heap copy (so sanitizer builds flag any over-read); returns the error or "".
std::string parse_error(const uint8_t* data, size_t n) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[n ? n : 1]);
  if (n) std::memcpy(copy.get(), data, n);
  try {
    const auto f = GgufFile::from_memory(copy.get(), n);
    // Touch everything that was accepted.
    for (const auto& t : f.tensors()) {
      const uint8_t* p = f.tensor_data(t);
      volatile uint8_t sink = t.nbytes ? static_cast<uint8_t>(p[0] ^ p[t.nbytes - 1]) : 0;
      (void)sink;
    }
  } catch (const GgufError& e) {
    return e.what();
  }
  return "";
}
std::string parse_error(const std::vector<uint8_t>& b) { return parse_error(b.data(), b.size()); }

#define EXPECT_GGUF_ERROR(bytes, ...)                                                        \
  do {                                                                                       \
    const std::string m_ = parse_error(bytes);                                               \
    EXPECT_FALSE(m_.empty()) << "parsed without error";                                      \
    EXPECT_EQ(m_.rfind("gguf: ", 0), 0u) << m_;                                              \
    for (const char* s_ : {__VA_ARGS__}) EXPECT_NE(m_.find(s_), std::string::npos) << m_; \
  } while (0)

// A small valid file with every section present: several KV types, a nested array, three tensors.
std::vector<uint8_t> small_file() {
  GgufWriter w;
  w.set_string("general.architecture", "gemma3n");
  w.set_u32("gemma3n.block_count", 2);
  w.set_f32("eps", 1e-6f);
  w.set_bool("flag", true);
  w.set_array_string("tokens", {"<pad>", "<eos>", "hello"});
  w.set_array_i32("ff", {1, 2, 3});
  GgufValue nested;
  nested.type = GgufValueType::ARRAY;
  GgufValue inner;
  inner.type = GgufValueType::ARRAY;
  GgufValue u16;
  u16.type = GgufValueType::UINT16;
  inner.array = GgufArray(GgufValueType::UINT16, {u16, u16});
  nested.array = GgufArray(GgufValueType::ARRAY, {inner, inner});
  w.set("nested", nested);
  std::vector<uint8_t> d1(4 * 8, 1), d2(34 * 2, 2), d3(2 * 3, 3);
  w.add_tensor("a.weight", GgmlType::F32, {8}, d1);
  w.add_tensor("blk.0.b.weight", GgmlType::Q8_0, {32, 2}, d2);
  w.add_tensor("c", GgmlType::F16, {3}, d3);
  return w.to_bytes();
}

}  // namespace

TEST(GgufCorrupt, EveryTruncationFails) {
  const auto full = small_file();
  const auto f = GgufFile::from_memory(full.data(), full.size());
  const auto& last = f.tensors().back();
  const uint64_t required = f.data_offset() + last.offset + last.nbytes;
  ASSERT_LT(required, full.size());  // the final padding is optional
  for (size_t n = 0; n < required; ++n) {
    const std::string m = parse_error(full.data(), n);
    ASSERT_FALSE(m.empty()) << "truncated to " << n << " bytes parsed";
    ASSERT_EQ(m.rfind("gguf: ", 0), 0u) << m;
    const bool says_why = m.find("truncated") != std::string::npos || m.find("past end of file") != std::string::npos ||
                          m.find("remain") != std::string::npos || m.find("not a GGUF file") != std::string::npos;
    EXPECT_TRUE(says_why) << "at " << n << ": " << m;
  }
  for (size_t n = required; n <= full.size(); ++n) EXPECT_EQ(parse_error(full.data(), n), "") << n;
}

TEST(GgufCorrupt, TruncationAtSectionBoundaries) {
  const auto full = small_file();
  const auto f = GgufFile::from_memory(full.data(), full.size());
  const auto at = [&](size_t n) { return std::vector<uint8_t>(full.begin(), full.begin() + n); };
  EXPECT_GGUF_ERROR(at(0), "not a GGUF file", "only 0 bytes");
  EXPECT_GGUF_ERROR(at(3), "not a GGUF file", "only 3 bytes");
  EXPECT_GGUF_ERROR(at(4), "truncated", "version");
  EXPECT_GGUF_ERROR(at(8), "truncated", "tensor count");
  EXPECT_GGUF_ERROR(at(16), "truncated", "metadata key/value count");
  EXPECT_GGUF_ERROR(at(24), "bad metadata key/value count 7");
  // Too little left for 7 key/values: caught by the count check before any key is read.
  EXPECT_GGUF_ERROR(at(24 + 8 + 5), "bad metadata key/value count 7");

  // End of metadata: the tensor infos are missing.
  size_t kv_end = 24;
  {
    // Sum of the encoded KV sizes, recomputed from the parsed values' lengths would be circular; instead find
    // the first tensor name in the bytes.
    const std::string name = "a.weight";
    const auto it = std::search(full.begin(), full.end(), name.begin(), name.end());
    kv_end = static_cast<size_t>(it - full.begin()) - 8;
  }
  EXPECT_GGUF_ERROR(at(kv_end), "bad tensor count 3", "after the metadata");
  EXPECT_GGUF_ERROR(at(kv_end + 8 + 3), "bad tensor count 3", "after the metadata");
  // Infos are 40 + 54 + 33 bytes; from 96 bytes on the count check passes and the third info is cut.
  EXPECT_GGUF_ERROR(at(kv_end + 96), "tensor info #2", "truncated", "tensor name");
  EXPECT_GGUF_ERROR(at(kv_end + 94 + 8 + 1), "tensor 'c'", "truncated", "tensor n_dims");
  EXPECT_GGUF_ERROR(at(kv_end + 94 + 8 + 1 + 4 + 3), "tensor 'c'", "truncated", "tensor dimension");
  EXPECT_GGUF_ERROR(at(kv_end + 127 - 2), "tensor 'c'", "truncated", "tensor offset");
  // Data section start: infos complete, no data.
  EXPECT_GGUF_ERROR(at(f.data_offset()), "tensor 'a.weight'", "extends past end of file");
  // Within the last tensor's data.
  const auto& last = f.tensors().back();
  EXPECT_GGUF_ERROR(at(f.data_offset() + last.offset + 1), "tensor 'c'", "extends past end of file",
                    "file size");
}

TEST(GgufCorrupt, RandomByteFlipsNeverCrash) {
  const auto full = small_file();
  std::mt19937 rng(1234);
  int errors = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    auto b = full;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) b[rng() % b.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
    const std::string m = parse_error(b);
    if (!m.empty()) {
      ++errors;
      EXPECT_EQ(m.rfind("gguf: ", 0), 0u) << m;
    }
  }
  EXPECT_GT(errors, 0);
}

TEST(GgufCorrupt, BadMagic) {
  auto b = small_file();
  b[3] = 'X';
  EXPECT_GGUF_ERROR(b, "not a GGUF file", "bad magic 'GGUX'");
  std::vector<uint8_t> bin = {0x00, 0xff, 0x10, 0x7f, 3, 0, 0, 0};
  EXPECT_GGUF_ERROR(bin, "bad magic '\\x00\\xff\\x10\\x7f'");
}

TEST(GgufCorrupt, BadVersion) {
  EXPECT_GGUF_ERROR(Raw().header(0, 0, 1).b, "version 1 is not supported");
  EXPECT_GGUF_ERROR(Raw().header(0, 0, 0).b, "unsupported GGUF version 0");
  EXPECT_GGUF_ERROR(Raw().header(0, 0, 4).b, "unsupported GGUF version 4");
  EXPECT_GGUF_ERROR(Raw().header(0, 0, 0x03000000).b, "big-endian");
  // v2 has the v3 layout and is accepted.
  const auto v2 = GgufFile::from_memory(Raw().header(0, 0, 2).b.data(), 24);
  EXPECT_EQ(v2.version(), 2u);
}

TEST(GgufCorrupt, HugeCounts) {
  EXPECT_GGUF_ERROR(Raw().header(0, uint64_t{1} << 60).zeros(64).b, "bad metadata key/value count 1152921504606846976");
  EXPECT_GGUF_ERROR(Raw().header(0, ~uint64_t{0}).b, "bad metadata key/value count 18446744073709551615");
  EXPECT_GGUF_ERROR(Raw().header(uint64_t{1} << 62, 0).zeros(64).b, "bad tensor count 4611686018427387904");
  // Plausible against the whole file but not against what is left after the metadata.
  EXPECT_GGUF_ERROR(Raw().header(2, 1).kv_u32("k", 1).zeros(60).b, "bad tensor count 2", "after the metadata");
}

// Counts the bytes could hold but no real file has: each key and each array inside an array parses into a whole
// value, so they have caps of their own (65536 each; real files have a few dozen keys and no nested arrays).
TEST(GgufCorrupt, TooManyKeysOrNestedArrays) {
  EXPECT_GGUF_ERROR(Raw().header(0, 65537).zeros(65537 * 13).b, "metadata key/value count 65537 is over the limit of 65536");
  EXPECT_GGUF_ERROR(Raw().header(0, 1).str("arr").u32(9).u32(9).u64(65537).zeros(65537 * 12).b, "'arr'",
                    "more than 65536 arrays inside arrays");
  // The cap is over the whole file: two keys of 40000 empty nested arrays each.
  Raw two;
  two.header(0, 2);
  for (const char* key : {"a", "b"}) {
    two.str(key).u32(9).u32(9).u64(40000);
    for (int k = 0; k < 40000; ++k) two.u32(0).u64(0);
  }
  EXPECT_GGUF_ERROR(two.b, "metadata key #1 'b'", "more than 65536 arrays inside arrays");
  Raw one;  // one such key parses
  one.header(0, 1).str("a").u32(9).u32(9).u64(40000);
  for (int k = 0; k < 40000; ++k) one.u32(0).u64(0);
  EXPECT_EQ(parse_error(one.b), "");
}

TEST(GgufCorrupt, HugeStringLengths) {
  EXPECT_GGUF_ERROR(Raw().header(0, 1).u64(~uint64_t{0}).zeros(16).b, "metadata key #0", "claims length 18446744073709551615");
  EXPECT_GGUF_ERROR(Raw().header(0, 1).str("k").u32(8).u64(uint64_t{1} << 40).zeros(16).b, "metadata key #0 'k'",
                    "string value", "claims length 1099511627776");
  EXPECT_GGUF_ERROR(Raw().header(1, 0).u64(uint64_t{1} << 50).zeros(40).b, "tensor info #0", "tensor name",
                    "claims length");
}

TEST(GgufCorrupt, HugeArrayLengths) {
  EXPECT_GGUF_ERROR(Raw().header(0, 1).str("arr").u32(9).u32(5).u64(uint64_t{1} << 61).zeros(64).b,
                    "metadata key #0 'arr'", "bad array length 2305843009213693952");
  EXPECT_GGUF_ERROR(Raw().header(0, 1).str("arr").u32(9).u32(8).u64(100).zeros(64).b, "'arr'",
                    "bad array length 100", "str elements");
  // Array of arrays: each inner array needs 12 bytes.
  EXPECT_GGUF_ERROR(Raw().header(0, 1).str("arr").u32(9).u32(9).u64(10).zeros(100).b, "bad array length 10");
  // Inner length too large, reported with its index path.
  EXPECT_GGUF_ERROR(
      Raw().header(0, 1).str("arr").u32(9).u32(9).u64(2).u32(0).u64(1).u8(7).u32(0).u64(~uint64_t{0}).b,
      "'arr'", "[1]", "bad array length 18446744073709551615");
}

TEST(GgufCorrupt, DeepNesting) {
  const auto nested = [](int levels) {
    Raw r;
    r.header(0, 1).str("deep").u32(9);
    for (int k = 1; k < levels; ++k) r.u32(9).u64(1);
    r.u32(0).u64(1).u8(42);  // innermost: arr[u8] of one element
    return r.b;
  };
  EXPECT_EQ(parse_error(nested(16)), "");
  EXPECT_GGUF_ERROR(nested(17), "'deep'", "nested deeper than 16");
  EXPECT_GGUF_ERROR(nested(5000), "'deep'", "nested deeper than 16");
}

TEST(GgufCorrupt, BadValueTypes) {
  EXPECT_GGUF_ERROR(Raw().header(0, 1).str("k").u32(13).zeros(8).b, "metadata key #0 'k'", "unknown value type 13");
  EXPECT_GGUF_ERROR(Raw().header(0, 1).str("k").u32(0xffffffff).zeros(8).b, "unknown value type 4294967295");
  EXPECT_GGUF_ERROR(Raw().header(0, 1).str("k").u32(9).u32(99).u64(0).b, "unknown array element type 99");
  EXPECT_GGUF_ERROR(Raw().header(0, 1).str("b").u32(7).u8(2).b, "'b'", "invalid bool value 2");
  EXPECT_GGUF_ERROR(Raw().header(0, 1).str("b").u32(9).u32(7).u64(3).u8(1).u8(0).u8(9).b, "'b'", "[2]",
                    "invalid bool value 9");
  EXPECT_GGUF_ERROR(Raw().header(0, 2).kv_u32("dup", 1).kv_u32("dup", 2).b, "duplicate metadata key 'dup'");
}

TEST(GgufCorrupt, BadAlignment) {
  EXPECT_GGUF_ERROR(Raw().header(0, 1).kv_u32("general.alignment", 0).b, "general.alignment", "nonzero power of two");
  EXPECT_GGUF_ERROR(Raw().header(0, 1).kv_u32("general.alignment", 48).b, "is 48", "power of two");
  // Found by the fuzzer: a 1 GiB alignment parsed fine but made rewriting the file allocate gigabytes.
  EXPECT_GGUF_ERROR(Raw().header(0, 1).kv_u32("general.alignment", 0x40000000u).b, "is 1073741824", "at most 65536");
  EXPECT_GGUF_ERROR(Raw().header(0, 1).str("general.alignment").u32(10).u64(64).b, "general.alignment",
                    "type u64", "must be u32");
  EXPECT_GGUF_ERROR(Raw().header(0, 1).str("general.alignment").u32(8).str("32").b, "type str");
  // A valid non-default alignment is honoured.
  Raw ok;
  ok.header(1, 1).kv_u32("general.alignment", 64).tensor("t", {16}, 0, 64).pad(64).zeros(128);
  const auto f = GgufFile::from_memory(ok.b.data(), ok.b.size());
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.tensors()[0].offset, 64u);
}

TEST(GgufCorrupt, TensorOffsets) {
  const auto one = [](uint64_t offset, size_t data) {
    return Raw().header(1, 0).tensor("blk.3.attn_q.weight", {16}, 0, offset).pad().zeros(data).b;
  };
  EXPECT_EQ(parse_error(one(0, 64)), "");
  EXPECT_EQ(parse_error(one(0, 64)), "");
  EXPECT_GGUF_ERROR(one(4, 64), "tensor 'blk.3.attn_q.weight'", "offset 4 is not a multiple of the alignment 32");
  EXPECT_GGUF_ERROR(one(32, 64), "tensor 'blk.3.attn_q.weight'", "data [offset 32, 64 bytes]",
                    "extends past end of file");
  EXPECT_GGUF_ERROR(one(uint64_t{1} << 40, 64), "extends past end of file");
  EXPECT_GGUF_ERROR(one(~uint64_t{31}, 64), "tensor 'blk.3.attn_q.weight'", "extends past end of file");
  EXPECT_GGUF_ERROR(one(0, 63), "extends past end of file", "file size");
}

TEST(GgufCorrupt, TensorDimensions) {
  const auto t = [](const std::vector<uint64_t>& ne, uint32_t type = 0) {
    return Raw().header(1, 0).tensor("w", ne, type, 0).pad().zeros(64).b;
  };
  EXPECT_GGUF_ERROR(t({}), "tensor 'w'", "has 0 dimensions");
  EXPECT_GGUF_ERROR(Raw().header(1, 0).str("w").u32(5).zeros(80).b, "tensor 'w'", "has 5 dimensions");
  EXPECT_GGUF_ERROR(Raw().header(1, 0).str("w").u32(0xffffffff).zeros(80).b, "has 4294967295 dimensions");
  EXPECT_GGUF_ERROR(t({uint64_t{1} << 32, uint64_t{1} << 32}), "tensor 'w'", "overflows int64");
  EXPECT_GGUF_ERROR(t({3, uint64_t{1} << 62}), "overflows int64");
  // A zero row length must not hide an overflowing row count (found by the fuzzer).
  EXPECT_GGUF_ERROR(t({0, uint64_t{1} << 40, uint64_t{1} << 40}), "overflows int64");
  EXPECT_GGUF_ERROR(t({uint64_t{1} << 40, uint64_t{1} << 30, 0}), "overflows int64");
  EXPECT_GGUF_ERROR(t({~uint64_t{0}}), "dimension 0 is 18446744073709551615", "too large");
  EXPECT_GGUF_ERROR(t({uint64_t{1} << 62}), "tensor 'w'", "overflow");          // F32: 2^64 bytes
  EXPECT_GGUF_ERROR(t({uint64_t{1} << 61}), "tensor 'w'", "too large");         // F32: 2^63 bytes
  EXPECT_GGUF_ERROR(t({uint64_t{1} << 40, 4}), "extends past end of file");   // representable, not there
  EXPECT_GGUF_ERROR(t({100}, 12), "tensor 'w'", "row length 100", "Q4_K block size 256");
  EXPECT_GGUF_ERROR(t({33}, 8), "row length 33", "Q8_0 block size 32");
  // Zero-sized dimensions are allowed: an empty tensor.
  const auto z = t({0, 7});
  const auto f = GgufFile::from_memory(z.data(), z.size());
  EXPECT_EQ(f.tensors()[0].nbytes, 0u);
}

TEST(GgufCorrupt, UnknownTensorTypes) {
  const auto t = [](uint32_t type) { return Raw().header(1, 0).tensor("blk.0.ffn_up.weight", {32}, type, 0).pad().zeros(256).b; };
  EXPECT_GGUF_ERROR(t(4), "tensor 'blk.0.ffn_up.weight'", "unknown or unsupported tensor type id 4");
  EXPECT_GGUF_ERROR(t(31), "tensor 'blk.0.ffn_up.weight'", "type id 31");
  EXPECT_GGUF_ERROR(t(0xffffffff), "type id 4294967295");
}

TEST(GgufCorrupt, DuplicateTensorNames) {
  const auto b = Raw().header(2, 0).tensor("w", {8}, 0, 0).tensor("w", {8}, 0, 32).pad().zeros(64).b;
  EXPECT_GGUF_ERROR(b, "duplicate tensor name 'w'");
}

TEST(GgufCorrupt, OverlappingTensorData) {
  const auto b = Raw().header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad().zeros(128).b;
  EXPECT_GGUF_ERROR(b, "tensor 'b'", "overlaps tensor 'a'");
  // Out of order but disjoint is fine, and empty tensors may sit anywhere.
  const auto ok = Raw().header(3, 0).tensor("a", {8}, 0, 32).tensor("b", {8}, 0, 0).tensor("e", {0}, 0, 32).pad().zeros(64).b;
  EXPECT_EQ(parse_error(ok), "");
}

TEST(GgufCorrupt, NullAndEmptyBuffers) {
  EXPECT_THROW(GgufFile::from_memory(nullptr, 0), GgufError);
  EXPECT_THROW(GgufFile::from_memory(nullptr, 100), GgufError);
  EXPECT_GGUF_ERROR(std::vector<uint8_t>{}, "only 0 bytes");
}

TEST(GgufCorrupt, ForeignTensorInfoIsRejectedByTensorData) {
  const auto b = Raw().header(1, 0).tensor("w", {8}, 0, 0).pad().zeros(32).b;
  const auto f = GgufFile::from_memory(b.data(), b.size());
  GgufTensorInfo fake = f.tensors()[0];
  fake.offset = 1 << 20;
  EXPECT_THROW(f.tensor_data(fake), GgufError);
}
