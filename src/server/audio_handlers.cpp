// POST /v1/audio/transcriptions and /v1/audio/translations (OpenAI's speech API) on Gemma 3n: the upload is
// decoded once, cut into 30 s chunks (each exactly one reference clip), and each chunk is its own greedy
// generation with a fixed instruction (docs/audio.md lists them); the texts are joined, so an hour of
// speech works. OpenAI's model names ("whisper-1", "gpt-4o-transcribe") map to G3N_TRANSCRIBE_MODEL.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "audio/clip.h"
#include "base/parse.h"
#include "chat/chat.h"
#include "chat/media_prompt.h"
#include "server/generation.h"
#include "server/handlers.h"
#include "server/media.h"
#include "server/options.h"
#include "server/responses.h"

namespace g3n::server {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// Tokens one 30 s chunk may take: fast speech is under 100 words in 30 s, so this never cuts real speech
// and stops a model that does not end its answer.
constexpr int kTokensPerChunk = 448;

enum class Format { Json, Text, VerboseJson, Srt, Vtt };

struct SpeechRequest {
  std::string model, prompt, language;
  Format format = Format::Json;
  double temperature = 0;
  bool translate = false;
};

// A form field's text without surrounding whitespace (empty when absent).
std::string field(const HttpRequest& req, const char* name) {
  const FormPart* p = req.part(name);
  return p ? chat::trim(p->content) : std::string();
}

SpeechRequest parse_speech(const HttpRequest& req, bool translate) {
  if (req.form.empty())
    throw HttpError(400, "expected a multipart/form-data body with a \"file\" part and a \"model\" field");
  SpeechRequest r;
  r.translate = translate;
  const FormPart* file = req.part("file");
  if (!file || file->content.empty()) throw HttpError(400, "file is required (the audio, as a multipart file part)");
  r.model = field(req, "model");
  if (r.model.empty()) throw HttpError(400, "model is required");
  r.prompt = field(req, "prompt");
  if (r.prompt.size() > 4096) throw HttpError(400, "prompt is too long (at most 4096 bytes)");
  r.language = field(req, "language");
  if (translate && !r.language.empty()) throw HttpError(400, "language is not a field of /v1/audio/translations (the output is English)");
  if (!r.language.empty()) {
    bool ok = r.language.size() >= 2 && r.language.size() <= 3;
    for (char c : r.language) ok = ok && std::isalpha(static_cast<unsigned char>(c));
    if (!ok) throw HttpError(400, "invalid language \"" + r.language + "\": expected an ISO-639-1 code such as \"en\"");
    for (char& c : r.language) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  const std::string fmt = field(req, "response_format");
  if (fmt.empty() || fmt == "json") r.format = Format::Json;
  else if (fmt == "text") r.format = Format::Text;
  else if (fmt == "verbose_json") r.format = Format::VerboseJson;
  else if (fmt == "srt") r.format = Format::Srt;
  else if (fmt == "vtt") r.format = Format::Vtt;
  else throw HttpError(400, "invalid response_format \"" + fmt + "\": expected json, text, verbose_json, srt or vtt");
  if (const std::string t = field(req, "temperature"); !t.empty()) {
    const auto v = parse_double(t);
    if (!v || *v < 0 || *v > 2) throw HttpError(400, "invalid temperature \"" + t + "\": expected a number from 0 to 2");
    r.temperature = *v;
  }
  return r;
}

// OpenAI's speech model names, which no store model has.
bool openai_speech_name(const std::string& name) {
  return name.rfind("whisper", 0) == 0 || name.find("transcribe") != std::string::npos;
}

std::string language_name(const std::string& code) {
  static const std::pair<const char*, const char*> kNames[] = {
      {"en", "English"},   {"de", "German"},    {"fr", "French"},   {"es", "Spanish"},    {"it", "Italian"},  {"pt", "Portuguese"},
      {"nl", "Dutch"},     {"pl", "Polish"},    {"ru", "Russian"},  {"uk", "Ukrainian"},  {"tr", "Turkish"},  {"ar", "Arabic"},
      {"hi", "Hindi"},     {"bn", "Bengali"},   {"ja", "Japanese"}, {"ko", "Korean"},     {"zh", "Chinese"},  {"vi", "Vietnamese"},
      {"th", "Thai"},      {"id", "Indonesian"}, {"sv", "Swedish"}, {"da", "Danish"},     {"no", "Norwegian"}, {"fi", "Finnish"},
      {"cs", "Czech"},     {"el", "Greek"},     {"he", "Hebrew"},   {"hu", "Hungarian"},  {"ro", "Romanian"}, {"fa", "Persian"}};
  for (const auto& [c, n] : kNames)
    if (code == c) return n;
  return "the language with ISO-639-1 code \"" + code + "\"";
}

// The instruction after one chunk's audio block. `before`: the end of the previous chunk's text, so a
// sentence cut by the 30 s boundary reads on.
std::string instruction(const SpeechRequest& r, const std::string& before) {
  std::string s;
  if (r.translate) {
    s = "Translate this speech into English. Answer with the English translation only.";
  } else {
    s = "Transcribe this speech verbatim";
    s += r.language.empty() ? ", in the language it is spoken in" : " in " + language_name(r.language);
    s += ". Answer with the transcript only.";
  }
  if (!r.prompt.empty()) s += "\nContext: " + r.prompt;
  if (!before.empty()) s += "\nThe speech continues from: " + before;
  return s;
}

std::string clock_time(double seconds, char fraction_sep) {
  const auto ms = static_cast<long long>(seconds * 1000.0 + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld%c%03lld", ms / 3600000, ms / 60000 % 60, ms / 1000 % 60, fraction_sep, ms % 1000);
  return buf;
}

struct Segment {
  double start = 0, end = 0;
  std::string text;
  std::vector<int32_t> tokens;
  double encode_s = 0, generate_s = 0;
};

void answer(HttpResponse& res, const SpeechRequest& r, const std::vector<Segment>& segs, double duration) {
  std::string text;
  for (const Segment& g : segs)
    if (!g.text.empty()) text += (text.empty() ? "" : " ") + g.text;
  switch (r.format) {
    case Format::Json:
      set_json(res, 200, json{{"text", text}});
      return;
    case Format::Text:
      res.status = 200;
      res.content_type = "text/plain; charset=utf-8";
      res.body = text + "\n";
      return;
    case Format::VerboseJson: {
      json segments = json::array();
      for (size_t i = 0; i < segs.size(); ++i)
        segments.push_back({{"id", i},
                            {"seek", static_cast<int64_t>(segs[i].start * 100)},
                            {"start", segs[i].start},
                            {"end", segs[i].end},
                            {"text", segs[i].text},
                            {"tokens", segs[i].tokens},
                            {"temperature", r.temperature},
                            {"encode_seconds", segs[i].encode_s},
                            {"generate_seconds", segs[i].generate_s}});
      json j = {{"task", r.translate ? "translate" : "transcribe"},
                {"language", r.translate ? "english" : r.language.empty() ? "unknown" : language_name(r.language)},
                {"duration", duration},
                {"text", text},
                {"segments", segments}};
      set_json(res, 200, j);
      return;
    }
    case Format::Srt:
    case Format::Vtt: {
      const bool vtt = r.format == Format::Vtt;
      std::string out = vtt ? "WEBVTT\n\n" : "";
      for (size_t i = 0; i < segs.size(); ++i) {
        if (!vtt) out += std::to_string(i + 1) + "\n";
        out += clock_time(segs[i].start, vtt ? '.' : ',') + " --> " + clock_time(segs[i].end, vtt ? '.' : ',') + "\n" + segs[i].text + "\n\n";
      }
      res.status = 200;
      res.content_type = vtt ? "text/vtt; charset=utf-8" : "application/x-subrip; charset=utf-8";
      res.body = std::move(out);
      return;
    }
  }
}

void speech(ServerState& s, const HttpRequest& req, HttpResponse& res, bool translate) {
  const SpeechRequest r = parse_speech(req, translate);
  const std::string name = openai_speech_name(r.model) && !s.cfg.transcribe_model.empty() ? s.cfg.transcribe_model : r.model;
  const FormPart* file = req.part("file");
  const MediaInput clip = audio_from_bytes(std::vector<uint8_t>(file->content.begin(), file->content.end()), "file");
  const int64_t n_samples = static_cast<int64_t>(clip.wave->samples.size());
  ParamList options = parse_request_options(json{{"temperature", r.temperature}, {"num_predict", kTokensPerChunk}});
  std::vector<Segment> segs;
  for (int64_t k = 0; k < audio_chunk_count(n_samples); ++k) {
    std::unique_ptr<ModelManager::Lease> lease;
    double load_s = 0;
    try {
      lease = s.models.acquire(name, KeepAlive{}, &load_s);
    } catch (const ModelNotFound& e) {
      if (openai_speech_name(r.model) && s.cfg.transcribe_model.empty())
        throw ModelNotFound(std::string(e.what()) + " (set G3N_TRANSCRIBE_MODEL to the model that answers OpenAI's speech model names)");
      throw;
    }
    LoadedModel& m = **lease;
    (void)m.audio_encoder();  // 400 "model has no audio encoder" before any work
    // The chunk as a clip of its own: its rows never depend on the rest of the recording.
    const std::span<const float> part = audio_chunk(clip.wave->samples, k);
    auto wave = std::make_shared<Waveform>();
    wave->samples.assign(part.begin(), part.end());
    MediaInput in{chat::MediaKind::Audio, nullptr, "file", wave};
    const auto* raw = reinterpret_cast<const uint8_t*>(part.data());
    in.bytes = std::make_shared<const std::vector<uint8_t>>(raw, raw + part.size_bytes());  // the cache key's content
    Segment seg;
    seg.start = static_cast<double>(k * kAudioChunkSamples) / kAudioSampleRate;
    seg.end = seg.start + static_cast<double>(part.size()) / kAudioSampleRate;
    const std::string before = segs.empty() ? std::string() : segs.back().text.substr(segs.back().text.size() > 200 ? segs.back().text.size() - 200 : 0);
    const std::vector<InMessage> msgs = {{"user", chat::media_then_text(0, 1, instruction(r, before)), {in}}};
    const Parameters params = request_parameters(s.cfg, m, options);
    const ContextParams cp = context_params(m, params);
    BuiltPrompt bp = build_chat_prompt(msgs, std::nullopt, nullptr, *m.tok, cp.n_ctx, false, media_shape(m, false, true));
    const auto t0 = Clock::now();
    auto out = std::make_shared<OllamaGenerateOutput>();
    out->model = name;
    auto g = submit(s, std::move(lease), load_s, req, std::move(bp), params, nullptr, out);
    const double encode_s = std::chrono::duration<double>(Clock::now() - t0).count();
    GenerateStats st;
    seg.text = chat::trim(finish(s, req, *g, &st));
    seg.tokens = m.tok->encode(seg.text, false, false);
    seg.encode_s = encode_s;
    seg.generate_s = st.prompt_s + st.gen_s;
    segs.push_back(std::move(seg));
  }
  answer(res, r, segs, clip.wave->seconds());
}

}  // namespace

void openai_transcriptions(ServerState& s, const HttpRequest& req, HttpResponse& res) { speech(s, req, res, false); }

void openai_translations(ServerState& s, const HttpRequest& req, HttpResponse& res) { speech(s, req, res, true); }

}  // namespace g3n::server
