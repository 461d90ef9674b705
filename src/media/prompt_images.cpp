#include "media/prompt_images.h"

#include "media/audio.h"

#include <array>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <system_error>

namespace g3n {
namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
bool is_word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_line_end(char c) { return c == '\n' || c == '\r'; }
bool is_quote(char c) { return c == '\'' || c == '"'; }

// Where a path may begin: the prompt's start, or after whitespace, an opening bracket or a quote.
bool word_start(std::string_view s, size_t i) {
  if (i == 0) return true;
  const char p = s[i - 1];
  return is_space(p) || p == '(' || p == '[' || p == '{' || is_quote(p);
}

bool starts_like_path(std::string_view s) {
  return s.starts_with("/") || s.starts_with("./") || s.starts_with("../") || s.starts_with("~/");
}

std::string expand_home(const std::string& path, std::string_view home) {
  if (home.empty() || !path.starts_with("~/")) return path;
  std::string out(home);
  if (out.back() == '/') out.pop_back();
  return out + path.substr(1);
}

// Shell escapes ("\ ", "\(", ...: a backslash before anything but a letter or digit) and "%20".
std::string unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && !is_word_char(s[i + 1]) && !is_line_end(s[i + 1])) {
      out += s[++i];
    } else if (s.substr(i, 3) == "%20") {
      out += ' ';
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Longer runs are not looked at (PATH_MAX on Linux), so a long pasted line costs O(length) per word start.
constexpr size_t kMaxPath = 4096;

struct Match {
  size_t end = 0;  // one past the last character taken from the prompt
  PromptImage image;
};

// A quoted path at s[i] (the opening quote): the whole quoted word, as written or with its escapes resolved.
std::optional<Match> quoted_path(std::string_view s, size_t i, const std::function<bool(const std::string&)>& exists,
                                 std::string_view home) {
  size_t j = i + 1;
  while (j < s.size() && s[j] != s[i] && !is_line_end(s[j])) ++j;
  if (j >= s.size() || s[j] != s[i]) return std::nullopt;
  const std::string_view inner = s.substr(i + 1, j - i - 1);
  if (!starts_like_path(inner) || !has_media_extension(inner)) return std::nullopt;
  for (const std::string& written : {std::string(inner), unescape(inner)}) {
    const std::string path = expand_home(written, home);
    if (exists(path)) return Match{j + 1, {written, path, !has_image_extension(written)}};
  }
  return std::nullopt;
}

// An unquoted path starting at s[i]: the run up to the first image extension, if it names a file.
std::optional<Match> bare_path(std::string_view s, size_t i, const std::function<bool(const std::string&)>& exists,
                               std::string_view home) {
  if (!starts_like_path(s.substr(i))) return std::nullopt;
  std::string written;
  for (size_t j = i; j < s.size() && !is_line_end(s[j]) && j - i < kMaxPath;) {
    if (s[j] == '\\' && j + 1 < s.size() && !is_word_char(s[j + 1]) && !is_line_end(s[j + 1])) {
      written += s[j + 1];
      j += 2;
    } else if (s.substr(j, 3) == "%20") {
      written += ' ';
      j += 3;
    } else {
      written += s[j++];
    }
    if ((j == s.size() || !is_word_char(s[j])) && has_media_extension(written)) {
      // The first media name from here is the candidate (Ollama's shortest match); no file: no path here.
      const std::string path = expand_home(written, home);
      if (exists(path)) return Match{j, {written, path, !has_image_extension(written)}};
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::string trim_space(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

}  // namespace

bool has_image_extension(std::string_view path) {
  static constexpr std::array<std::string_view, 6> kExtensions = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"};
  const size_t slash = path.rfind('/');
  const std::string_view name = slash == std::string_view::npos ? path : path.substr(slash + 1);
  for (std::string_view ext : kExtensions) {
    if (name.size() <= ext.size()) continue;
    bool same = true;
    for (size_t k = 0; k < ext.size() && same; ++k) same = lower(name[name.size() - ext.size() + k]) == ext[k];
    if (same) return true;
  }
  return false;
}

bool has_media_extension(std::string_view path) { return has_image_extension(path) || has_audio_extension(std::string(path)); }

PromptWithImages extract_prompt_images(std::string_view prompt, const std::function<bool(const std::string&)>& exists,
                                       std::string_view home) {
  PromptWithImages out;
  std::string text;
  for (size_t i = 0; i < prompt.size();) {
    std::optional<Match> m;
    if (word_start(prompt, i)) {
      if (is_quote(prompt[i])) m = quoted_path(prompt, i, exists, home);
      if (!m) m = bare_path(prompt, i, exists, home);
    }
    if (!m) {
      text += prompt[i++];
      continue;
    }
    out.images.push_back(std::move(m->image));
    i = m->end;
    // "what is in ./a.jpg?" reads "what is in?": no space left before punctuation, a closing bracket or
    // another space.
    const char next = i < prompt.size() ? prompt[i] : '\0';
    if (next == '\0' || next == ' ' || next == '\t' || next == '?' || next == '!' || next == '.' || next == ',' || next == ';' ||
        next == ':' || next == ')' || next == ']' || next == '}')
      while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.pop_back();
  }
  out.text = trim_space(text);
  return out;
}

PromptWithImages extract_prompt_images(std::string_view prompt) {
  const char* home = std::getenv("HOME");
  return extract_prompt_images(
      prompt,
      [](const std::string& path) {
        std::error_code ec;
        return std::filesystem::is_regular_file(path, ec);
      },
      home ? std::string_view(home) : std::string_view());
}

}  // namespace g3n
