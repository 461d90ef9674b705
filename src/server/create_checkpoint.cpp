#include "server/create_checkpoint.h"

#include <signal.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

#include <cerrno>
#include <map>

#include "server/file_kind.h"
#include "server/options.h"
#include "tools/hf_checkpoint.h"
#include "tools/hf_tokenizer.h"

namespace g3n::server {
namespace {

namespace fs = std::filesystem;

// A checkpoint's JSON files are read whole by the converter; Gemma 3n's largest (tokenizer.json) is some
// 33 MB, so anything far past that is not a checkpoint file and must not be read into memory.
constexpr uintmax_t kMaxJsonBytes = 256u << 20;

bool ends_with_ci(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && strncasecmp(s.data() + s.size() - suffix.size(), suffix.data(), suffix.size()) == 0;
}

// The scratch area: beside the blobs, so that a staged blob is a hard link and a converted file becomes a
// blob by rename. The folder name carries the pid, for remove_stale_staging.
fs::path scratch_dir(const store::ModelStore& st) { return st.config().root / "tmp"; }
constexpr std::string_view kPrefix = "create-";

// A file name as the checkpoint directory will hold it ("./config.json" is "config.json").
std::string normal_name(const std::string& name) { return fs::path(name).lexically_normal().generic_string(); }

}  // namespace

bool is_checkpoint_upload(const store::ModelStore& st, const UploadedFiles& files) {
  for (const auto& [file, digest] : files) {
    const std::string name = normal_name(file);
    if (ends_with_ci(name, ".safetensors") || name == "config.json" || name == "model.safetensors.index.json") return true;
    if (is_safetensors_file(st.blob_path(digest))) return true;
  }
  return false;
}

std::unique_ptr<StagedCheckpoint> StagedCheckpoint::stage(const store::ModelStore& st, const UploadedFiles& files) {
  // The names first: these refusals cost nothing.
  std::map<std::string, fs::path> by_name;  // normal name -> blob
  for (const auto& [file, digest] : files) {
    const std::string name = normal_name(file);
    const fs::path blob = st.blob_path(digest);
    if (!by_name.emplace(name, blob).second) throw HttpError(400, "file \"" + file + "\" is given twice");
    if (is_gguf_file(blob))
      throw HttpError(400, "file \"" + file + "\" is a GGUF file, which a safetensors checkpoint cannot include; create the model from "
                           "the checkpoint, then add a projector with `from` and `files`");
    std::error_code ec;
    if (ends_with_ci(name, ".json") && fs::file_size(blob, ec) > kMaxJsonBytes && !ec)
      throw HttpError(400, "file \"" + file + "\" is over " + std::to_string(kMaxJsonBytes >> 20) + " MiB, too large for a checkpoint's JSON file");
  }
  if (!by_name.count("config.json")) throw HttpError(400, "the checkpoint's config.json is missing from files");
  if (!by_name.count("tokenizer.json"))
    throw HttpError(400, std::string("the checkpoint's tokenizer.json is missing from files (g3n converts the tokenizer from "
                                     "tokenizer.json") + (by_name.count("tokenizer.model") ? "; tokenizer.model alone is not enough)" : ")"));

  std::error_code ec;
  fs::create_directories(scratch_dir(st), ec);
  if (ec) throw HttpError(500, "cannot create " + scratch_dir(st).string() + ": " + ec.message());
  std::string tmpl = (scratch_dir(st) / (std::string(kPrefix) + std::to_string(getpid()) + "-XXXXXX")).string();
  if (!mkdtemp(tmpl.data())) throw HttpError(500, "cannot create a staging directory in " + scratch_dir(st).string());
  // Owned from here on: any refusal below removes the directory with it.
  std::unique_ptr<StagedCheckpoint> sc(new StagedCheckpoint(tmpl));
  for (const auto& [name, blob] : by_name) {
    const fs::path to = sc->checkpoint_dir() / name;
    fs::create_directories(to.parent_path(), ec);
    if (ec) throw HttpError(500, "cannot stage \"" + name + "\": " + ec.message());
    // Blobs never change once written, so a link is as good as a copy, and costs no space or time.
    fs::create_hard_link(blob, to, ec);
    if (ec) fs::copy_file(blob, to, ec);
    if (ec) throw HttpError(500, "cannot stage \"" + name + "\": " + ec.message());
  }
  try {
    const HfCheckpoint ck = HfCheckpoint::open(sc->checkpoint_dir().string());
    // The tokenizer too, so that a bad tokenizer.json is a 400 before any writing rather than an error
    // after the conversion has started.
    read_hf_vocab(ck.dir(), ck.text(), GgufLayout::Ollama, ck.generation_eos());
  } catch (const std::exception& e) {
    throw HttpError(400, sc->client_message(e.what()));
  }
  return sc;
}

StagedCheckpoint::~StagedCheckpoint() {
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string StagedCheckpoint::client_message(std::string msg) const {
  // The converter names files by their paths; the client knows them by the names it uploaded.
  for (const std::string& p : {checkpoint_dir().string() + "/", checkpoint_dir().string(), dir_.string() + "/"}) {
    const std::string with = p == checkpoint_dir().string() ? "the checkpoint" : "";
    for (size_t at = 0; (at = msg.find(p, at)) != std::string::npos; at += with.size()) msg.replace(at, p.size(), with);
  }
  return msg;
}

HfConvertReport StagedCheckpoint::convert(QuantTarget target, const std::string& name, int n_threads,
                                          const std::function<void(uint64_t done, uint64_t total)>& progress) const {
  HfConvertOptions opt;
  opt.target = target;
  opt.layout = GgufLayout::Ollama;  // as Ollama's create makes it, so both tools run the model alike
  opt.n_threads = n_threads;
  opt.name = name;
  opt.progress = progress;
  try {
    return convert_hf_checkpoint(checkpoint_dir().string(), dir_ / "out", opt);
  } catch (const HfCheckpointError& e) {
    throw HttpError(400, client_message(e.what()));
  }
}

void remove_stale_staging(const store::ModelStore& st) {
  std::error_code ec;
  for (fs::directory_iterator it(scratch_dir(st), ec), end; !ec && it != end; it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if (n.rfind(kPrefix, 0) != 0) continue;
    const pid_t pid = static_cast<pid_t>(std::atol(n.c_str() + kPrefix.size()));
    // This process's own are in use; another live process's may be too.
    if (pid <= 0 || pid == getpid() || !(kill(pid, 0) == -1 && errno == ESRCH)) continue;
    std::error_code rm;
    fs::remove_all(it->path(), rm);
  }
}

}  // namespace g3n::server
