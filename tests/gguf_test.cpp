// GGUF reader/writer: value round trips, tensor layout, accessors, the fixture files, and open() behaviour.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "gtest/gtest.h"

namespace fs = std::filesystem;
using namespace g3n;

namespace {

const std::string kFixtures = G3N_FIXTURES_DIR;

// A per-test scratch directory under the build tree (not /tmp: the model rewrites are tens of MB).
fs::path scratch_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path d = fs::path(G3N_BINARY_DIR) / "gguf_test_tmp" / (std::string(info->test_suite_name()) + "." + info->name());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

GgufValue scalar(GgufValueType t) {
  GgufValue v;
  v.type = t;
  return v;
}
GgufValue U(GgufValueType t, uint64_t u) {
  auto v = scalar(t);
  v.u = u;
  return v;
}
GgufValue I(GgufValueType t, int64_t i) {
  auto v = scalar(t);
  v.i = i;
  return v;
}
GgufValue F(GgufValueType t, double f) {
  auto v = scalar(t);
  v.f = f;
  return v;
}
GgufValue S(std::string s) {
  auto v = scalar(GgufValueType::STRING);
  v.s = std::move(s);
  return v;
}
GgufValue A(GgufValueType et, std::vector<GgufValue> elems) {
  auto v = scalar(GgufValueType::ARRAY);
  v.array = GgufArray(et, elems);
  return v;
}

void expect_same_value(const GgufValue& a, const GgufValue& b, const std::string& where) {
  ASSERT_EQ(a.type, b.type) << where;
  switch (a.type) {
    case GgufValueType::UINT8: case GgufValueType::UINT16: case GgufValueType::UINT32:
    case GgufValueType::UINT64: case GgufValueType::BOOL:
      EXPECT_EQ(a.u, b.u) << where;
      break;
    case GgufValueType::INT8: case GgufValueType::INT16: case GgufValueType::INT32: case GgufValueType::INT64:
      EXPECT_EQ(a.i, b.i) << where;
      break;
    case GgufValueType::FLOAT32:
      EXPECT_EQ(static_cast<float>(a.f), static_cast<float>(b.f)) << where;
      break;
    case GgufValueType::FLOAT64:
      EXPECT_EQ(a.f, b.f) << where;
      break;
    case GgufValueType::STRING:
      EXPECT_EQ(a.s, b.s) << where;
      break;
    case GgufValueType::ARRAY:
      ASSERT_EQ(a.elem_type(), b.elem_type()) << where;
      ASSERT_EQ(a.array.size(), b.array.size()) << where;
      for (size_t k = 0; k < a.array.size(); ++k) expect_same_value(a.array[k], b.array[k], where + "[" + std::to_string(k) + "]");
      break;
  }
}

// Every value type, edge values, empty and nested arrays.
std::vector<GgufKV> all_value_kvs() {
  using T = GgufValueType;
  std::vector<GgufKV> kvs = {
      {"t.u8", U(T::UINT8, 255)},
      {"t.i8", I(T::INT8, -128)},
      {"t.u16", U(T::UINT16, 65535)},
      {"t.i16", I(T::INT16, -32768)},
      {"t.u32", U(T::UINT32, 0xffffffffu)},
      {"t.i32", I(T::INT32, std::numeric_limits<int32_t>::min())},
      {"t.f32", F(T::FLOAT32, -1.5e-3)},
      {"t.bool.true", U(T::BOOL, 1)},
      {"t.bool.false", U(T::BOOL, 0)},
      {"t.str", S("h\xc3\xa9llo \xe2\x96\x81world")},
      {"t.str.empty", S("")},
      {"t.str.nul", S(std::string("a\0b", 3))},
      {"t.u64", U(T::UINT64, std::numeric_limits<uint64_t>::max())},
      {"t.i64", I(T::INT64, std::numeric_limits<int64_t>::min())},
      {"t.f64", F(T::FLOAT64, 3.141592653589793)},
      {"t.f64.inf", F(T::FLOAT64, -std::numeric_limits<double>::infinity())},
      {"a.u8", A(T::UINT8, {U(T::UINT8, 0), U(T::UINT8, 7), U(T::UINT8, 255)})},
      {"a.i8", A(T::INT8, {I(T::INT8, -1), I(T::INT8, 127)})},
      {"a.u16", A(T::UINT16, {U(T::UINT16, 1234)})},
      {"a.i16", A(T::INT16, {I(T::INT16, -1234), I(T::INT16, 32767)})},
      {"a.u32", A(T::UINT32, {U(T::UINT32, 1), U(T::UINT32, 4000000000u)})},
      {"a.i32", A(T::INT32, {I(T::INT32, -5), I(T::INT32, 6)})},
      {"a.f32", A(T::FLOAT32, {F(T::FLOAT32, 0.25), F(T::FLOAT32, -1000.5)})},
      {"a.bool", A(T::BOOL, {U(T::BOOL, 1), U(T::BOOL, 0), U(T::BOOL, 1)})},
      {"a.str", A(T::STRING, {S("<pad>"), S(""), S("\xe2\x96\x81the")})},
      {"a.u64", A(T::UINT64, {U(T::UINT64, uint64_t{1} << 63)})},
      {"a.i64", A(T::INT64, {I(T::INT64, -(int64_t{1} << 40))})},
      {"a.f64", A(T::FLOAT64, {F(T::FLOAT64, 1e300), F(T::FLOAT64, -0.0)})},
      {"a.empty.i32", A(T::INT32, {})},
      {"a.empty.str", A(T::STRING, {})},
      {"a.empty.arr", A(T::ARRAY, {})},
      {"a.nested", A(T::ARRAY, {A(T::INT32, {I(T::INT32, 1), I(T::INT32, 2)}), A(T::INT32, {}),
                                 A(T::INT32, {I(T::INT32, 3)})})},
      {"a.nested.str", A(T::ARRAY, {A(T::STRING, {S("x"), S("yz")}), A(T::STRING, {})})},
      {"a.nested3", A(T::ARRAY, {A(T::ARRAY, {A(T::FLOAT64, {F(T::FLOAT64, 2.5)}), A(T::BOOL, {})})})},
  };
  return kvs;
}

std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<uint8_t>(x);
  }
  return v;
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (auto& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

// The GgufError fn throws, or "(no error)".
template <class Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const GgufError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(GgufValue, TypeNames) {
  EXPECT_EQ(gguf_value_type_name(GgufValueType::UINT8), "u8");
  EXPECT_EQ(gguf_value_type_name(GgufValueType::INT32), "i32");
  EXPECT_EQ(gguf_value_type_name(GgufValueType::FLOAT32), "f32");
  EXPECT_EQ(gguf_value_type_name(GgufValueType::BOOL), "bool");
  EXPECT_EQ(gguf_value_type_name(GgufValueType::STRING), "str");
  EXPECT_EQ(gguf_value_type_name(GgufValueType::ARRAY), "arr");
  EXPECT_EQ(gguf_value_type_name(GgufValueType::FLOAT64), "f64");
  EXPECT_EQ(gguf_value_type_name(static_cast<GgufValueType>(99)), "unknown");
}

TEST(GgufValue, Conversions) {
  using T = GgufValueType;
  EXPECT_EQ(U(T::UINT64, 5).as_int(), 5);
  EXPECT_EQ(U(T::UINT64, std::numeric_limits<uint64_t>::max()).as_int(), std::nullopt);
  EXPECT_EQ(I(T::INT8, -3).as_int(), -3);
  EXPECT_EQ(U(T::BOOL, 1).as_int(), 1);
  EXPECT_EQ(F(T::FLOAT32, 4.0).as_int(), 4);
  EXPECT_EQ(F(T::FLOAT32, 4.5).as_int(), std::nullopt);
  EXPECT_EQ(F(T::FLOAT64, 1e30).as_int(), std::nullopt);
  EXPECT_EQ(F(T::FLOAT64, NAN).as_int(), std::nullopt);
  EXPECT_EQ(S("7").as_int(), std::nullopt);
  EXPECT_EQ(I(T::INT32, -2).as_double(), -2.0);
  EXPECT_EQ(U(T::UINT32, 7).as_double(), 7.0);
  EXPECT_EQ(F(T::FLOAT64, 0.5).as_double(), 0.5);
  EXPECT_EQ(A(T::INT32, {}).as_double(), std::nullopt);
  EXPECT_TRUE(U(T::BOOL, 0).is_integer());
  EXPECT_FALSE(F(T::FLOAT32, 0).is_integer());
  EXPECT_TRUE(F(T::FLOAT64, 0).is_float());
  EXPECT_FALSE(S("").is_float());
}

TEST(GgufArrayTest, KeepsEveryTypeExactly) {
  using T = GgufValueType;
  const std::vector<GgufValue> cases[] = {
      {U(T::UINT8, 0), U(T::UINT8, 255)},
      {I(T::INT8, -128), I(T::INT8, 127)},
      {U(T::UINT16, 65535)},
      {I(T::INT16, -32768), I(T::INT16, 32767)},
      {U(T::UINT32, 0xffffffffu)},
      {I(T::INT32, std::numeric_limits<int32_t>::min()), I(T::INT32, -1)},
      {U(T::UINT64, std::numeric_limits<uint64_t>::max())},
      {I(T::INT64, std::numeric_limits<int64_t>::min()), I(T::INT64, 42)},
      {F(T::FLOAT32, -0.0), F(T::FLOAT32, 3.4028234663852886e38), F(T::FLOAT32, 1e-45)},
      {F(T::FLOAT64, 0.1), F(T::FLOAT64, -1e308)},
      {U(T::BOOL, 0), U(T::BOOL, 1)},
      {S(""), S("\xe2\x96\x81hello"), S(std::string("a\0b", 3))},
      {A(T::INT8, {I(T::INT8, -1)}), A(T::INT8, {})},
  };
  for (const auto& elems : cases) {
    const GgufArray a(elems.front().type, elems);
    const std::string what(gguf_value_type_name(a.elem_type()));
    ASSERT_EQ(a.size(), elems.size()) << what;
    size_t k = 0;
    for (const GgufValue& e : a) {  // iteration and operator[] decode the same element
      expect_same_value(e, elems[k], what + "[" + std::to_string(k) + "]");
      expect_same_value(a[k], elems[k], what + "[" + std::to_string(k) + "]");
      if (a.elem_type() == T::STRING) {
        EXPECT_EQ(a.string_at(k), elems[k].s);
      }
      if (a.elem_type() == T::ARRAY) expect_same_value(a.array_at(k), elems[k], what);
      ++k;
    }
    EXPECT_EQ(k, elems.size());
  }
  const GgufArray f(T::FLOAT32, {F(T::FLOAT32, 0.1)});
  EXPECT_EQ(f[0].f, static_cast<double>(0.1f));  // a FLOAT32 holds the float the file would
}

TEST(GgufArrayTest, RefusesWhatItCannotHold) {
  using T = GgufValueType;
  GgufArray a(T::UINT8);
  EXPECT_NE(error_of([&] { a.push_back(U(T::UINT8, 256)); }).find("u8 value 256 out of range"), std::string::npos);
  EXPECT_NE(error_of([&] { a.push_back(I(T::INT8, 1)); }).find("element 0 has type i8, array is of u8"),
            std::string::npos);
  EXPECT_NE(error_of([&] { a.push_string("x"); }).find("array of u8"), std::string::npos);
  a.push_back(U(T::UINT8, 7));
  EXPECT_EQ(a.size(), 1u);  // refused elements were not added
  EXPECT_NE(error_of([&] { (void)a.string_at(0); }).find("no string element 0"), std::string::npos);
  EXPECT_NE(error_of([&] { (void)a.array_at(0); }).find("no array element 0"), std::string::npos);
  EXPECT_NE(error_of([&] { (void)a[1]; }).find("no element 1"), std::string::npos);
  GgufArray s(T::STRING);
  s.push_string("ab");
  EXPECT_NE(error_of([&] { (void)s.string_at(1); }).find("no string element 1"), std::string::npos);
  EXPECT_NE(error_of([&] { GgufArray(T::INT16, {I(T::INT16, 1), I(T::INT16, -40000)}); }).find("element 1: i16 value -40000"),
            std::string::npos);
}

TEST(GgufRoundTrip, EveryValueType) {
  GgufWriter w;
  const auto kvs = all_value_kvs();
  for (const auto& kv : kvs) w.set(kv.key, kv.value);
  const auto bytes = w.to_bytes();
  const auto f = GgufFile::from_memory(bytes.data(), bytes.size());
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_TRUE(f.path().empty());
  EXPECT_EQ(f.file_size(), bytes.size());
  EXPECT_EQ(bytes.size() % 32, 0u);  // padded after the (empty) tensor infos, as ggml does
  ASSERT_EQ(f.metadata().size(), kvs.size());
  for (size_t k = 0; k < kvs.size(); ++k) {
    EXPECT_EQ(f.metadata()[k].key, kvs[k].key);  // insertion order kept
    expect_same_value(f.metadata()[k].value, kvs[k].value, kvs[k].key);
    ASSERT_NE(f.find(kvs[k].key), nullptr);
  }
  EXPECT_EQ(f.find("missing"), nullptr);
  EXPECT_TRUE(f.tensors().empty());
}

TEST(GgufRoundTrip, ConvenienceSettersAndReplace) {
  GgufWriter w;
  w.set_u32("u", 7);
  w.set_i32("i", -7);
  w.set_f32("f", 0.5f);
  w.set_bool("b", true);
  w.set_string("s", "text");
  w.set_array_i32("ai", {1, -2, 3});
  w.set_array_u32("au", {4000000000u});
  w.set_array_f32("af", {0.25f, -8.f});
  w.set_array_bool("ab", {true, false});
  w.set_array_string("as", {"a", "", "bc"});
  w.set_u32("u", 9);  // replaces in place
  const auto bytes = w.to_bytes();
  const auto f = GgufFile::from_memory(bytes.data(), bytes.size());
  ASSERT_EQ(f.metadata().size(), 10u);
  EXPECT_EQ(f.metadata()[0].key, "u");
  EXPECT_EQ(f.get_int("u"), 9);
  EXPECT_EQ(f.get_int("i"), -7);
  EXPECT_EQ(f.get_float("f"), 0.5);
  EXPECT_EQ(f.get_bool("b"), true);
  EXPECT_EQ(f.get_string("s"), "text");
  const auto* ai = f.find("ai");
  ASSERT_NE(ai, nullptr);
  EXPECT_EQ(ai->elem_type(), GgufValueType::INT32);
  ASSERT_EQ(ai->array.size(), 3u);
  EXPECT_EQ(ai->array[1].i, -2);
  EXPECT_EQ(f.find("au")->array[0].u, 4000000000u);
  EXPECT_EQ(f.find("af")->array[1].f, -8.0);
  EXPECT_EQ(f.find("ab")->array[0].u, 1u);
  EXPECT_EQ(f.find("ab")->array[1].u, 0u);
  EXPECT_EQ(f.find("as")->array[2].s, "bc");
}

TEST(GgufAccessors, TypedLookups) {
  GgufWriter w;
  using T = GgufValueType;
  w.set("u8", U(T::UINT8, 200));
  w.set("i16", I(T::INT16, -300));
  w.set("u64big", U(T::UINT64, std::numeric_limits<uint64_t>::max()));
  w.set("i64", I(T::INT64, -(int64_t{1} << 50)));
  w.set("f32", F(T::FLOAT32, 2.5));
  w.set("f64", F(T::FLOAT64, 1e-9));
  w.set_bool("flag", false);
  w.set_string("name", "gemma3n");
  w.set_array_i32("arr", {1, 2});
  const auto bytes = w.to_bytes();
  const auto f = GgufFile::from_memory(bytes.data(), bytes.size());

  EXPECT_EQ(f.get_int("u8"), 200);
  EXPECT_EQ(f.get_int("i16"), -300);
  EXPECT_EQ(f.get_int("i64"), -(int64_t{1} << 50));
  EXPECT_EQ(f.get_int("flag"), 0);
  EXPECT_EQ(f.get_int("absent"), std::nullopt);
  EXPECT_EQ(f.get_float("u8"), 200.0);  // integers are numbers too
  EXPECT_EQ(f.get_float("i16"), -300.0);
  EXPECT_EQ(f.get_float("f32"), 2.5);
  EXPECT_EQ(f.get_float("f64"), 1e-9);
  EXPECT_EQ(f.get_float("absent"), std::nullopt);
  EXPECT_EQ(f.get_bool("flag"), false);
  EXPECT_EQ(f.get_bool("absent"), std::nullopt);
  EXPECT_EQ(f.get_string("name"), "gemma3n");
  EXPECT_EQ(f.get_string("absent"), std::nullopt);

  const auto error_of = [](auto fn) -> std::string {
    try {
      fn();
    } catch (const GgufError& e) {
      return e.what();
    }
    return "(no error)";
  };
  std::string m = error_of([&] { f.get_int("f32"); });
  EXPECT_NE(m.find("'f32'"), std::string::npos) << m;
  EXPECT_NE(m.find("type f32"), std::string::npos) << m;
  m = error_of([&] { f.get_int("u64big"); });
  EXPECT_NE(m.find("'u64big'"), std::string::npos) << m;
  EXPECT_NE(m.find("int64"), std::string::npos) << m;
  m = error_of([&] { f.get_int("arr"); });
  EXPECT_NE(m.find("arr[i32]"), std::string::npos) << m;
  m = error_of([&] { f.get_float("name"); });
  EXPECT_NE(m.find("'name'"), std::string::npos) << m;
  EXPECT_NE(m.find("type str"), std::string::npos) << m;
  m = error_of([&] { f.get_bool("u8"); });
  EXPECT_NE(m.find("'u8'"), std::string::npos) << m;
  EXPECT_NE(m.find("type u8"), std::string::npos) << m;
  m = error_of([&] { f.get_string("flag"); });
  EXPECT_NE(m.find("'flag'"), std::string::npos) << m;
  EXPECT_NE(m.find("type bool"), std::string::npos) << m;
}

TEST(GgufRoundTrip, TensorsLayoutAndData) {
  for (uint64_t alignment : {32u, 64u, 256u, 1u}) {
    SCOPED_TRACE("alignment " + std::to_string(alignment));
    GgufWriter w(alignment);
    w.set_string("general.architecture", "test");
    const auto a = pattern(4 * 3 * 5, 1);       // F32 [3, 5]
    const auto b = pattern(2 * 7, 2);           // F16 [7]
    const auto c = pattern(34 * 2 * 3 * 2, 3);  // Q8_0 [64, 3, 2]
    const auto d = pattern(144 * 2, 4);         // Q4_K [256, 1, 1, 2]
    w.add_tensor("a", GgmlType::F32, {3, 5}, a);
    w.add_tensor("b.weight", GgmlType::F16, {7}, b);
    w.add_tensor("blk.0.c", GgmlType::Q8_0, {64, 3, 2}, c);
    w.add_tensor("d", GgmlType::Q4_K, {256, 1, 1, 2}, d);
    w.add_tensor("empty", GgmlType::F32, {0, 4}, {});
    const auto bytes = w.to_bytes();
    const auto f = GgufFile::from_memory(bytes.data(), bytes.size());
    EXPECT_EQ(f.alignment(), alignment);
    EXPECT_EQ(f.get_int("general.alignment"), alignment == 32 ? std::nullopt : std::optional<int64_t>(alignment));
    EXPECT_EQ(f.data_offset() % alignment, 0u);
    EXPECT_EQ(bytes.size() % alignment, 0u);
    ASSERT_EQ(f.tensors().size(), 5u);
    const std::vector<std::pair<std::string, const std::vector<uint8_t>*>> want = {
        {"a", &a}, {"b.weight", &b}, {"blk.0.c", &c}, {"d", &d}};
    uint64_t expect_offset = 0;
    for (size_t k = 0; k < want.size(); ++k) {
      const auto& t = f.tensors()[k];
      EXPECT_EQ(t.name, want[k].first);
      EXPECT_EQ(t.offset, expect_offset);  // packed in order, each padded: what llama.cpp requires
      EXPECT_EQ(t.offset % alignment, 0u);
      ASSERT_EQ(t.nbytes, want[k].second->size());
      EXPECT_EQ(std::memcmp(f.tensor_data(t), want[k].second->data(), t.nbytes), 0);
      expect_offset += (t.nbytes + alignment - 1) / alignment * alignment;
    }
    const auto* c_info = f.find_tensor("blk.0.c");
    ASSERT_NE(c_info, nullptr);
    EXPECT_EQ(c_info->type, GgmlType::Q8_0);
    EXPECT_EQ(c_info->ne, (std::vector<int64_t>{64, 3, 2}));
    EXPECT_EQ(c_info->n_elements(), 384);
    EXPECT_EQ(c_info->rows(), 6);
    const auto* e = f.find_tensor("empty");
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->nbytes, 0u);
    EXPECT_EQ(e->n_elements(), 0);
    EXPECT_EQ(f.find_tensor("nope"), nullptr);
  }
}

TEST(GgufRoundTrip, LazyTensorEqualsEager) {
  const auto data = pattern(210 * 6, 9);  // Q6_K [256, 2, 3]
  GgufWriter eager, lazy;
  eager.add_tensor("t", GgmlType::Q6_K, {256, 2, 3}, data);
  std::vector<std::pair<int64_t, int64_t>> calls;
  lazy.add_tensor_lazy("t", GgmlType::Q6_K, {256, 2, 3}, [&](int64_t first, int64_t n, uint8_t* dst) {
    calls.emplace_back(first, n);
    std::memcpy(dst, data.data() + first * 210, static_cast<size_t>(n) * 210);
  });
  EXPECT_EQ(eager.to_bytes(), lazy.to_bytes());
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0], std::make_pair(int64_t{0}, int64_t{6}));
}

TEST(GgufRoundTrip, LazyTensorIsFilledInBoundedChunks) {
  const fs::path dir = scratch_dir();
  const int64_t row = int64_t{1} << 20;  // 4 MiB F32 rows, 20 of them: 80 MiB
  const int64_t rows = 20;
  int64_t max_rows = 0, next = 0;
  GgufWriter w;
  w.add_tensor_lazy("big", GgmlType::F32, {row, rows}, [&](int64_t first, int64_t n, uint8_t* dst) {
    EXPECT_EQ(first, next);  // rows arrive in order, each exactly once
    next = first + n;
    max_rows = std::max(max_rows, n);
    for (int64_t r = 0; r < n; ++r) {
      const float v = static_cast<float>(first + r);
      for (int64_t k = 0; k < row; k += 4096) std::memcpy(dst + (r * row + k) * 4, &v, 4);
    }
  });
  const std::string path = (dir / "big.gguf").string();
  w.write(path);
  EXPECT_EQ(next, rows);
  EXPECT_LE(max_rows * row * 4, int64_t{64} << 20);
  const auto f = GgufFile::open(path);
  EXPECT_EQ(f.path(), path);
  const auto* t = f.find_tensor("big");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->nbytes, static_cast<uint64_t>(row * rows * 4));
  const float* p = reinterpret_cast<const float*>(f.tensor_data(*t));
  for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(p[r * row + 4096], static_cast<float>(r));
  EXPECT_EQ(p[1], 0.0f);  // bytes the filler left alone are zero
  fs::remove_all(dir);
}

TEST(GgufWriterTest, WriteIsAtomicAndFailureLeavesTargetIntact) {
  const fs::path dir = scratch_dir();
  const std::string path = (dir / "out.gguf").string();
  GgufWriter ok;
  ok.set_string("k", "first");
  ok.write(path);
  const auto first = read_file(path);
  EXPECT_EQ(first, ok.to_bytes());

  GgufWriter bad;
  bad.set_string("k", "second");
  bad.add_tensor_lazy("t", GgmlType::F32, {4, 4}, [](int64_t, int64_t, uint8_t*) {
    throw std::runtime_error("filler failed");
  });
  EXPECT_THROW(bad.write(path), std::runtime_error);
  EXPECT_EQ(read_file(path), first);  // old file untouched
  size_t n_files = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    (void)e;
    ++n_files;
  }
  EXPECT_EQ(n_files, 1u);  // no temp file left behind

  EXPECT_THROW(ok.write((dir / "no/such/dir/x.gguf").string()), GgufError);
  fs::remove_all(dir);
}

TEST(GgufWriterTest, RejectsInvalidInput) {
  using T = GgufValueType;
  EXPECT_NE(error_of([] { GgufWriter w(48); }).find("power of two"), std::string::npos);
  EXPECT_NE(error_of([] { GgufWriter w(0); }).find("power of two"), std::string::npos);
  GgufWriter w;
  EXPECT_NE(error_of([&] { w.add_tensor("t", GgmlType::F32, {4}, std::vector<uint8_t>(15)); }).find("needs 16"),
            std::string::npos);
  w.add_tensor("t", GgmlType::F32, {4}, std::vector<uint8_t>(16));
  EXPECT_NE(error_of([&] { w.add_tensor("t", GgmlType::F32, {4}, std::vector<uint8_t>(16)); }).find("duplicate"),
            std::string::npos);
  EXPECT_NE(error_of([&] { w.add_tensor(std::string(64, 'x'), GgmlType::F32, {1}, std::vector<uint8_t>(4)); })
                .find("1..63"),
            std::string::npos);
  EXPECT_NE(error_of([&] { w.add_tensor("q", GgmlType::Q4_K, {100}, {}); }).find("block size 256"),
            std::string::npos);
  EXPECT_NE(error_of([&] { w.add_tensor("z", GgmlType::F32, {}, {}); }).find("dimensions"), std::string::npos);
  EXPECT_NE(error_of([&] { w.add_tensor("z", GgmlType::F32, {1, 1, 1, 1, 1}, {}); }).find("dimensions"),
            std::string::npos);
  EXPECT_NE(error_of([&] { w.add_tensor("z", GgmlType::F32, {-1}, {}); }).find("negative"), std::string::npos);
  EXPECT_NE(error_of([&] { w.add_tensor("z", static_cast<GgmlType>(4), {32}, {}); }).find("unknown type id 4"),
            std::string::npos);
  EXPECT_NE(error_of([&] { w.set("k", U(T::UINT8, 256)); }).find("out of range"), std::string::npos);
  EXPECT_NE(error_of([&] { w.set("k", I(T::INT16, 40000)); }).find("out of range"), std::string::npos);
  EXPECT_NE(error_of([&] { w.set("k", U(T::BOOL, 2)); }).find("out of range"), std::string::npos);
  EXPECT_NE(error_of([&] { w.set("k", A(T::INT32, {I(T::INT32, 1), U(T::UINT32, 2)})); }).find("element 1"),
            std::string::npos);
  EXPECT_NE(error_of([&] { w.set("general.alignment", U(T::UINT64, 64)); }).find("u32"), std::string::npos);
  EXPECT_NE(error_of([&] { w.set("general.alignment", U(T::UINT32, 48)); }).find("power of two"), std::string::npos);
  GgufValue deep = A(T::INT32, {});
  for (int k = 0; k < 16; ++k) deep = A(T::ARRAY, {deep});
  EXPECT_NE(error_of([&] { w.set("deep", deep); }).find("nested deeper"), std::string::npos);
}

TEST(GgufWriterTest, AlignmentKeySetsLayout) {
  GgufWriter w;
  w.set_u32("general.alignment", 128);
  w.add_tensor("a", GgmlType::F32, {3}, pattern(12, 1));
  w.add_tensor("b", GgmlType::F32, {3}, pattern(12, 2));
  const auto bytes = w.to_bytes();
  const auto f = GgufFile::from_memory(bytes.data(), bytes.size());
  EXPECT_EQ(f.alignment(), 128u);
  EXPECT_EQ(f.metadata().size(), 1u);  // not written twice
  EXPECT_EQ(f.tensors()[1].offset, 128u);
  EXPECT_EQ(f.data_offset() % 128, 0u);
}

// Rebuilding a fixture (written by llama.cpp's gguf-py / ollama) with GgufWriter gives the identical bytes:
// the writer's layout is the standard one llama.cpp loads.
TEST(GgufFixtures, VocabRewriteIsByteIdentical) {
  for (const char* name : {"vocab.gguf", "vocab-ollama.gguf"}) {
    const std::string path = kFixtures + "/gemma3-vocab/" + name;
    const auto f = GgufFile::open(path);
    GgufWriter w(f.alignment());
    for (const auto& kv : f.metadata()) w.set(kv.key, kv.value);
    EXPECT_TRUE(w.to_bytes() == read_file(path)) << name;
  }
}

TEST(GgufFixtures, ModelRewriteIsByteIdentical) {
  const fs::path dir = scratch_dir();
  for (const char* name : {"gemma3n-tiny-f16", "gemma3n-tiny-q4_k_m", "gemma3n-tiny-ollama"}) {
    const std::string path = kFixtures + "/gemma3n-tiny/models/" + name + ".gguf";
    const auto f = GgufFile::open(path);
    GgufWriter w(f.alignment());
    for (const auto& kv : f.metadata()) w.set(kv.key, kv.value);
    for (const auto& t : f.tensors()) {
      const uint8_t* src = f.tensor_data(t);
      const uint64_t row_bytes = t.rows() ? t.nbytes / static_cast<uint64_t>(t.rows()) : 0;
      w.add_tensor_lazy(t.name, t.type, t.ne, [src, row_bytes](int64_t first, int64_t n, uint8_t* dst) {
        std::memcpy(dst, src + first * row_bytes, static_cast<size_t>(n) * row_bytes);
      });
    }
    const std::string out = (dir / (std::string(name) + ".gguf")).string();
    w.write(out);
    EXPECT_TRUE(read_file(out) == read_file(path)) << name;
    fs::remove(out);
  }
  fs::remove_all(dir);
}

TEST(GgufFixtures, ModelsMatchTensorsJson) {
  for (const char* name : {"gemma3n-tiny-f16", "gemma3n-tiny-q8_0", "gemma3n-tiny-q4_k_m", "gemma3n-tiny-ollama"}) {
    SCOPED_TRACE(name);
    const std::string base = kFixtures + "/gemma3n-tiny/models/" + name;
    const auto f = GgufFile::open(base + ".gguf");
    std::ifstream in(base + ".tensors.json");
    const auto j = nlohmann::json::parse(in);
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.file_size(), fs::file_size(base + ".gguf"));

    ASSERT_EQ(f.metadata().size(), j["n_kv"].get<size_t>());
    ASSERT_EQ(f.metadata().size(), j["kv"].size());
    for (size_t k = 0; k < j["kv"].size(); ++k) {
      const auto& jk = j["kv"][k];
      const auto& kv = f.metadata()[k];
      EXPECT_EQ(kv.key, jk["key"].get<std::string>());
      EXPECT_EQ(gguf_value_type_name(kv.value.type), jk["type"].get<std::string>()) << kv.key;
      if (jk.contains("arr_type")) {
        EXPECT_EQ(gguf_value_type_name(kv.value.elem_type()), jk["arr_type"].get<std::string>()) << kv.key;
        EXPECT_EQ(kv.value.array.size(), jk["arr_n"].get<size_t>()) << kv.key;
      }
    }

    ASSERT_EQ(f.tensors().size(), j["tensors"].size());
    std::map<std::string, uint64_t> bytes_by_type;
    for (size_t k = 0; k < j["tensors"].size(); ++k) {
      const auto& jt = j["tensors"][k];
      const auto& t = f.tensors()[k];
      EXPECT_EQ(t.name, jt["name"].get<std::string>());
      EXPECT_EQ(lower(ggml_type_traits(t.type).name), lower(jt["type"].get<std::string>())) << t.name;
      EXPECT_EQ(t.ne, jt["ne"].get<std::vector<int64_t>>()) << t.name;
      EXPECT_EQ(t.offset, jt["offset"].get<uint64_t>()) << t.name;
      EXPECT_EQ(f.find_tensor(t.name), &t);
      EXPECT_LE(f.data_offset() + t.offset + t.nbytes, f.file_size());
      bytes_by_type[lower(ggml_type_traits(t.type).name)] += t.nbytes;
    }
    for (const auto& [type, n] : j["bytes_by_type"].items()) EXPECT_EQ(bytes_by_type[lower(type)], n.get<uint64_t>()) << type;

    EXPECT_EQ(f.get_string("general.architecture"), "gemma3n");
    EXPECT_EQ(f.get_int("gemma3n.block_count"), 25);
    EXPECT_TRUE(f.get_float("gemma3n.attention.layer_norm_rms_epsilon").has_value());
  }
}

TEST(GgufFixtures, FeedForwardLengthDiffersByStyle) {
  const auto llama = GgufFile::open(kFixtures + "/gemma3n-tiny/models/gemma3n-tiny-f16.gguf");
  const auto ollama = GgufFile::open(kFixtures + "/gemma3n-tiny/models/gemma3n-tiny-ollama.gguf");
  const auto* ff = llama.find("gemma3n.feed_forward_length");
  ASSERT_NE(ff, nullptr);
  EXPECT_EQ(ff->type, GgufValueType::ARRAY);
  EXPECT_EQ(ff->elem_type(), GgufValueType::INT32);
  EXPECT_EQ(ff->array.size(), 25u);
  EXPECT_THROW(llama.get_int("gemma3n.feed_forward_length"), GgufError);
  EXPECT_TRUE(ollama.get_int("gemma3n.feed_forward_length").has_value());
  EXPECT_EQ(ollama.find("tokenizer.ggml.tokens")->array.size(), 512u);
  EXPECT_EQ(ollama.find_tensor("token_embd.weight")->ne[1], 512);
}

TEST(GgufFixtures, VocabFiles) {
  const auto f = GgufFile::open(kFixtures + "/gemma3-vocab/vocab.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.metadata().size(), 15u);
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_EQ(f.get_string("general.architecture"), "gemma3n");
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(f.get_int("tokenizer.ggml.bos_token_id"), 2);
  EXPECT_EQ(f.get_int("tokenizer.ggml.eos_token_id"), 1);
  EXPECT_EQ(f.get_bool("tokenizer.ggml.add_bos_token"), true);
  EXPECT_EQ(f.get_bool("tokenizer.ggml.add_space_prefix"), false);
  const auto* tokens = f.find("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->elem_type(), GgufValueType::STRING);
  ASSERT_EQ(tokens->array.size(), 262144u);
  EXPECT_EQ(tokens->array[2].s, "<bos>");
  EXPECT_EQ(f.find("tokenizer.ggml.scores")->elem_type(), GgufValueType::FLOAT32);
  EXPECT_EQ(f.find("tokenizer.ggml.scores")->array.size(), 262144u);
  EXPECT_EQ(f.find("tokenizer.ggml.token_type")->elem_type(), GgufValueType::INT32);

  const auto o = GgufFile::open(kFixtures + "/gemma3-vocab/vocab-ollama.gguf");
  EXPECT_EQ(o.metadata().size(), 15u);
  EXPECT_TRUE(o.tensors().empty());
  for (size_t k = 1; k < o.metadata().size(); ++k) EXPECT_LT(o.metadata()[k - 1].key, o.metadata()[k].key);
  ASSERT_NE(o.find("tokenizer.ggml.tokens"), nullptr);
  EXPECT_EQ(o.find("tokenizer.ggml.tokens")->array[2].s, "<bos>");
}

TEST(GgufOpen, ErrorsNameThePath) {
  const fs::path dir = scratch_dir();
  const auto error_of = [](const std::string& p) -> std::string {
    try {
      GgufFile::open(p);
    } catch (const GgufError& e) {
      return e.what();
    }
    return "(no error)";
  };
  const std::string missing = (dir / "missing.gguf").string();
  std::string m = error_of(missing);
  EXPECT_NE(m.find(missing), std::string::npos) << m;
  EXPECT_NE(m.find("No such file"), std::string::npos) << m;

  m = error_of(dir.string());
  EXPECT_NE(m.find(dir.string()), std::string::npos) << m;
  EXPECT_NE(m.find("not a regular file"), std::string::npos) << m;

  const std::string empty = (dir / "empty.gguf").string();
  std::ofstream(empty).close();
  m = error_of(empty);
  EXPECT_NE(m.find(empty), std::string::npos) << m;
  EXPECT_NE(m.find("not a GGUF file"), std::string::npos) << m;

  const std::string json = kFixtures + "/gemma3n-tiny/config.json";
  m = error_of(json);
  EXPECT_NE(m.find(json), std::string::npos) << m;
  EXPECT_NE(m.find("bad magic"), std::string::npos) << m;

  // A parse error inside the file also names the path.
  const std::string trunc = (dir / "trunc.gguf").string();
  {
    const auto head = read_file(kFixtures + "/gemma3-vocab/vocab.gguf");
    std::ofstream out(trunc, std::ios::binary);
    out.write(reinterpret_cast<const char*>(head.data()), 5000);
  }
  m = error_of(trunc);
  EXPECT_NE(m.find(trunc), std::string::npos) << m;
  EXPECT_NE(m.find("tokenizer.ggml.tokens"), std::string::npos) << m;
  fs::remove_all(dir);
}

// A file whose tensor claims 4 GiB: open() maps it but reads none of the data, so RSS stays flat.
TEST(GgufOpen, DoesNotTouchTensorData) {
  const fs::path dir = scratch_dir();
  const std::string path = (dir / "sparse.gguf").string();
  const int64_t row = int64_t{1} << 28, rows = 4;  // F32: 4 GiB
  // Serialize a 1-column stand-in, keep only its header, then patch ne[0] to the real width.
  GgufWriter header_only;
  header_only.set_string("general.architecture", "test");
  header_only.add_tensor("per_layer_token_embd.weight", GgmlType::F32, {1, rows}, std::vector<uint8_t>(16));
  auto bytes = header_only.to_bytes();
  const auto hdr = GgufFile::from_memory(bytes.data(), bytes.size());
  const uint64_t data_offset = hdr.data_offset();
  bytes.resize(data_offset);
  // ne[0] is the u64 right after the tensor name and its n_dims.
  const std::string name = "per_layer_token_embd.weight";
  const auto it = std::search(bytes.begin(), bytes.end(), name.begin(), name.end());
  ASSERT_NE(it, bytes.end());
  const size_t ne0_pos = static_cast<size_t>(it - bytes.begin()) + name.size() + 4;
  for (int k = 0; k < 8; ++k) bytes[ne0_pos + k] = static_cast<uint8_t>(static_cast<uint64_t>(row) >> (8 * k));
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  fs::resize_file(path, data_offset + static_cast<uint64_t>(row * rows * 4));  // sparse

  const long before = rss_kib();
  const auto f = GgufFile::open(path);
  const auto* t = f.find_tensor(name);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->nbytes, uint64_t{4} << 30);
  const uint8_t* p = f.tensor_data(*t);
  EXPECT_EQ(p[t->nbytes - 1], 0);  // the last byte is mapped and readable
  const long after = rss_kib();
  EXPECT_LT(after - before, 16 * 1024) << "RSS grew by " << (after - before) << " KiB";
  fs::remove_all(dir);
}

TEST(GgufOpen, MoveKeepsLookupsValid) {
  GgufWriter w;
  w.set_string("a", "x");
  w.add_tensor("t", GgmlType::F32, {2}, pattern(8, 3));
  const auto bytes = w.to_bytes();
  auto f = GgufFile::from_memory(bytes.data(), bytes.size());
  GgufFile g = std::move(f);
  EXPECT_EQ(g.get_string("a"), "x");
  ASSERT_NE(g.find_tensor("t"), nullptr);
  GgufFile h = GgufFile::from_memory(bytes.data(), bytes.size());
  h = std::move(g);
  EXPECT_EQ(h.find_tensor("t")->nbytes, 8u);
}

// read_bytes gives the mapping's bytes without mapping them: rows looked up all over an 8 MiB table leave
// the resident set flat (through the mapping, each lookup makes the pages around it resident).
TEST(GgufOpen, ReadBytesCopiesWithoutMapping) {
  const fs::path dir = scratch_dir();
  const std::string path = (dir / "table.gguf").string();
  const int64_t width = 4096, rows = 2048;  // bytes per row, rows: 8 MiB, stored as F32 [1024, 2048]
  std::vector<uint8_t> data(static_cast<size_t>(width * rows));
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  GgufWriter w;
  w.set_string("general.architecture", "test");
  w.add_tensor("table", GgmlType::F32, {width / 4, rows}, data);
  w.write(path);
  const auto f = GgufFile::open(path);
  const uint8_t* t = f.tensor_data(*f.find_tensor("table"));
  std::vector<uint8_t> row(static_cast<size_t>(width));
  const long before = rss_kib();
  for (int64_t r = 0; r < rows; r += 7) {  // every 7th row: all over the table
    f.read_bytes(t + r * width, static_cast<uint64_t>(width), row.data());
    ASSERT_EQ(std::memcmp(row.data(), data.data() + r * width, row.size()), 0) << "row " << r;
  }
  const long after = rss_kib();
  EXPECT_LT(after - before, 1024) << "RSS grew by " << (after - before) << " KiB";
  // Part of a row, and the last byte of the file.
  uint8_t b[3];
  f.read_bytes(t + 5, 3, b);
  EXPECT_EQ(std::memcmp(b, data.data() + 5, 3), 0);
  const uint8_t* end = t + data.size();
  f.read_bytes(end - 1, 1, b);
  EXPECT_EQ(b[0], data.back());
  EXPECT_THROW(f.read_bytes(end - 1, 2, b), GgufError);
  // from_memory files copy from their buffer.
  const auto bytes = read_file(path);
  const auto m = GgufFile::from_memory(bytes.data(), bytes.size());
  const uint8_t* mt = m.tensor_data(*m.find_tensor("table"));
  m.read_bytes(mt + 3 * width, static_cast<uint64_t>(width), row.data());
  EXPECT_EQ(std::memcmp(row.data(), data.data() + 3 * width, row.size()), 0);
  fs::remove_all(dir);
}
