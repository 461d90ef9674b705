// src/base: the thread pool's exception handling, the fd and mapping owners, the atomic file write,
// base64 decoding, the JSON nesting scan.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "base/base64.h"
#include "base/file.h"
#include "base/json_nesting.h"
#include "base/thread_pool.h"

namespace g3n {
namespace {
namespace fs = std::filesystem;

fs::path scratch_dir() {
  const fs::path d = fs::temp_directory_path() /
                     ("g3n-base-test-" + std::to_string(::getpid()) + "-" +
                      ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

size_t count_entries(const fs::path& dir) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) (void)e, ++n;
  return n;
}

bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

TEST(ThreadPool, RethrowsTheFirstExceptionOfAWorkerAndStaysUsable) {
  ThreadPool pool(4);
  if (pool.size() < 2) GTEST_SKIP() << "no worker threads on this machine";
  // Chunk 0 runs on the calling thread; the throwing chunk is a worker's.
  EXPECT_THROW(pool.parallel_for(pool.size(), [](int64_t b, int64_t, int) {
    if (b == 1) throw std::runtime_error("worker failed");
  }), std::runtime_error);
  // The caller's own chunk throwing is rethrown the same way, after the workers are done.
  EXPECT_THROW(pool.parallel_for(pool.size(), [](int64_t b, int64_t, int) {
    if (b == 0) throw std::invalid_argument("caller failed");
  }), std::invalid_argument);
  // The pool still works afterwards, and a throwing dynamic job stops handing out chunks.
  std::atomic<int64_t> sum{0};
  pool.parallel_for(1000, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) sum += i;
  });
  EXPECT_EQ(sum.load(), 999 * 1000 / 2);
  std::atomic<int> chunks{0};
  EXPECT_THROW(pool.parallel_for_dynamic(100000, [&](int64_t, int64_t, int) {
    ++chunks;
    throw std::runtime_error("dynamic failed");
  }, 1), std::runtime_error);
  EXPECT_LE(chunks.load(), pool.size());  // each thread stopped after its first chunk
}

// Guided chunks cover [0, n) exactly once, never exceed max_grain, shrink towards the end, and are never
// shorter than min_grain except for the very last piece.
TEST(ThreadPool, GuidedChunksCoverEveryIndexOnceAndShrink) {
  ThreadPool pool(3);
  for (int64_t n : {int64_t(1), int64_t(31), int64_t(32), int64_t(1000), int64_t(262144)})
    for (auto [lo, hi] : {std::pair<int64_t, int64_t>{32, 21845}, {1, 1}, {64, 64}, {0, 500}}) {
      std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
      std::mutex mu;
      std::vector<std::pair<int64_t, int64_t>> chunks;
      pool.parallel_for_guided(n, [&](int64_t b, int64_t e, int thread) {
        ASSERT_LT(thread, pool.size());
        for (int64_t i = b; i < e; ++i) ++seen[static_cast<size_t>(i)];
        std::lock_guard<std::mutex> lock(mu);
        chunks.push_back({b, e});
      }, lo, hi);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[static_cast<size_t>(i)].load(), 1) << n << " " << i;
      std::sort(chunks.begin(), chunks.end());
      const int64_t lo1 = std::max<int64_t>(1, lo), hi1 = std::max(lo1, hi);
      for (size_t k = 0; k < chunks.size(); ++k) {
        const int64_t len = chunks[k].second - chunks[k].first;
        EXPECT_LE(len, hi1);
        if (k + 1 < chunks.size()) {
          EXPECT_GE(len, lo1);
        }
        if (k > 0 && k + 1 < chunks.size()) {
          EXPECT_LE(len, chunks[k - 1].second - chunks[k - 1].first);
        }
      }
    }
  std::atomic<int> calls{0};
  EXPECT_THROW(pool.parallel_for_guided(100000, [&](int64_t, int64_t, int) {
    ++calls;
    throw std::runtime_error("guided failed");
  }, 1, 1000), std::runtime_error);
  EXPECT_LE(calls.load(), pool.size());
}

TEST(UniqueFd, ClosesOnDestructionAndMovesOwnership) {
  int raw = -1;
  {
    UniqueFd a(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(a);
    raw = a.get();
    UniqueFd b(std::move(a));
    EXPECT_FALSE(a);
    EXPECT_EQ(b.get(), raw);
    EXPECT_TRUE(fd_is_open(raw));
  }
  EXPECT_FALSE(fd_is_open(raw));
  UniqueFd c(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  raw = c.get();
  EXPECT_EQ(c.close(), 0);
  EXPECT_FALSE(c);
  EXPECT_FALSE(fd_is_open(raw));
}

TEST(Mapping, UnmapsOnDestruction) {
  const size_t len = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  unsigned char resident = 0;
  {
    Mapping m(p, len);
    EXPECT_EQ(::mincore(p, len, &resident), 0);  // mapped
  }
  EXPECT_EQ(::mincore(p, len, &resident), -1);  // ENOMEM: no longer mapped
  EXPECT_EQ(errno, ENOMEM);
}

// map_anonymous gives zeroed writable memory, with or without the huge-page hint; fault_in_huge_pages
// touches (zeroes) a prefix of whole 2 MiB pages and leaves the mapping usable either way.
TEST(Mapping, AnonymousMappingsAndHugePages) {
  EXPECT_FALSE(map_anonymous(0, true));
  for (bool huge : {false, true}) {
    const size_t len = (size_t{21} << 20) + 12345;  // not a whole number of pages of either size
    Mapping m = map_anonymous(len, huge);
    ASSERT_TRUE(m);
    ASSERT_EQ(m.size(), len);
    auto* p = static_cast<uint8_t*>(m.data());
    const size_t huge_bytes = huge ? fault_in_huge_pages(m) : 0;
    EXPECT_LE(huge_bytes, len);
    for (size_t i = 0; i < len; i += 4093) ASSERT_EQ(p[i], 0) << i;
    p[len - 1] = 7;
    std::memset(p, 1, 4096);
    EXPECT_EQ(p[4095], 1);
    EXPECT_EQ(p[len - 1], 7);
    if (huge) std::printf("[ info ] transparent huge pages %s; %zu MiB of %zu faulted in as huge pages\n",
                transparent_huge_pages() ? "available" : "unavailable", huge_bytes >> 20, len >> 20);
  }
}

TEST(AtomicFileWriter, ReplacesTheTargetOnlyOnCommit) {
  const fs::path dir = scratch_dir();
  const fs::path target = dir / "f.txt";
  write_file_atomic(target, "old");
  EXPECT_EQ(slurp(target), "old");
  {
    AtomicFileWriter w(target);
    w.write("new", 3);
    EXPECT_EQ(slurp(target), "old");  // nothing visible before commit
    EXPECT_EQ(count_entries(dir), 2u);
  }  // destroyed uncommitted
  EXPECT_EQ(slurp(target), "old");
  EXPECT_EQ(count_entries(dir), 1u);  // temporary file removed

  AtomicFileWriter w(dir / "unnamed");
  w.write("content", 7);
  w.commit(dir / "named");  // another name in the same directory
  EXPECT_EQ(slurp(dir / "named"), "content");
  EXPECT_FALSE(fs::exists(dir / "unnamed"));
  EXPECT_EQ(count_entries(dir), 2u);

  EXPECT_THROW(write_file_atomic(dir / "no/such/dir/x", "x"), IoError);
  fs::remove_all(dir);
}

TEST(Base64, DecodesPaddedUnpaddedAndWrapped) {
  const auto text = [](std::string_view b64) {
    auto v = base64_decode(b64);
    EXPECT_TRUE(v.has_value()) << b64;
    return v ? std::string(v->begin(), v->end()) : std::string("<error>");
  };
  EXPECT_EQ(text(""), "");
  EXPECT_EQ(text("aGVsbG8="), "hello");
  EXPECT_EQ(text("aGVsbG8"), "hello");
  EXPECT_EQ(text("aGVsbA=="), "hell");
  EXPECT_EQ(text("aGVsbA"), "hell");
  EXPECT_EQ(text("aGVs"), "hel");
  EXPECT_EQ(text("aGVs\r\nbG8="), "hello");
  const auto bytes = base64_decode("+/8A");
  ASSERT_TRUE(bytes);
  EXPECT_EQ(*bytes, (std::vector<uint8_t>{0xfb, 0xff, 0x00}));
}

TEST(Base64, RejectsWhatIsNotBase64AndSaysWhere) {
  std::string why;
  EXPECT_FALSE(base64_decode("aGV%bG8=", &why));
  EXPECT_EQ(why, "invalid character '%' at offset 3");
  EXPECT_FALSE(base64_decode("a", &why));
  EXPECT_NE(why.find("truncated"), std::string::npos);
  EXPECT_FALSE(base64_decode("=aGVs", &why));
  EXPECT_NE(why.find("padding"), std::string::npos);
  EXPECT_FALSE(base64_decode("aGVsbG8=aGVs", &why));
  EXPECT_NE(why.find("after padding"), std::string::npos);
  EXPECT_FALSE(base64_decode("aGVsbA=", &why));
  EXPECT_NE(why.find("padding"), std::string::npos);
  EXPECT_FALSE(base64_decode("aG\x80s", &why));
  EXPECT_EQ(why, "invalid character byte 0x80 at offset 2");
}

TEST(JsonNesting, CountsArraysAndObjectsButNotBracketsInStrings) {
  EXPECT_FALSE(json_nesting_exceeds("", 0));
  EXPECT_FALSE(json_nesting_exceeds("1", 0));
  EXPECT_TRUE(json_nesting_exceeds("[]", 0));
  EXPECT_FALSE(json_nesting_exceeds("[[]]", 2));
  EXPECT_TRUE(json_nesting_exceeds("[[]]", 1));
  EXPECT_FALSE(json_nesting_exceeds(R"({"a": [1, {"b": 2}], "c": {}})", 3));
  EXPECT_TRUE(json_nesting_exceeds(R"({"a": [1, {"b": 2}], "c": {}})", 2));
  // Siblings do not add up: the depth falls back after each closes.
  EXPECT_FALSE(json_nesting_exceeds("[[],[],[],[]]", 2));
  // Brackets inside strings, escaped quotes and escaped backslashes before a closing quote.
  EXPECT_FALSE(json_nesting_exceeds(R"(["[[[[{{{{", "\"[[[[", "\\", "]]]]"])", 1));
  EXPECT_TRUE(json_nesting_exceeds(R"(["\\", [[]]])", 2));
  // Unbalanced closers do not go below zero (the parser rejects such text anyway).
  EXPECT_TRUE(json_nesting_exceeds("]]]][[", 1));
  // The default limit, at and past it.
  const std::string at(kMaxJsonNesting, '['), past(kMaxJsonNesting + 1, '[');
  EXPECT_FALSE(json_nesting_exceeds(at + std::string(kMaxJsonNesting, ']')));
  EXPECT_TRUE(json_nesting_exceeds(past + std::string(kMaxJsonNesting + 1, ']')));
  // A string left open (truncated text) ends the scan without reading past it.
  EXPECT_FALSE(json_nesting_exceeds(R"(["abc\)", 1));
}

}  // namespace
}  // namespace g3n
