// The safetensors reader: a file written by SafetensorsWriter reads back exactly; every kind of damage
// (truncation, bad JSON, offsets outside the data, byte counts that disagree with dtype x shape, overlap,
// unknown dtypes) is a SafetensorsError naming the file and the tensor.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tools/safetensors.h"
#include "tools/safetensors_writer.h"

namespace g3n {
namespace {

std::vector<uint8_t> raw(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> v(8);
  for (int i = 0; i < 8; ++i) v[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
  v.insert(v.end(), header.begin(), header.end());
  v.resize(v.size() + data_bytes, 0x11);
  return v;
}

std::string error_of(const std::vector<uint8_t>& bytes) {
  try {
    SafetensorsFile::from_memory(bytes.data(), bytes.size(), "x.safetensors");
  } catch (const SafetensorsError& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, WriterRoundTrip) {
  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  std::vector<uint8_t> a(2 * 3 * 2);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>(i);
  w.add_bytes("a.weight", "BF16", {2, 3}, a);
  w.add("b", "F32", {5}, [](uint64_t first, uint64_t n, uint8_t* dst) {
    for (uint64_t i = 0; i < n; ++i) {
      const float f = static_cast<float>(first + i) * 0.5f;
      std::memcpy(dst + 4 * i, &f, 4);
    }
  });
  const std::string path = std::string(G3N_BINARY_DIR) + "/roundtrip.safetensors";
  w.write(path);
  const auto f = SafetensorsFile::open(path);
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const auto* ta = f.find("a.weight");
  ASSERT_NE(ta, nullptr);
  EXPECT_EQ(ta->dtype, "BF16");
  EXPECT_EQ(ta->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(f.data(*ta), a.data(), a.size()), 0);
  const auto* tb = f.find("b");
  ASSERT_NE(tb, nullptr);
  float b4;
  std::memcpy(&b4, f.data(*tb) + 16, 4);
  EXPECT_EQ(b4, 2.0f);
  EXPECT_EQ(f.find("c"), nullptr);
  std::filesystem::remove(path);
}

// The threaded, double-buffered writer (fills run concurrently, the previous buffer is written meanwhile)
// writes the same bytes as the one-thread path, across several 4 Mi-element runs and tensor boundaries.
TEST(Safetensors, ThreadedWriterEqualsOneThread) {
  auto fill = [](uint64_t seed) {
    return [seed](uint64_t first, uint64_t n, uint8_t* dst) {
      for (uint64_t i = 0; i < n; ++i) {
        const uint16_t v = static_cast<uint16_t>(((first + i) * 2654435761u + seed) >> 7);
        std::memcpy(dst + 2 * i, &v, 2);
      }
    };
  };
  SafetensorsWriter w;
  w.add("big", "BF16", {9, 1000003}, fill(1));  // about 2.1 runs of 4 Mi elements
  w.add("small", "F16", {3, 5}, fill(2));
  w.add("mid", "BF16", {5000000}, fill(3));
  const std::string one = std::string(G3N_BINARY_DIR) + "/threads-1-" + std::to_string(::getpid()) + ".safetensors";
  const std::string many = std::string(G3N_BINARY_DIR) + "/threads-3-" + std::to_string(::getpid()) + ".safetensors";
  w.write(one, 1);
  w.write(many, 3);
  auto bytes = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::vector<char>(std::istreambuf_iterator<char>(f), {});
  };
  const auto a = bytes(one), b = bytes(many);
  EXPECT_GT(a.size(), w.data_bytes());
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(SafetensorsFile::open(many).find("mid")->shape, (std::vector<int64_t>{5000000}));
  EXPECT_TRUE(a == b);
  std::filesystem::remove(one);
  std::filesystem::remove(many);
}

TEST(Safetensors, AcceptsEmptyAndScalar) {
  EXPECT_EQ(error_of(raw("{}", 0)), "");
  const auto b = raw(R"({"s":{"dtype":"F16","shape":[],"data_offsets":[0,2]}})", 2);
  const auto f = SafetensorsFile::from_memory(b.data(), b.size());
  EXPECT_EQ(f.tensors().at(0).n_elements(), 1);
}

TEST(Safetensors, RefusesDamage) {
  struct Case {
    std::vector<uint8_t> bytes;
    std::string expect;
  };
  const std::string ok = R"({"t":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}})";
  std::vector<uint8_t> big_len(8, 0xff);
  std::vector<uint8_t> cut = raw(ok, 8);
  cut.resize(20);
  const std::vector<Case> cases = {
      {{1, 2, 3}, "no header length"},
      {big_len, "exceeds 100 MiB"},
      {cut, "truncated"},
      {raw(ok, 4), "'t': data [0, 8) lies past the end"},
      {raw("{\"t\":", 0), "not valid JSON"},
      {raw("[]", 0), "not a JSON object"},
      {raw(R"({"t":{"dtype":"Q4","shape":[2],"data_offsets":[0,2]}})", 2), "'t': unknown dtype 'Q4'"},
      {raw(R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8]}})", 8), "'t': 8 bytes do not hold a F32 tensor of 4"},
      {raw(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8), "negative"},
      {raw(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8), "end before begin"},
      {raw(R"({"t":{"dtype":"F32","shape":[2]}})", 8), "data_offsets"},
      {raw(R"({"t":{"dtype":"U8","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})", 8), "overflows"},
      {raw(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})", 8), "overlap"},
      {raw(R"({"__metadata__":{"k":1}})", 0), "__metadata__ value 'k'"},
  };
  for (const auto& c : cases) {
    const std::string e = error_of(c.bytes);
    EXPECT_NE(e.find(c.expect), std::string::npos) << "expected '" << c.expect << "', got '" << e << "'";
    EXPECT_NE(e.find("x.safetensors"), std::string::npos) << e;
  }
}

TEST(Safetensors, OpenNamesAMissingFile) {
  try {
    SafetensorsFile::open("/nonexistent/model-00001-of-00002.safetensors");
    FAIL();
  } catch (const SafetensorsError& e) {
    EXPECT_NE(std::string(e.what()).find("model-00001-of-00002.safetensors"), std::string::npos);
  }
}

}  // namespace
}  // namespace g3n
