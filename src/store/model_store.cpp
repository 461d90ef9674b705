#include "store/model_store.h"

#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <set>
#include <vector>

#include "base/json_nesting.h"

namespace g3n::store {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string trim_env(const char* v) {
  if (!v) return {};
  std::string s(v);
  auto strip = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' || c == '\''; };
  while (!s.empty() && strip(s.front())) s.erase(s.begin());
  while (!s.empty() && strip(s.back())) s.pop_back();
  return s;
}

Descriptor parse_descriptor(const json& j, const char* what) {
  if (!j.is_object()) throw StoreError(std::string("manifest: ") + what + " is not an object");
  Descriptor d;
  if (!j.contains("digest") || !j["digest"].is_string())
    throw StoreError(std::string("manifest: ") + what + " has no digest");
  d.digest = j["digest"].get<std::string>();
  if (!is_valid_digest(d.digest)) throw StoreError("manifest: invalid digest format: " + d.digest);
  if (j.contains("mediaType") && j["mediaType"].is_string()) d.media_type = j["mediaType"].get<std::string>();
  if (j.contains("size") && j["size"].is_number_integer()) d.size = j["size"].get<int64_t>();
  if (d.size < 0) throw StoreError("manifest: negative size for " + d.digest);
  if (j.contains("from") && j["from"].is_string()) d.from = j["from"].get<std::string>();
  return d;
}

nlohmann::ordered_json descriptor_json(const Descriptor& d) {
  // nlohmann's ordered_json keeps insertion order, which is Ollama's field order.
  nlohmann::ordered_json j;
  j["mediaType"] = d.media_type;
  j["digest"] = d.digest;
  j["size"] = d.size;
  if (!d.from.empty()) j["from"] = d.from;
  return j;
}

// Looks for `want` in `dir`: the exact spelling first (cheap), then any case-insensitive match.
std::optional<std::string> find_entry_ci(const fs::path& dir, const std::string& want) {
  std::error_code ec;
  if (fs::exists(dir / want, ec)) return want;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string n = e.path().filename().string();
    if (iequals(n, want)) return n;
  }
  return std::nullopt;
}

}  // namespace

// ---- StoreConfig ----

StoreConfig StoreConfig::from_values(const char* g3n_models, const char* ollama_models, const char* home) {
  StoreConfig c;
  std::string h = trim_env(home);
  std::string g = trim_env(g3n_models);
  std::string o = trim_env(ollama_models);
  if (!g.empty()) c.root = g;
  else if (!h.empty()) c.root = fs::path(h) / ".g3n" / "models";
  else c.root = fs::path(".g3n") / "models";
  if (!o.empty()) c.ollama_root = fs::path(o);
  else if (!h.empty()) c.ollama_root = fs::path(h) / ".ollama" / "models";
  return c;
}

StoreConfig StoreConfig::from_environment() {
  const char* home = std::getenv("HOME");
  if (!home || !*home) {
    if (const passwd* pw = getpwuid(getuid())) home = pw->pw_dir;
  }
  StoreConfig c = from_values(std::getenv("G3N_MODELS"), std::getenv("OLLAMA_MODELS"), home);
  if (const char* np = std::getenv("OLLAMA_NOPRUNE"); np && *np) c.prune = false;
  return c;
}

// ---- Manifest ----

Manifest Manifest::parse(std::string_view text) {
  if (json_nesting_exceeds(text)) throw StoreError("manifest: invalid JSON: nested more than " + std::to_string(kMaxJsonNesting) + " deep");
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw StoreError(std::string("manifest: invalid JSON: ") + e.what());
  }
  if (!j.is_object()) throw StoreError("manifest: not a JSON object");
  Manifest m;
  if (j.contains("schemaVersion") && j["schemaVersion"].is_number_integer())
    m.schema_version = j["schemaVersion"].get<int>();
  if (j.contains("mediaType") && j["mediaType"].is_string()) m.media_type = j["mediaType"].get<std::string>();
  if (!j.contains("config")) throw StoreError("manifest: no config");
  m.config = parse_descriptor(j["config"], "config");
  if (!j.contains("layers") || !j["layers"].is_array()) throw StoreError("manifest: no layers");
  for (const auto& l : j["layers"]) m.layers.push_back(parse_descriptor(l, "layer"));
  // total_size() sums the sizes: refuse sizes no file can have rather than overflow (fuzz/manifest-regressions).
  int64_t total = m.config.size;
  for (const auto& l : m.layers)
    if (__builtin_add_overflow(total, l.size, &total)) throw StoreError("manifest: sizes add up past 2^63 bytes");
  return m;
}

std::string Manifest::serialize() const {
  nlohmann::ordered_json j;
  j["schemaVersion"] = schema_version;
  j["mediaType"] = media_type;
  j["config"] = descriptor_json(config);
  j["layers"] = nlohmann::ordered_json::array();
  for (const auto& l : layers) j["layers"].push_back(descriptor_json(l));
  return j.dump();
}

std::vector<std::string> Manifest::digests() const {
  std::vector<std::string> out;
  auto add = [&](const std::string& d) {
    if (std::find(out.begin(), out.end(), d) == out.end()) out.push_back(d);
  };
  for (const auto& l : layers) add(l.digest);
  add(config.digest);
  return out;
}

int64_t Manifest::total_size() const {
  int64_t s = config.size;
  for (const auto& l : layers) s += l.size;
  return s;
}

const Descriptor* Manifest::find_layer(std::string_view mt) const {
  for (const auto& l : layers)
    if (l.media_type == mt) return &l;
  return nullptr;
}

// ---- ModelStore ----

ModelStore::ModelStore(StoreConfig cfg) : cfg_(std::move(cfg)) {}

fs::path ModelStore::blob_path(std::string_view digest) const {
  return blobs_dir() / digest_to_filename(digest);
}

std::optional<fs::path> ModelStore::find_blob(std::string_view digest) const {
  const std::string fname = digest_to_filename(digest);
  std::error_code ec;
  fs::path p = blobs_dir() / fname;
  if (fs::is_regular_file(p, ec)) return p;
  if (cfg_.ollama_root) {
    p = *cfg_.ollama_root / "blobs" / fname;
    if (fs::is_regular_file(p, ec)) return p;
  }
  return std::nullopt;
}

std::optional<ModelStore::Found> ModelStore::find_in(const fs::path& root, const ModelName& n) const {
  fs::path dir = root / "manifests";
  ModelName on_disk = n;
  std::string* parts[4] = {&on_disk.host, &on_disk.ns, &on_disk.model, &on_disk.tag};
  for (std::string* p : parts) {
    auto e = find_entry_ci(dir, *p);
    if (!e) return std::nullopt;
    *p = *e;
    dir /= *e;
  }
  std::error_code ec;
  if (!fs::is_regular_file(dir, ec)) return std::nullopt;
  return Found{on_disk, dir, false};
}

ModelName ModelStore::canonical_name(const ModelName& n) const {
  // Substitute the on-disk spelling part by part, like Ollama's getExistingName, so a differently
  // cased name lands in the existing directories.
  ModelName out = n;
  fs::path dir = manifests_dir();
  std::string* parts[4] = {&out.host, &out.ns, &out.model, &out.tag};
  for (std::string* p : parts) {
    auto e = find_entry_ci(dir, *p);
    if (!e) break;
    *p = *e;
    dir /= *e;
  }
  return out;
}

std::optional<ModelStore::Found> ModelStore::find_manifest(const ModelName& n) const {
  if (auto f = find_in(cfg_.root, n)) return f;
  if (cfg_.ollama_root) {
    if (auto f = find_in(*cfg_.ollama_root, n)) {
      f->from_ollama = true;
      return f;
    }
  }
  return std::nullopt;
}

std::optional<Manifest> ModelStore::read_manifest(const ModelName& n) const {
  auto f = find_manifest(n);
  if (!f) return std::nullopt;
  return Manifest::parse(read_file(f->path));
}

void ModelStore::write_manifest(const ModelName& n, const Manifest& m) {
  for (const auto& d : m.digests())
    if (!find_blob(d)) throw StoreError("cannot write manifest for " + n.display() + ": blob " + d + " is missing");
  atomic_write_file(cfg_.root / canonical_name(n).manifest_relpath(), m.serialize());
}

std::string ModelStore::put_blob(std::string_view data) {
  const std::string digest = "sha256:" + sha256_hex(data);
  if (find_blob(digest)) return digest;
  atomic_write_file(blob_path(digest), data);
  return digest;
}

std::string ModelStore::put_blob_file(const fs::path& src) {
  std::error_code ec;
  fs::create_directories(blobs_dir(), ec);
  if (ec) throw StoreError("cannot create " + blobs_dir().string() + ": " + ec.message());
  const UniqueFd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) throw StoreError(errno_message("cannot open", src, errno));
  try {
    // The name is the content's digest, known only at the end: written as "blob", renamed to the digest.
    AtomicFileWriter out(blobs_dir() / "blob");
    // Hash while copying: one pass over a multi-GB file.
    Sha256 h;
    std::vector<char> buf(4 << 20);
    for (;;) {
      ssize_t n = ::read(in.get(), buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        throw StoreError(errno_message("cannot read", src, errno));
      }
      if (n == 0) break;
      h.update(buf.data(), size_t(n));
      out.write(buf.data(), size_t(n));
    }
    const std::string digest = "sha256:" + h.hex();
    if (!find_blob(digest)) out.commit(blob_path(digest));
    return digest;
  } catch (const IoError& e) {
    throw StoreError(e.what());
  }
}

bool ModelStore::adopt_blob(std::string_view digest) {
  const fs::path mine = blob_path(digest);
  std::error_code ec;
  if (fs::is_regular_file(mine, ec)) return true;
  auto found = find_blob(digest);
  if (!found) return false;
  fs::create_directories(blobs_dir(), ec);
  // A hard link costs nothing and keeps the blob alive if Ollama later deletes its copy; when it
  // fails (other filesystem, permissions) the blob is simply used where it is.
  fs::create_hard_link(*found, mine, ec);
  return true;
}

ResolvedModel ModelStore::resolve(const ModelName& n) const {
  auto f = find_manifest(n);
  if (!f) throw StoreError("model '" + n.display() + "' not found");
  ResolvedModel r;
  r.name = f->name;
  r.manifest_path = f->path;
  r.from_ollama = f->from_ollama;
  r.manifest = Manifest::parse(read_file(f->path));
  auto blob = [&](const Descriptor& d) {
    auto p = find_blob(d.digest);
    if (!p) throw StoreError("model '" + n.display() + "' is incomplete: blob " + d.digest + " is missing");
    return *p;
  };
  bool have_model = false;
  for (const auto& l : r.manifest.layers) {
    const std::string& mt = l.media_type;
    if (mt == media::kModel) {
      if (!have_model) r.model_path = blob(l);  // the first model layer is the weights
      have_model = true;
    } else if (mt == media::kProjector) {
      r.projectors.push_back(blob(l));
    } else if (mt == media::kAdapter) {
      r.adapters.push_back(blob(l));
    } else if (mt == media::kTemplate || mt == media::kPrompt) {
      r.template_text = read_file(blob(l));
    } else if (mt == media::kSystem) {
      r.system = read_file(blob(l));
    } else if (mt == media::kLicense) {
      r.licenses.push_back(read_file(blob(l)));
    } else if (mt == media::kParams) {
      try {
        const std::string text = read_file(blob(l));
        if (json_nesting_exceeds(text))
          throw StoreError("model '" + n.display() + "': invalid params layer: nested more than " + std::to_string(kMaxJsonNesting) + " deep");
        r.params = json::parse(text);
      } catch (const json::exception& e) {
        throw StoreError("model '" + n.display() + "': invalid params layer: " + e.what());
      }
      if (!r.params.is_object()) throw StoreError("model '" + n.display() + "': params layer is not an object");
    } else if (mt == media::kMessages) {
      try {
        const std::string text = read_file(blob(l));
        r.messages = json_nesting_exceeds(text) ? json::array() : json::parse(text);
      } catch (const json::exception&) {
        r.messages = json::array();  // optional seed conversation: unusable data is dropped
      }
    }
    // Other layer types are kept on disk but not used.
  }
  if (!have_model) throw StoreError("model '" + n.display() + "' has no model layer");
  if (auto cp = find_blob(r.manifest.config.digest)) {
    try {
      const std::string text = read_file(*cp);
      r.config = json_nesting_exceeds(text) ? json::object() : json::parse(text);
    } catch (const json::exception&) {
      r.config = json::object();  // the config only feeds `show`/`list` details
    }
  }
  return r;
}

std::vector<std::pair<ModelName, fs::path>> ModelStore::manifests_in(const fs::path& root) const {
  std::vector<std::pair<ModelName, fs::path>> out;
  const fs::path base = root / "manifests";
  std::error_code ec;
  if (!fs::is_directory(base, ec)) return out;
  // Exactly four levels: host/ns/model/tag. Anything else is not a manifest.
  for (auto it = fs::recursive_directory_iterator(base, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it.depth() != 3 || !it->is_regular_file(ec)) continue;
    const fs::path rel = fs::relative(it->path(), base, ec);
    std::vector<std::string> parts;
    for (const auto& p : rel) parts.push_back(p.string());
    if (parts.size() != 4 || parts[3].starts_with(".")) continue;  // skip temp files
    ModelName n;
    if (!try_parse_model_name(parts[0] + "/" + parts[1] + "/" + parts[2] + ":" + parts[3], &n)) continue;
    out.emplace_back(n, it->path());
  }
  return out;
}

std::vector<ListEntry> ModelStore::list() const {
  std::vector<ListEntry> out;
  auto collect = [&](const fs::path& root, bool ollama) {
    std::vector<ListEntry> part;
    for (const auto& found : manifests_in(root)) {
      const ModelName& n = found.first;  // not a structured binding: clang 14 (the fuzz build) cannot capture one
      const fs::path& path = found.second;
      if (ollama && std::any_of(out.begin(), out.end(), [&](const ListEntry& e) { return e.name.same_as(n); }))
        continue;  // shadowed by g3n's own copy
      ListEntry e;
      try {
        std::string bytes = read_file(path);
        Manifest m = Manifest::parse(bytes);
        e.id = sha256_hex(bytes).substr(0, 12);
        e.size = m.total_size();
      } catch (const StoreError&) {
        continue;  // unreadable manifests are skipped, as Ollama does
      }
      std::error_code ec;
      e.name = n;
      e.modified = fs::last_write_time(path, ec);
      e.from_ollama = ollama;
      part.push_back(std::move(e));
    }
    std::sort(part.begin(), part.end(), [](const ListEntry& a, const ListEntry& b) {
      if (a.modified != b.modified) return a.modified > b.modified;
      return a.name.full() < b.name.full();
    });
    out.insert(out.end(), part.begin(), part.end());
  };
  collect(cfg_.root, false);
  if (cfg_.ollama_root && *cfg_.ollama_root != cfg_.root) collect(*cfg_.ollama_root, true);
  return out;
}

std::vector<std::string> ModelStore::prune_unreferenced(const std::vector<std::string>& candidates) const {
  std::vector<std::string> removed;
  if (!cfg_.prune || candidates.empty()) return removed;
  std::set<std::string> used;
  for (const auto& [n, path] : manifests_in(cfg_.root)) {
    try {
      for (const auto& d : Manifest::parse(read_file(path)).digests()) used.insert(digest_to_filename(d));
    } catch (const StoreError&) {
      return removed;  // a corrupt manifest makes "unreferenced" unknowable: delete nothing
    }
  }
  for (const auto& d : candidates) {
    if (!is_valid_digest(d)) continue;
    const std::string fname = digest_to_filename(d);
    if (used.count(fname)) continue;
    std::error_code ec;
    if (fs::remove(blobs_dir() / fname, ec)) removed.push_back(d);
  }
  return removed;
}

void ModelStore::remove(const ModelName& n) {
  auto f = find_in(cfg_.root, n);
  if (!f) {
    if (cfg_.ollama_root && find_in(*cfg_.ollama_root, n))
      throw StoreError("model '" + n.display() + "' is in Ollama's store (" + cfg_.ollama_root->string() +
                       "), which g3n only reads; remove it with `ollama rm`");
    throw StoreError("model '" + n.display() + "' not found");
  }
  std::vector<std::string> candidates;
  try {
    candidates = Manifest::parse(read_file(f->path)).digests();
  } catch (const StoreError&) {
    // A corrupt manifest is still removable; its blobs are left for a later prune.
  }
  std::error_code ec;
  if (!fs::remove(f->path, ec) || ec) throw StoreError("cannot remove " + f->path.string() + ": " + ec.message());
  fsync_dir(f->path.parent_path());
  // Drop now-empty directories up to manifests/ so list and Ollama see no ghost entries.
  for (fs::path d = f->path.parent_path(); d != manifests_dir() && d.string().size() > manifests_dir().string().size();
       d = d.parent_path()) {
    if (!fs::is_empty(d, ec) || ec || !fs::remove(d, ec)) break;
  }
  prune_unreferenced(candidates);
}

void ModelStore::copy(const ModelName& src, const ModelName& dst) {
  auto f = find_manifest(src);
  if (!f) throw StoreError("model '" + src.display() + "' not found");
  const std::string bytes = read_file(f->path);
  const Manifest m = Manifest::parse(bytes);
  for (const auto& d : m.digests()) {
    if (!find_blob(d)) throw StoreError("model '" + src.display() + "' is incomplete: blob " + d + " is missing");
    if (f->from_ollama) adopt_blob(d);
  }
  // The bytes are copied verbatim so both names show the same ID, as in Ollama.
  atomic_write_file(cfg_.root / canonical_name(dst).manifest_relpath(), bytes);
}

}  // namespace g3n::store
