// Strict number and boolean parsing for text from users (command lines, Modelfiles, /set): the whole
// string must be the value (no blanks, no sign '+', no trailing text) and inside the given range.
// std::from_chars underneath, so the C locale never matters.
#pragma once
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>
#include <system_error>

namespace g3n {

// A decimal integer in [min, max]; nullopt otherwise.
inline std::optional<int64_t> parse_int(std::string_view s, int64_t min = std::numeric_limits<int64_t>::min(),
                                        int64_t max = std::numeric_limits<int64_t>::max()) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < min || v > max) return std::nullopt;
  return v;
}

// A finite decimal or exponent-form number ("0.7", "1e-3") in [min, max]; nullopt otherwise (also for
// "inf" and "nan").
inline std::optional<double> parse_double(std::string_view s, double min = -std::numeric_limits<double>::max(),
                                          double max = std::numeric_limits<double>::max()) {
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v) || v < min || v > max)
    return std::nullopt;
  return v;
}

// "true"/"false" in any case, or "1"/"0".
inline std::optional<bool> parse_bool(std::string_view s) {
  auto is = [&](std::string_view word) {
    if (s.size() != word.size()) return false;
    for (size_t i = 0; i < s.size(); ++i)
      if ((s[i] | 0x20) != word[i]) return false;
    return true;
  };
  if (s == "1" || is("true")) return true;
  if (s == "0" || is("false")) return false;
  return std::nullopt;
}

}  // namespace g3n
