#include "sampling/tool_call_constraint.h"

#include <limits>

#include "sampling/byte_mask.h"

namespace g3n {

ToolCallMatcher::ToolCallMatcher(std::shared_ptr<const ToolCallGrammar> g) : g_(std::move(g)) {
  if (!g_->lazy) {
    stage_ = Stage::Text;
    enter(Text::Trigger);
  }
}

const std::string& ToolCallMatcher::text() const {
  switch (text_) {
    case Text::Trigger: return g_->trigger;
    case Text::Open: return g_->open;
    case Text::Between: return g_->between;
    case Text::Close: return g_->close;
    case Text::Next: return g_->separator;
  }
  return g_->trigger;
}

void ToolCallMatcher::enter(Text t) {
  stage_ = Stage::Text;
  text_ = t;
  pos_ = 0;
  if (text().empty()) after_text();
}

void ToolCallMatcher::after_text() {
  switch (text_) {
    case Text::Next: enter(Text::Trigger); return;
    case Text::Trigger: enter(Text::Open); return;
    case Text::Open:
      stage_ = Stage::Name;
      pos_ = 0;
      lo_ = 0;
      hi_ = g_->tools.size();
      return;
    case Text::Between:
      stage_ = Stage::Arguments;
      args_.emplace(*g_->tools[lo_].second);
      return;
    case Text::Close:
      ++calls_;
      if (!g_->parallel) {
        stage_ = Stage::Done;
        return;
      }
      enter(Text::Next);
      boundary_ = true;
      return;
  }
}

bool ToolCallMatcher::feed(std::string_view s) {
  for (char c : s)
    if (!feed(static_cast<unsigned char>(c))) return false;
  return true;
}

bool ToolCallMatcher::feed(unsigned char c) {
  boundary_ = false;
  switch (stage_) {
    case Stage::Free: {
      const std::string& t = g_->trigger;
      if (pos_ < t.size() && c == static_cast<unsigned char>(t[pos_])) {
        ++pos_;
      } else {
        // The longest end of what was read that still begins the trigger (the trigger is short).
        const std::string seen = t.substr(0, pos_) + static_cast<char>(c);
        pos_ = 0;
        for (size_t k = seen.size() - 1; k > 0; --k)
          if (seen.compare(seen.size() - k, k, t, 0, k) == 0) {
            pos_ = k;
            break;
          }
      }
      if (pos_ == t.size()) enter(Text::Open);
      return true;
    }
    case Stage::Text: {
      const std::string& t = text();
      if (pos_ >= t.size() || c != static_cast<unsigned char>(t[pos_])) return false;
      if (++pos_ == t.size()) after_text();
      return true;
    }
    case Stage::Name: {
      // Names share their first pos_ bytes within [lo_, hi_); sorted, so those with c next are contiguous.
      size_t lo = lo_;
      while (lo < hi_ && !(g_->tools[lo].first.size() > pos_ && static_cast<unsigned char>(g_->tools[lo].first[pos_]) == c)) ++lo;
      if (lo == hi_) return false;
      size_t hi = lo;
      while (hi < hi_ && g_->tools[hi].first.size() > pos_ && static_cast<unsigned char>(g_->tools[hi].first[pos_]) == c) ++hi;
      lo_ = lo;
      hi_ = hi;
      // A name ends with its closing quote, which no other name can continue past.
      if (++pos_ == g_->tools[lo_].first.size()) enter(Text::Between);
      return true;
    }
    case Stage::Arguments: {
      if (!args_->complete()) return args_->feed(c);
      // A complete value may still grow (a number's next digit); else the byte belongs to the close.
      JsonMatcher longer = *args_;
      if (longer.feed(c)) {
        *args_ = std::move(longer);
        return true;
      }
      args_.reset();
      enter(Text::Close);
      return feed(c);
    }
    case Stage::Done: return false;
  }
  return false;
}

ToolCallConstraint::ToolCallConstraint(std::shared_ptr<const ToolCallGrammar> g, const TokenTexts& texts, std::vector<int32_t> stop_ids)
    : texts_(texts), stop_ids_(std::move(stop_ids)), state_(g), scratch_(g) {
  if (g->lazy && !g->trigger.empty()) {
    const char last = g->trigger.back();
    for (int32_t id = 0; id < texts_.n_vocab(); ++id)
      if (texts_.text(id).find(last) != std::string_view::npos) risky_.push_back(id);
  }
}

void ToolCallConstraint::mask(std::span<const float> logits, int need, std::vector<float>& out) {
  if (state_.free()) {
    // Free text: everything goes but a token that would write the trigger and then break the call.
    out.assign(logits.begin(), logits.end());
    for (int32_t id : risky_) {
      if (static_cast<size_t>(id) >= out.size()) continue;
      scratch_ = state_;
      if (!scratch_.feed(texts_.text(id))) out[static_cast<size_t>(id)] = -std::numeric_limits<float>::infinity();
    }
    return;
  }
  if (state_.complete()) {
    out.assign(logits.size(), -std::numeric_limits<float>::infinity());
    allow_tokens(stop_ids_, logits, out);
    return;
  }
  const int found = mask_by_bytes(texts_, state_, scratch_, logits, need, out, order_);
  if (state_.may_end() || found == 0) allow_tokens(stop_ids_, logits, out);
}

void ToolCallConstraint::accept(int32_t id) {
  if (id < 0 || id >= texts_.n_vocab()) return;
  ToolCallMatcher next = state_;
  if (next.feed(texts_.text(id))) state_ = std::move(next);
}

}  // namespace g3n
