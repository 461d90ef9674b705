// Images in requests: decoding what the APIs send (base64, data URLs) into checked image bytes, and
// encoding a prompt's images into its rows. Encoding runs in the request's own thread, beside the
// scheduler's decode loop (other sequences keep generating), on the model's ImageEncoder (its own
// thread pool, a content-keyed cache), and stops when the client goes away.
#pragma once
#include <string>
#include <string_view>

#include "server/http_types.h"
#include "server/model_manager.h"
#include "server/prompt.h"

namespace g3n::server {

struct ServerState;

// Base64 image data as Ollama's `images` carry it (a data URL is accepted too). The bytes' header is
// checked at once (a known format, dimensions within the pixel limit); the rest when it is decoded.
// HttpError(400) naming `where` on any problem.
ImageInput image_from_base64(std::string_view text, std::string where);
// An OpenAI image_url: a data URL only (remote URLs are refused: the server makes no outbound requests).
ImageInput image_from_url(std::string_view url, std::string where);

// What an image takes in this model's prompts; when `needed` and the model has no projector (or its
// projector failed to load), the HttpError LoadedModel::image_encoder() throws.
ImageShape image_shape(const LoadedModel& m, bool needed);

// Encodes bp.images (cache hits are free) and lays out bp.rows from bp.text; a no-op for text prompts.
// HttpError 400 for an image that does not decode, 499 when the client went away during the encode
// (the encode stops between tower blocks), 503 when the server is stopping.
void encode_prompt_images(ServerState& s, const LoadedModel& m, const HttpRequest& req, BuiltPrompt& bp);

}  // namespace g3n::server
