// Model names and the on-disk store (Ollama layout), exercised in temporary directories.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "cli_util.h"
#include "gguf/gguf.h"
#include "projector_util.h"
#include "registry/resolve.h"
#include "store/model_name.h"
#include "store/model_store.h"
#include "store/modelfile.h"
#include "vision/mmproj.h"

namespace fs = std::filesystem;
using namespace g3n::store;

namespace {

struct NameCase {
  const char* in;
  const char* host;
  const char* ns;
  const char* model;
  const char* tag;
};

TEST(StoreName, ParsesLikeOllama) {
  const NameCase cases[] = {
      {"gemma3n", "registry.ollama.ai", "library", "gemma3n", "latest"},
      {"gemma3n:e2b", "registry.ollama.ai", "library", "gemma3n", "e2b"},
      {"library/gemma3n:e4b", "registry.ollama.ai", "library", "gemma3n", "e4b"},
      {"jmorganca/foo:q4", "registry.ollama.ai", "jmorganca", "foo", "q4"},
      {"example.com:5000/me/foo", "example.com:5000", "me", "foo", "latest"},
      {"127.0.0.1:8080/library/tiny:latest", "127.0.0.1:8080", "library", "tiny", "latest"},
      {"hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", "hf.co", "bartowski",
       "Llama-3.2-1B-Instruct-GGUF", "Q4_K_M"},
      {"llama3.2", "registry.ollama.ai", "library", "llama3.2", "latest"},
      {"https://example.com/me/foo:1", "example.com", "me", "foo", "1"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.in);
    ModelName n = parse_model_name(c.in);
    EXPECT_EQ(n.host, c.host);
    EXPECT_EQ(n.ns, c.ns);
    EXPECT_EQ(n.model, c.model);
    EXPECT_EQ(n.tag, c.tag);
  }
  EXPECT_EQ(parse_model_name("http://h:1/a/b").scheme, "http");
}

TEST(StoreName, RejectsInvalid) {
  const char* bad[] = {"",         ":tag",       "model:",        "/model",     "ns/",
                       "-model",   "a b",        "my.ns/model",   "a/b/c/d:e",  "model:t:a g",
                       "m:-x",     "ftp://h/a/b", "host//model"};
  for (const char* b : bad) {
    SCOPED_TRACE(b);
    EXPECT_THROW(parse_model_name(b), NameError);
    EXPECT_FALSE(try_parse_model_name(b, nullptr));
  }
  EXPECT_THROW(parse_model_name(std::string(81, 'a')), NameError);
  EXPECT_NO_THROW(parse_model_name(std::string(80, 'a')));
}

TEST(StoreName, DisplayAndCase) {
  EXPECT_EQ(parse_model_name("gemma3n").display(), "gemma3n:latest");
  EXPECT_EQ(parse_model_name("me/foo").display(), "me/foo:latest");
  EXPECT_EQ(parse_model_name("REGISTRY.ollama.ai/library/x:1").display(), "x:1");
  EXPECT_EQ(parse_model_name("h.io/library/x:1").display(), "h.io/library/x:1");
  EXPECT_TRUE(parse_model_name("Gemma3N:E2B").same_as(parse_model_name("gemma3n:e2b")));
  EXPECT_FALSE(parse_model_name("gemma3n:e2b").same_as(parse_model_name("gemma3n:e4b")));
  EXPECT_EQ(parse_model_name("gemma3n:e2b").manifest_relpath(),
            fs::path("manifests/registry.ollama.ai/library/gemma3n/e2b"));
}

TEST(StoreName, GgufPaths) {
  EXPECT_TRUE(looks_like_gguf_path("model.gguf"));
  EXPECT_TRUE(looks_like_gguf_path("dir/Model.GGUF"));
  EXPECT_TRUE(looks_like_gguf_path("/abs/file"));
  EXPECT_TRUE(looks_like_gguf_path("./file"));
  EXPECT_FALSE(looks_like_gguf_path("gemma3n:e2b"));
  EXPECT_FALSE(looks_like_gguf_path("hf.co/a/b:Q4_K_M"));
}

TEST(StoreConfigTest, StoreConfigDefaults) {
  auto c = StoreConfig::from_values(nullptr, nullptr, "/home/u");
  EXPECT_EQ(c.root, fs::path("/home/u/.g3n/models"));
  ASSERT_TRUE(c.ollama_root);
  EXPECT_EQ(*c.ollama_root, fs::path("/home/u/.ollama/models"));
  c = StoreConfig::from_values(" \"/x/g\" ", "'/x/o'", "/home/u");
  EXPECT_EQ(c.root, fs::path("/x/g"));
  EXPECT_EQ(*c.ollama_root, fs::path("/x/o"));
}

// A temp dir with a g3n store and an Ollama store side by side.
class StoreFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("g3n-store-test-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(base_);
    fs::create_directories(base_);
    cfg_.root = base_ / "g3n";
    cfg_.ollama_root = base_ / "ollama";
  }
  void TearDown() override { fs::remove_all(base_); }

  // Builds a model in `store`: model blob + template + params + license + config, then the manifest.
  Manifest add_model(ModelStore& store, const std::string& name, const std::string& weights) {
    Manifest m;
    auto layer = [&](std::string_view mt, const std::string& data) {
      Descriptor d;
      d.media_type = std::string(mt);
      d.digest = store.put_blob(data);
      d.size = int64_t(data.size());
      m.layers.push_back(d);
    };
    layer(media::kModel, weights);
    layer(media::kTemplate, "{{ .Prompt }}");
    layer(media::kParams, R"({"stop":["<end_of_turn>"],"temperature":0.5})");
    layer(media::kLicense, "Gemma terms");
    layer(media::kSystem, "be brief");
    const std::string cfg = R"({"model_format":"gguf","model_family":"gemma3n","model_type":"4.5B","file_type":"Q4_K_M"})";
    m.config = {std::string(media::kConfig), store.put_blob(cfg), int64_t(cfg.size()), ""};
    store.write_manifest(parse_model_name(name), m);
    return m;
  }

  fs::path base_;
  StoreConfig cfg_;
};

TEST_F(StoreFixture, ManifestRoundTripIsOllamaCompact) {
  const std::string text =
      R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",)"
      R"("config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:)" +
      std::string(64, 'a') + R"(","size":10},"layers":[{"mediaType":"application/vnd.ollama.image.model",)"
      R"("digest":"sha256:)" + std::string(64, 'b') + R"(","size":20,"from":"x"}]})";
  Manifest m = Manifest::parse(text);
  EXPECT_EQ(m.serialize(), text);
  EXPECT_EQ(m.total_size(), 30);
  EXPECT_THROW(Manifest::parse(R"({"config":{"digest":"sha256:zz"},"layers":[]})"), StoreError);
  EXPECT_THROW(Manifest::parse("not json"), StoreError);
}

TEST_F(StoreFixture, WriteResolveListRemove) {
  ModelStore store(cfg_);
  add_model(store, "tiny:latest", "GGUF-weights-1");
  EXPECT_TRUE(fs::is_regular_file(cfg_.root / "manifests/registry.ollama.ai/library/tiny/latest"));

  ResolvedModel r = store.resolve(parse_model_name("TINY"));
  EXPECT_EQ(r.name.model, "tiny");  // on-disk spelling
  EXPECT_EQ(g3n::store::read_file(r.model_path), "GGUF-weights-1");
  EXPECT_EQ(r.template_text.value_or(""), "{{ .Prompt }}");
  EXPECT_EQ(r.system.value_or(""), "be brief");
  EXPECT_EQ(r.params["temperature"], 0.5);
  ASSERT_EQ(r.licenses.size(), 1u);
  EXPECT_EQ(r.config["model_family"], "gemma3n");
  EXPECT_FALSE(r.from_ollama);

  add_model(store, "other:v1", "GGUF-weights-2");
  auto l = store.list();
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l[0].id.size(), 12u);

  // Removing one model deletes its own weights but keeps blobs shared with the other.
  const fs::path w1 = store.resolve(parse_model_name("tiny")).model_path;
  const fs::path tmpl = store.resolve(parse_model_name("tiny")).manifest_path;
  store.remove(parse_model_name("tiny"));
  EXPECT_FALSE(fs::exists(w1));
  EXPECT_FALSE(fs::exists(tmpl));
  EXPECT_FALSE(fs::exists(cfg_.root / "manifests/registry.ollama.ai/library/tiny"));
  auto r2 = store.resolve(parse_model_name("other:v1"));
  EXPECT_TRUE(r2.template_text.has_value());
  EXPECT_THROW(store.resolve(parse_model_name("tiny")), StoreError);
  EXPECT_THROW(store.remove(parse_model_name("tiny")), StoreError);
}

TEST_F(StoreFixture, WriteManifestRefusesMissingBlobs) {
  ModelStore store(cfg_);
  Manifest m;
  m.config = {std::string(media::kConfig), "sha256:" + std::string(64, 'c'), 3, ""};
  EXPECT_THROW(store.write_manifest(parse_model_name("x"), m), StoreError);
  EXPECT_FALSE(fs::exists(cfg_.root / "manifests/registry.ollama.ai/library/x/latest"));
}

TEST_F(StoreFixture, CopyAndCaseInsensitiveOverwrite) {
  ModelStore store(cfg_);
  add_model(store, "tiny", "w");
  store.copy(parse_model_name("tiny"), parse_model_name("me/tiny2:v2"));
  auto a = store.list();
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].id, a[1].id);  // identical bytes, identical IDs
  // Writing "TINY" reuses the existing directory spelling.
  add_model(store, "TINY:LATEST", "w2");
  EXPECT_EQ(store.list().size(), 2u);
  EXPECT_EQ(g3n::store::read_file(store.resolve(parse_model_name("tiny")).model_path), "w2");
  // The old weights "w" are still used by me/tiny2.
  EXPECT_EQ(g3n::store::read_file(store.resolve(parse_model_name("me/tiny2:v2")).model_path), "w");
}

TEST_F(StoreFixture, OllamaStoreIsReadOnlyFallback) {
  StoreConfig ocfg;
  ocfg.root = *cfg_.ollama_root;
  ocfg.ollama_root.reset();
  ModelStore ollama(ocfg);
  add_model(ollama, "gemma3n:e2b", "ollama-weights");

  ModelStore store(cfg_);
  ResolvedModel r = store.resolve(parse_model_name("gemma3n:e2b"));
  EXPECT_TRUE(r.from_ollama);
  EXPECT_EQ(r.model_path.parent_path(), *cfg_.ollama_root / "blobs");  // used in place, no copy
  auto l = store.list();
  ASSERT_EQ(l.size(), 1u);
  EXPECT_TRUE(l[0].from_ollama);
  EXPECT_THROW(store.remove(parse_model_name("gemma3n:e2b")), StoreError);
  EXPECT_TRUE(fs::exists(r.model_path));

  // cp brings the name into g3n's store; blobs are hard-linked, never copied or moved.
  store.copy(parse_model_name("gemma3n:e2b"), parse_model_name("mine"));
  ResolvedModel m = store.resolve(parse_model_name("mine"));
  EXPECT_FALSE(m.from_ollama);
  EXPECT_EQ(g3n::store::read_file(m.model_path), "ollama-weights");
  store.remove(parse_model_name("mine"));
  EXPECT_TRUE(fs::exists(r.model_path));  // Ollama's blob untouched
}

TEST_F(StoreFixture, ResolveModelAcceptsPathsAndNames) {
  ModelStore store(cfg_);
  add_model(store, "tiny", "w");
  g3n::registry::ResolveResult r = g3n::registry::resolve_model("tiny", cfg_, false, {});
  EXPECT_EQ(r.params["temperature"], 0.5);
  EXPECT_EQ(g3n::store::read_file(r.gguf_path), "w");
  const fs::path f = base_ / "x.gguf";
  std::ofstream(f) << "gguf";
  r = g3n::registry::resolve_model(f.string(), cfg_, false, {});
  EXPECT_EQ(r.gguf_path, f);
  EXPECT_FALSE(r.model.has_value());
  EXPECT_THROW(g3n::registry::resolve_model("missing:tag", cfg_, false, {}), std::exception);
  EXPECT_THROW(g3n::registry::resolve_model((base_ / "nope.gguf").string(), cfg_, false, {}), std::exception);
}

TEST_F(StoreFixture, PutBlobFileHashesWhileCopying) {
  ModelStore store(cfg_);
  const fs::path f = base_ / "w.gguf";
  std::string data(3 << 20, 'z');
  std::ofstream(f, std::ios::binary) << data;
  std::string d = store.put_blob_file(f);
  EXPECT_EQ(d, "sha256:" + sha256_hex(data));
  EXPECT_EQ(fs::file_size(store.blob_path(d)), data.size());
  // No temp files left behind.
  int n = 0;
  for (auto& e : fs::directory_iterator(store.blobs_dir())) n += e.path().filename().string().starts_with(".");
  EXPECT_EQ(n, 0);
}

TEST(StoreModelfile, ParsesOllamaSyntax) {
  Modelfile mf = parse_modelfile(R"(# comment
FROM ./weights.gguf
TEMPLATE """{{ if .System }}{{ .System }}{{ end }}
{{ .Prompt }}"""
SYSTEM "be \"brief\""
PARAMETER temperature 0.7
PARAMETER num_ctx 8192
PARAMETER stop <end_of_turn>
PARAMETER stop "<start_of_turn>"
license """line1
line2"""
MESSAGE user hi
)");
  EXPECT_EQ(mf.from, "./weights.gguf");
  EXPECT_EQ(mf.template_text.value_or(""), "{{ if .System }}{{ .System }}{{ end }}\n{{ .Prompt }}");
  EXPECT_EQ(mf.system.value_or(""), "be \"brief\"");
  EXPECT_EQ(mf.params["temperature"], 0.7);
  EXPECT_EQ(mf.params["num_ctx"], 8192);
  EXPECT_EQ(mf.params["stop"], nlohmann::json({"<end_of_turn>", "<start_of_turn>"}));
  ASSERT_EQ(mf.licenses.size(), 1u);
  EXPECT_EQ(mf.licenses[0], "line1\nline2");
  EXPECT_EQ(mf.messages.size(), 1u);
  EXPECT_THROW(parse_modelfile("TEMPLATE x"), StoreError);                // no FROM
  EXPECT_THROW(parse_modelfile("FROM x\nPARAMETER bogus 1"), StoreError);  // unknown parameter
  EXPECT_THROW(parse_modelfile("FROM x\nPARAMETER num_ctx lots"), StoreError);
  EXPECT_THROW(parse_modelfile("FROM x\nFROBNICATE y"), StoreError);
  // A MatFormer size as a model parameter (docs/matformer.md): kept as text.
  EXPECT_EQ(parse_modelfile("FROM x\nPARAMETER matformer e2.98b-block").params["matformer"], "e2.98b-block");
  EXPECT_THROW(parse_modelfile("FROM x\nSYSTEM \"\"\"open"), StoreError);
  EXPECT_EQ(human_parameter_count(6'900'000'000), "6.9B");
  EXPECT_EQ(human_parameter_count(1'000'000), "1M");
}

const std::string kTinyModel = std::string(G3N_FIXTURES_DIR) + "/gemma3n-tiny/models/gemma3n-tiny-q4_k_m.gguf";

TEST_F(StoreFixture, CreateFromGgufAndFromModel) {
  ModelStore store(cfg_);
  fs::copy_file(kTinyModel, base_ / "w.gguf");
  Modelfile mf = parse_modelfile("FROM w.gguf\nTEMPLATE {{ .Prompt }}\nPARAMETER temperature 0.1\nLICENSE MIT\n");
  create_model(store, parse_model_name("mine"), mf, base_, {});
  ResolvedModel r = store.resolve(parse_model_name("mine"));
  EXPECT_EQ(g3n::store::read_file(r.model_path), g3n::store::read_file(kTinyModel));
  EXPECT_EQ(r.params["temperature"], 0.1);
  EXPECT_EQ(r.config["model_format"], "gguf");
  // FROM a model name inherits its layers; the new Modelfile overrides and merges parameters.
  Modelfile child = parse_modelfile("FROM mine\nSYSTEM hello\nPARAMETER top_k 5\n");
  create_model(store, parse_model_name("child"), child, base_, {});
  ResolvedModel c = store.resolve(parse_model_name("child"));
  EXPECT_EQ(c.model_path, r.model_path);
  EXPECT_EQ(c.system.value_or(""), "hello");
  EXPECT_EQ(c.params["temperature"], 0.1);
  EXPECT_EQ(c.params["top_k"], 5);
  EXPECT_EQ(c.template_text.value_or(""), "{{ .Prompt }}");
  EXPECT_EQ(c.manifest.find_layer(media::kModel)->from, "mine:latest");
  EXPECT_THROW(create_model(store, parse_model_name("x"), parse_modelfile("FROM missing.gguf"), base_, {}),
               StoreError);
  // A file only its name or magic calls GGUF is refused before anything is stored.
  std::ofstream(base_ / "bogus.gguf", std::ios::binary) << std::string("GGUF\x03\0\0\0garbage", 15);
  try {
    create_model(store, parse_model_name("bogus"), parse_modelfile("FROM bogus.gguf"), base_, {});
    ADD_FAILURE() << "stored";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("not a valid GGUF file"), std::string::npos) << e.what();
  }
  EXPECT_THROW(store.resolve(parse_model_name("bogus")), StoreError);
}


// --- vision projectors (mmproj) in create and show ---

const std::string kTextModel = std::string(G3N_FIXTURES_DIR) + "/gemma3n-tiny/models/gemma3n-tiny-q4_k_m.gguf";
const std::string kProjector =
    std::string(G3N_FIXTURES_DIR) + "/gemma3n-vision-tiny/models/gemma3n-vision-tiny-mmproj-f16.gguf";

// The fixture projector with its projection narrowed to text width `width` (a valid tower for another model).
void write_narrow_projector(const fs::path& out, int64_t width) { g3n::test::write_narrow_projector(kProjector, out.string(), width); }

std::string create_error(ModelStore& store, const Modelfile& mf, const fs::path& base) {
  try {
    create_model(store, parse_model_name("refused"), mf, base, {});
  } catch (const StoreError& e) {
    return e.what();
  }
  return "(no error)";
}

// PARAMETER matformer: a slice file is relative to the Modelfile and stored absolute (the model means the same
// slice from any working directory); a slice the model's file cannot run is refused when the model is made.
TEST_F(StoreFixture, CreateAnchorsAndChecksSliceParameters) {
  ModelStore store(cfg_);
  const fs::path dir = base_ / "mf";
  fs::create_directories(dir);
  std::ifstream slices(std::string(G3N_FIXTURES_DIR) + "/gemma3n-tiny/golden/matformer/slices.json");
  const nlohmann::json doc = nlohmann::json::parse(slices);
  std::ofstream(dir / "s1.json") << nlohmann::json{{"kept_layers", doc["slices"][0]["kept_layers"]},
                                                   {"ffn_width", doc["slices"][0]["ffn_width"]}}.dump();
  const Modelfile mf = parse_modelfile("FROM " + kTextModel + "\nPARAMETER matformer s1.json\nPARAMETER draft s1.json\n");
  create_model(store, parse_model_name("sliced"), mf, dir, {});
  const ResolvedModel r = store.resolve(parse_model_name("sliced"));
  EXPECT_EQ(r.params["matformer"], (dir / "s1.json").lexically_normal().string());
  EXPECT_EQ(r.params["draft"], (dir / "s1.json").lexically_normal().string());
  // Refused: a file that is not there, a preset of another depth (the tiny model has 25 layers), a typo.
  for (const char* bad : {"PARAMETER matformer missing.json", "PARAMETER matformer e2b", "PARAMETER matformer e2bb",
                                "PARAMETER draft missing.json"}) {
    const std::string why = create_error(store, parse_modelfile("FROM " + kTextModel + "\n" + bad + "\n"), dir);
    EXPECT_NE(why.find("PARAMETER"), std::string::npos) << bad << ": " << why;
  }
  // A draft model's name is not a slice: left as written.
  create_model(store, parse_model_name("drafted"), parse_modelfile("FROM " + kTextModel + "\nPARAMETER draft sliced\n"), dir, {});
  EXPECT_EQ(store.resolve(parse_model_name("drafted")).params["draft"], "sliced");
}

TEST_F(StoreFixture, CreateStoresProjectorLayer) {
  ModelStore store(cfg_);
  // What `g3n create NAME --from model.gguf --mmproj mmproj.gguf` builds.
  Modelfile mf;
  mf.from = kTextModel;
  mf.extra_from = {kProjector};
  const Manifest m = create_model(store, parse_model_name("seeing"), mf, base_, {});
  ASSERT_GE(m.layers.size(), 2u);
  EXPECT_EQ(m.layers[0].media_type, media::kModel);
  EXPECT_EQ(m.layers[1].media_type, media::kProjector);
  EXPECT_EQ(m.layers[1].media_type, "application/vnd.ollama.image.projector");
  EXPECT_EQ(m.layers[1].digest, "sha256:" + sha256_file_hex(kProjector));
  EXPECT_EQ(m.layers[1].size, int64_t(fs::file_size(kProjector)));
  const ResolvedModel r = store.resolve(parse_model_name("seeing"));
  ASSERT_EQ(r.projectors.size(), 1u);
  EXPECT_EQ(r.projectors[0], store.blob_path(m.layers[1].digest));
  EXPECT_EQ(r.config["model_families"], nlohmann::json::array({"gemma3n", "clip"}));
  EXPECT_EQ(g3n::registry::resolve_model("seeing", cfg_, false, {}).projectors, r.projectors);

  // A Modelfile with two FROMs, the projector first: recognised by its architecture, same layers.
  fs::copy_file(kProjector, base_ / "mmproj.gguf");
  const Manifest m2 = create_model(
      store, parse_model_name("seeing2"),
      parse_modelfile("FROM ./mmproj.gguf\nFROM " + kTextModel + "\nSYSTEM look\n"), base_, {});
  ASSERT_GE(m2.layers.size(), 2u);
  EXPECT_EQ(m2.layers[0].digest, m.layers[0].digest);
  EXPECT_EQ(m2.layers[1].digest, m.layers[1].digest);
  EXPECT_EQ(m2.layers[1].media_type, media::kProjector);

  // FROM a model inherits its projector; a new projector FROM replaces it.
  create_model(store, parse_model_name("child"), parse_modelfile("FROM seeing\nSYSTEM hi\n"), base_, {});
  EXPECT_EQ(store.resolve(parse_model_name("child")).projectors, r.projectors);
  write_narrow_projector(base_ / "other.gguf", 256);  // same width, different bytes
  const Manifest m3 = create_model(store, parse_model_name("child2"),
                                   parse_modelfile("FROM seeing\nFROM other.gguf\n"), base_, {});
  int projectors = 0;
  for (const auto& l : m3.layers) projectors += l.media_type == media::kProjector;
  EXPECT_EQ(projectors, 1);
  EXPECT_EQ(m3.find_layer(media::kProjector)->digest, "sha256:" + sha256_file_hex(base_ / "other.gguf"));
}

TEST_F(StoreFixture, CreateRefusesForeignProjectors) {
  ModelStore store(cfg_);
  // A valid tower projecting to 128, for a text model of n_embd 256.
  write_narrow_projector(base_ / "narrow.gguf", 128);
  EXPECT_EQ(g3n::load_mmproj((base_ / "narrow.gguf").string()).config.text_width, 128);
  Modelfile mf;
  mf.from = kTextModel;
  mf.extra_from = {(base_ / "narrow.gguf").string()};
  std::string err = create_error(store, mf, base_);
  EXPECT_NE(err.find("text width"), std::string::npos) << err;
  EXPECT_NE(err.find("128"), std::string::npos) << err;
  EXPECT_NE(err.find("n_embd is 256"), std::string::npos) << err;
  // "clip" but not a gemma3nv tower.
  g3n::GgufWriter w;
  w.set_string("general.architecture", "clip");
  w.set_string("clip.projector_type", "mlp");
  w.write((base_ / "llava.gguf").string());
  mf.extra_from = {(base_ / "llava.gguf").string()};
  err = create_error(store, mf, base_);
  EXPECT_NE(err.find("not a valid gemma3nv vision projector"), std::string::npos) << err;
  // A second file that is not a projector: another text model, or not a GGUF at all.
  mf.extra_from = {kTextModel};
  err = create_error(store, mf, base_);
  EXPECT_NE(err.find("a second model (architecture \"gemma3n\")"), std::string::npos) << err;
  std::ofstream(base_ / "notes.gguf") << "text";
  err = create_error(store, parse_modelfile("FROM " + kTextModel + "\nFROM notes.gguf\n"), base_);
  EXPECT_NE(err.find("a second model (not a GGUF)"), std::string::npos) << err;
  // Two projectors; a projector alone.
  mf.extra_from = {kProjector, kProjector};
  EXPECT_NE(create_error(store, mf, base_).find("a second projector"), std::string::npos);
  EXPECT_NE(create_error(store, parse_modelfile("FROM " + kProjector), base_).find("text model is missing"),
            std::string::npos);
  // Every refusal happens before the first blob is written.
  std::error_code ec;
  EXPECT_TRUE(!fs::exists(store.blobs_dir(), ec) || fs::is_empty(store.blobs_dir(), ec));
  EXPECT_TRUE(store.list().empty());
}

TEST_F(StoreFixture, CliCreateWithMmprojAndShow) {
  using g3n::test::kG3n;
  using g3n::test::run_capture;
  const std::string env = "G3N_MODELS=" + (base_ / "g3n").string() + " OLLAMA_MODELS=" + (base_ / "ollama").string() + " ";
  int st = 0;
  run_capture(env + kG3n + " create seeing --from " + kTextModel + " --mmproj " + kProjector + " 2>&1", st);
  ASSERT_EQ(st, 0);
  const std::string out = run_capture(env + kG3n + " show seeing", st);
  ASSERT_EQ(st, 0) << out;
  EXPECT_NE(out.find("Capabilities\n    completion\n    vision\n    tools\n    embedding\n"), std::string::npos) << out;
  EXPECT_NE(out.find("  Projector\n    architecture        clip\n"), std::string::npos) << out;
  EXPECT_NE(out.find("projector type      gemma3nv"), std::string::npos) << out;
  EXPECT_NE(out.find("image size          512"), std::string::npos) << out;
  EXPECT_NE(out.find("dimensions          256"), std::string::npos) << out;
  const std::string mf = run_capture(env + kG3n + " show seeing --modelfile", st);
  EXPECT_EQ(st, 0);
  EXPECT_NE(mf.find("\nFROM " + (base_ / "g3n" / "blobs" / ("sha256-" + sha256_file_hex(kProjector))).string() + "\n"),
            std::string::npos) << mf;
  // Refused at create: a second text model; nothing is stored under the name.
  const std::string err =
      run_capture(env + kG3n + " create bad --from " + kTextModel + " --mmproj " + kTextModel + " 2>&1", st);
  EXPECT_NE(st, 0);
  EXPECT_NE(err.find("vision projector"), std::string::npos) << err;
  run_capture(env + kG3n + " show bad 2>&1", st);
  EXPECT_NE(st, 0);
  // Without a projector: completion only.
  run_capture(env + kG3n + " create plain --from " + kTextModel + " 2>&1", st);
  const std::string plain = run_capture(env + kG3n + " show plain", st);
  EXPECT_EQ(plain.find("vision"), std::string::npos) << plain;
  EXPECT_EQ(plain.find("Projector"), std::string::npos) << plain;
}

}  // namespace
