// The seed corpora and regressions of the fuzz targets for untrusted input (fuzz/json_schema_fuzz.cpp,
// tokenizer_fuzz.cpp, modelfile_fuzz.cpp, manifest_fuzz.cpp, http_fuzz.cpp), replayed through the
// library: the seeds are well-formed and do what they say; the inputs that once failed under the fuzzer
// now give a clear error (or a result), never a crash.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../fuzz/http_fuzz_request.h"
#include "gguf/gguf.h"
#include "sampling/json_constraint.h"
#include "server/requests.h"
#include "server/server.h"
#include "store/file_util.h"
#include "store/model_name.h"
#include "store/model_store.h"
#include "store/modelfile.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace g3n;

namespace {

const fs::path kFuzz = fs::path(G3N_SOURCE_DIR) / "fuzz";
const std::string kFixtures = G3N_FIXTURES_DIR;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<fs::path> files(const std::string& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(kFuzz / dir))
    if (e.is_regular_file() && e.path().filename() != "README.md") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

// Each non-tool seed's schema compiles and its text is a complete value the automaton accepts whole.
TEST(FuzzInputs, JsonSchemaSeedsMatchTheirText) {
  int n = 0;
  for (const fs::path& p : files("json_schema-seeds")) {
    const std::string in = read_all(p);
    const size_t nul = in.find('\0', 1);  // after the flags byte
    ASSERT_NE(nul, std::string::npos) << p;
    if (in[0] & 1) continue;  // a tool-call seed
    const auto schema = JsonSchema::compile(json::parse(in.substr(1, nul - 1)));
    JsonMatcher m(*schema);
    EXPECT_TRUE(m.feed(std::string_view(in).substr(nul + 1))) << p;
    EXPECT_TRUE(m.complete()) << p;
    ++n;
  }
  EXPECT_GE(n, 6);
  for (const fs::path& p : files("json_schema-regressions")) {
    const std::string in = read_all(p);
    const size_t nul = in.find('\0', 1);  // after the flags byte
    const json spec = json::parse(in.substr(1, nul == std::string::npos ? std::string::npos : nul - 1), nullptr, false);
    if (spec.is_discarded()) continue;
    try {
      const auto schema = JsonSchema::compile(spec);
      JsonMatcher m(*schema);
      if (nul != std::string::npos) (void)m.feed(std::string_view(in).substr(nul + 1));
    } catch (const std::invalid_argument&) {
    }
  }
}

// \u escapes: a surrogate pair is one character; a lone half is refused at the byte that makes it one
// (json_schema-regressions/lone-low-surrogate-escape: the automaton took "\ude00" alone, which the
// JSON parser that reads tool-call arguments rejects).
TEST(FuzzInputs, JsonStringsPairSurrogates) {
  const auto any = JsonSchema::any_object();
  auto accepts = [&](std::string_view text) {
    JsonMatcher m(*any);
    return m.feed(text) && m.complete();
  };
  EXPECT_TRUE(accepts(R"({"a": "\ud83d\ude00 \u00e9 \uFFFF"})"));
  EXPECT_TRUE(json::accept(R"({"a": "\ud83d\ude00 \u00e9 \uFFFF"})"));
  for (const char* bad : {R"({"a": "\ude00"})", R"({"a": "\ud83d"})", R"({"a": "\ud83dx"})", R"({"a": "\ud83d\n"})",
                          R"({"a": "\ud83d\u0041"})", R"({"a": "\ud83d\ud83d"})"}) {
    EXPECT_FALSE(accepts(bad)) << bad;
    EXPECT_FALSE(json::accept(bad)) << bad;
  }
  JsonMatcher lone(*any);
  EXPECT_TRUE(lone.feed(R"({"a": "\uD)"));
  EXPECT_FALSE(lone.feed('C'));  // a low half with no high one before it: no way on
  const auto one = JsonSchema::compile(json{{"type", "string"}, {"maxLength", 1}});
  JsonMatcher pair(*one);
  EXPECT_TRUE(pair.feed(R"("\ud83d\ude00")") && pair.complete());  // one character
  JsonMatcher two(*one);
  EXPECT_FALSE(two.feed(R"("\ud83d\ude00a)"));
}

// Plain text seeds round-trip through the real vocabulary; id seeds decode.
TEST(FuzzInputs, TokenizerSeedsRoundTrip) {
  const Tokenizer tok = Tokenizer::from_gguf(GgufFile::open(kFixtures + "/gemma3-vocab/vocab.gguf"));
  int round_trips = 0;
  auto replay = [&](const fs::path& p, bool seed) {
    const std::string in = read_all(p);
    ASSERT_FALSE(in.empty()) << p;
    const uint8_t flags = static_cast<uint8_t>(in[0]);
    const std::string text = in.substr(1);
    if (flags & 4) {
      std::vector<int32_t> ids(text.size() / 4);
      std::memcpy(ids.data(), text.data(), ids.size() * 4);
      (void)tok.decode(ids, flags & 8);
      return;
    }
    const std::vector<int32_t> ids = tok.encode(text, false, flags & 1);
    if (seed && !(flags & 1) && p.filename() != "invalid-utf8") {
      EXPECT_EQ(tok.decode(ids), text) << p;
      ++round_trips;
    }
  };
  for (const fs::path& p : files("tokenizer-seeds")) replay(p, true);
  for (const fs::path& p : files("tokenizer-regressions")) replay(p, false);
  EXPECT_GE(round_trips, 3);
}

TEST(FuzzInputs, ModelfileSeedsParse) {
  const store::Modelfile mf = store::parse_modelfile(read_all(kFuzz / "modelfile-seeds" / "full"));
  EXPECT_EQ(mf.from, "./gemma3n-tiny.gguf");
  EXPECT_EQ(mf.extra_from.size(), 1u);
  EXPECT_EQ(mf.params["stop"], json::array({"<end_of_turn>", "<eos>"}));
  EXPECT_EQ(mf.params["num_ctx"], 4096);
  EXPECT_EQ(mf.messages.size(), 2u);
  EXPECT_EQ(*mf.system, "You are \"terse\".");
  EXPECT_EQ(store::parse_modelfile(read_all(kFuzz / "modelfile-seeds" / "name-only")).params["num_predict"], -1);
  for (const char* bad : {"errors", "unterminated", "adapter"})
    EXPECT_THROW(store::parse_modelfile(read_all(kFuzz / "modelfile-seeds" / bad)), store::StoreError) << bad;
  for (const fs::path& p : files("modelfile-regressions")) {
    try {
      (void)store::parse_modelfile(read_all(p));
    } catch (const store::StoreError&) {
    }
  }
}

// The manifest seeds parse (but the one with a bad digest); the names parse; the regressions are refused.
TEST(FuzzInputs, ManifestSeedsParseAndRegressionsAreRefused) {
  const store::Manifest m = store::Manifest::parse(read_all(kFuzz / "manifest-seeds" / "ollama"));
  EXPECT_EQ(m.layers.size(), 4u);
  EXPECT_EQ(m.serialize(), read_all(kFuzz / "manifest-seeds" / "ollama"));  // Ollama's compact form
  EXPECT_EQ(store::Manifest::parse(read_all(kFuzz / "manifest-seeds" / "minimal")).layers.size(), 0u);
  EXPECT_THROW(store::Manifest::parse(read_all(kFuzz / "manifest-seeds" / "bad-digest")), store::StoreError);
  for (const char* name : {"name-full", "name-host-port", "name-hf"})
    EXPECT_NO_THROW(store::parse_model_name(read_all(kFuzz / "manifest-seeds" / name))) << name;
  int refused = 0;
  for (const fs::path& p : files("manifest-regressions")) {
    EXPECT_THROW(store::Manifest::parse(read_all(p)), store::StoreError) << p;
    ++refused;
  }
  EXPECT_GE(refused, 1);
}

// Every HTTP seed through Server::handle, in-process as the fuzz target sends it (framing and bounds
// shared with it): the well-formed requests succeed, the malformed ones get their 4xx; then the
// regressions, which must answer (any status) without crashing.
TEST(FuzzInputs, HttpSeedsAnswerInProcess) {
  const fs::path root = fs::temp_directory_path() / ("g3n-fuzz-inputs-" + std::to_string(std::random_device{}()));
  server::ServerConfig cfg;
  cfg.store.root = root;
  cfg.store.ollama_root.reset();
  cfg.store.prune = false;
  cfg.num_ctx = 512;  // room for an image (258 rows) or a 30 s audio block (190) beside the text
  cfg.num_threads = 1;
  cfg.log_requests = false;
  cfg.transcribe_model = "hearing";
  {
    store::ModelStore st(cfg.store);
    const std::string model = kFixtures + "/gemma3n-tiny/models/gemma3n-tiny-q4_k_m.gguf";
    const std::pair<const char*, std::string> models[] = {
        {"tiny", ""},
        {"seeing", kFixtures + "/gemma3n-vision-tiny/models/gemma3n-vision-tiny-mmproj-f16.gguf"},
        {"hearing", kFixtures + "/gemma3n-audio-tiny/models/gemma3n-audio-tiny-mmproj-f16.gguf"}};
    for (const auto& [name, projector] : models) {
      store::Modelfile mf;
      mf.from = model;
      if (!projector.empty()) mf.extra_from.push_back(projector);
      store::create_model(st, store::parse_model_name(name), mf, fs::current_path(), [](const std::string&) {});
    }
  }
  server::Server srv(cfg);
  auto replay = [&](const fs::path& p) {
    long drop = -1;
    server::HttpRequest req = http_fuzz::frame(read_all(p), drop);
    json body = json::parse(req.body, nullptr, false);
    if (body.is_object()) {
      http_fuzz::bound(body, req.path);
      req.body = body.dump();
    }
    auto sink = std::make_shared<http_fuzz::Sink>(drop);
    server::HttpResponse res = srv.handle(std::move(req));
    if (res.stream) res.stream(*sink);
    if (res.on_close) res.on_close();
    return std::make_pair(res.status, res.stream ? sink->text : res.body);
  };
  const std::map<std::string, int> errors = {{"bad-json", 400}, {"wrong-method", 405}, {"unknown-path", 404}, {"delete", 404}};
  int ok = 0;
  for (const fs::path& p : files("http-seeds")) {
    const std::string name = p.filename().string();
    if (name == "pull") continue;  // the fuzz target only parses it: a pull reaches for the network
    const auto [status, text] = replay(p);
    if (auto it = errors.find(name); it != errors.end()) {
      EXPECT_EQ(status, it->second) << name << ": " << text;
    } else {
      EXPECT_GE(status, 200) << name << ": " << text;
      EXPECT_LT(status, 300) << name << ": " << text;
      ++ok;
    }
  }
  EXPECT_GE(ok, 30);
  for (const fs::path& p : files("http-regressions")) {
    const int status = replay(p).first;
    EXPECT_GE(status, 100) << p;
    EXPECT_LT(status, 600) << p;
  }
  std::error_code ec;
  fs::remove_all(root, ec);
}
