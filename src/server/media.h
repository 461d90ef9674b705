// Images and audio in requests: decoding what the APIs send (base64, data URLs, form uploads) into checked
// bytes (images: the header; audio: decoded to 16 kHz at once), and encoding a prompt's media into its rows.
// Encoding runs in the request's own thread, beside the scheduler's decode loop (other sequences keep
// generating), on the model's encoders (each its own thread pool and content-keyed cache), and stops when
// the client goes away.
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
MediaInput image_from_base64(std::string_view text, std::string where);
// An OpenAI image_url: a data URL only (remote URLs are refused: the server makes no outbound requests).
MediaInput image_from_url(std::string_view url, std::string where);
// Base64 audio (g3n's `audio` arrays, OpenAI's input_audio data; a data URL is accepted too) and raw file
// bytes (a form upload), decoded at once: HttpError(400) naming `where` for a file that does not decode or
// is too short, 413 for one over the size limit.
MediaInput audio_from_base64(std::string_view text, std::string where);
MediaInput audio_from_bytes(std::vector<uint8_t> bytes, std::string where);

// What an image and a 30 s audio block take in this model's prompts; when a kind is `needed` and the model
// lacks that tower (or its projector failed to load), the HttpError the encoder accessor throws.
MediaShape media_shape(const LoadedModel& m, bool need_images, bool need_audio);

// Encodes bp.media (cache hits are free) and lays out bp.rows from bp.text; a no-op for text prompts.
// HttpError 400 for media that do not decode, 499 when the client went away during an encode (it stops
// between tower blocks), 503 when the server is stopping.
void encode_prompt_media(ServerState& s, const LoadedModel& m, const HttpRequest& req, BuiltPrompt& bp);

}  // namespace g3n::server
