// How deeply JSON text nests arrays and objects, found by a scan before parsing. nlohmann's parser is
// iterative, but copying, comparing and dumping a parsed value recurse, so a value from outside (a request
// body, a downloaded manifest, a checkpoint's config, a slice file) nested a few hundred thousand deep would
// overflow the stack later. Callers refuse text past kMaxJsonNesting with their own error.
#pragma once
#include <string_view>

namespace g3n {

// Far more than any request, schema, manifest or config needs; recursion this deep uses a few hundred KB.
inline constexpr int kMaxJsonNesting = 256;

// Whether `text` opens more than `limit` arrays or objects inside one another (brackets in strings do not
// count). Invalid JSON is the parser's to reject: this only looks at the brackets.
bool json_nesting_exceeds(std::string_view text, int limit = kMaxJsonNesting);

}  // namespace g3n
