// The endpoint handlers, by API. Each parses its request once (requests.h), then does the work; errors
// are exceptions that the HTTP wiring answers in the route's error style.
#pragma once
#include <chrono>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "server/http_types.h"
#include "server/state.h"
#include "store/model_store.h"

namespace g3n::server {

// Ollama generation (ollama_handlers.cpp).
void ollama_generate(ServerState& s, const HttpRequest& req, HttpResponse& res);
void ollama_chat(ServerState& s, const HttpRequest& req, HttpResponse& res);

// Embeddings (embed_handlers.cpp): Ollama's /api/embed and older /api/embeddings, OpenAI's /v1/embeddings.
void ollama_embed(ServerState& s, const HttpRequest& req, HttpResponse& res);
void ollama_embeddings(ServerState& s, const HttpRequest& req, HttpResponse& res);
void openai_embeddings(ServerState& s, const HttpRequest& req, HttpResponse& res);

// Ollama model management (model_handlers.cpp).
void ollama_tags(ServerState& s, const HttpRequest& req, HttpResponse& res);
void ollama_show(ServerState& s, const HttpRequest& req, HttpResponse& res);
void ollama_pull(ServerState& s, const HttpRequest& req, HttpResponse& res);
void ollama_delete(ServerState& s, const HttpRequest& req, HttpResponse& res);
void ollama_copy(ServerState& s, const HttpRequest& req, HttpResponse& res);

// Making models over HTTP: blob upload (blob_handlers.cpp; the upload route streams its body) and
// POST /api/create from uploaded blobs and store models, never paths (create_handlers.cpp).
void ollama_blob_head(ServerState& s, const HttpRequest& req, HttpResponse& res);    // params[0]: the digest
void ollama_blob_upload(ServerState& s, const HttpRequest& req, HttpResponse& res);  // params[0]: the digest
void ollama_create(ServerState& s, const HttpRequest& req, HttpResponse& res);

// OpenAI-compatible /v1 (openai_handlers.cpp).
void openai_chat(ServerState& s, const HttpRequest& req, HttpResponse& res);
void openai_completions(ServerState& s, const HttpRequest& req, HttpResponse& res);
void openai_models(ServerState& s, const HttpRequest& req, HttpResponse& res);  // params[0]: one model

// OpenAI's speech endpoints (audio_handlers.cpp): multipart uploads, each 30 s chunk transcribed (or
// translated into English) as its own generation, the texts joined.
void openai_transcriptions(ServerState& s, const HttpRequest& req, HttpResponse& res);
void openai_translations(ServerState& s, const HttpRequest& req, HttpResponse& res);

// Administration (admin_handlers.cpp): "/", version, loaded models, metrics.
void admin_root(ServerState& s, const HttpRequest& req, HttpResponse& res);
void admin_version(ServerState& s, const HttpRequest& req, HttpResponse& res);
void admin_ps(ServerState& s, const HttpRequest& req, HttpResponse& res);
void admin_metrics(ServerState& s, const HttpRequest& req, HttpResponse& res);

// Shared by the model listings: Ollama's "details" object for a store model (null: a bare file).
nlohmann::json model_details(const store::ResolvedModel* r, const std::filesystem::path& gguf);
// A file time as the system clock's.
std::chrono::system_clock::time_point to_system_time(std::filesystem::file_time_type t);

}  // namespace g3n::server
