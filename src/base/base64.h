// Base64 (RFC 4648, standard alphabet): decoding for data that arrives in JSON (images in API requests),
// encoding for binary answers (embeddings with encoding_format "base64").
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace g3n {

// Decodes `text`. Padding is optional ('=' only at the end, at most two); ASCII whitespace (line
// breaks of wrapped encoders) is skipped. On failure returns nullopt and, when `error` is given, says
// why with the offending offset ("invalid character '%' at offset 12").
std::optional<std::vector<uint8_t>> base64_decode(std::string_view text, std::string* error = nullptr);

// Encodes `bytes` with '=' padding and no line breaks.
std::string base64_encode(std::string_view bytes);

}  // namespace g3n
