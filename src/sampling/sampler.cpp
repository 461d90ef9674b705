#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <unordered_map>

namespace g3n {
namespace sampling {
namespace {

bool better(const TokenProb& a, const TokenProb& b) {
  return a.logit != b.logit ? a.logit > b.logit : a.id < b.id;
}

void renormalize(std::vector<TokenProb>& c) {
  double sum = 0;
  for (const auto& t : c) sum += t.p;
  if (sum <= 0) return;
  for (auto& t : c) t.p = static_cast<float>(t.p / sum);
}

}  // namespace

int32_t argmax(std::span<const float> logits) {
  int32_t best = -1;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (std::isnan(logits[i])) continue;
    if (best < 0 || logits[i] > logits[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

void apply_logit_bias(std::span<float> logits, std::span<const std::pair<int32_t, float>> bias) {
  for (const auto& [id, b] : bias)
    if (id >= 0 && static_cast<size_t>(id) < logits.size()) logits[id] += b;
}

void apply_penalties(std::span<float> logits, std::span<const int32_t> history, float repeat,
                     float frequency, float presence) {
  if (history.empty() || (repeat == 1.0f && frequency == 0.0f && presence == 0.0f)) return;
  std::unordered_map<int32_t, int32_t> counts;
  for (int32_t id : history)
    if (id >= 0 && static_cast<size_t>(id) < logits.size()) ++counts[id];
  for (const auto& [id, c] : counts) {
    float& l = logits[id];
    l = l > 0 ? l / repeat : l * repeat;
    l -= static_cast<float>(c) * frequency + presence;
  }
}

std::vector<TokenProb> candidates(std::span<const float> logits) {
  std::vector<TokenProb> c;
  c.reserve(logits.size());
  for (size_t i = 0; i < logits.size(); ++i)
    if (std::isfinite(logits[i])) c.push_back({static_cast<int32_t>(i), logits[i], 0.0f});
  std::sort(c.begin(), c.end(), better);
  return c;
}

void top_k(std::vector<TokenProb>& c, int32_t k) {
  if (k > 0 && static_cast<size_t>(k) < c.size()) c.resize(k);
}

void temperature(std::vector<TokenProb>& c, float t) {
  if (t <= 0 || t == 1.0f) return;
  for (auto& x : c) x.logit /= t;
}

void softmax(std::vector<TokenProb>& c) {
  if (c.empty()) return;
  float mx = c[0].logit;
  for (const auto& x : c) mx = std::max(mx, x.logit);
  double sum = 0;
  for (auto& x : c) {
    x.p = std::exp(x.logit - mx);
    sum += x.p;
  }
  for (auto& x : c) x.p = static_cast<float>(x.p / sum);
}

void top_p(std::vector<TokenProb>& c, float p) {
  if (p >= 1.0f || c.empty()) return;
  double cum = 0;
  size_t keep = c.size();
  for (size_t i = 0; i < c.size(); ++i) {
    cum += c[i].p;
    if (cum >= p) { keep = i + 1; break; }
  }
  c.resize(keep);
  renormalize(c);
}

void min_p(std::vector<TokenProb>& c, float mp) {
  if (mp <= 0 || c.empty()) return;
  float pmax = 0;
  for (const auto& x : c) pmax = std::max(pmax, x.p);
  const float threshold = mp * pmax;
  std::erase_if(c, [&](const TokenProb& x) { return x.p < threshold; });
  renormalize(c);
}

void typical_p(std::vector<TokenProb>& c, float p) {
  if (p >= 1.0f || c.size() < 2) return;
  double entropy = 0;
  for (const auto& x : c)
    if (x.p > 0) entropy -= x.p * std::log(static_cast<double>(x.p));
  std::vector<std::pair<double, size_t>> order;  // (|−log p − H|, index)
  order.reserve(c.size());
  for (size_t i = 0; i < c.size(); ++i) {
    const double surprise = c[i].p > 0 ? -std::log(static_cast<double>(c[i].p)) : INFINITY;
    order.push_back({std::fabs(surprise - entropy), i});
  }
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  double cum = 0;
  size_t keep = order.size();
  for (size_t i = 0; i < order.size(); ++i) {
    cum += c[order[i].second].p;
    if (cum >= p) { keep = i + 1; break; }
  }
  std::vector<TokenProb> out;
  out.reserve(keep);
  for (size_t i = 0; i < keep; ++i) out.push_back(c[order[i].second]);
  std::sort(out.begin(), out.end(), better);
  c = std::move(out);
  renormalize(c);
}

int32_t draw(const std::vector<TokenProb>& c, Rng& rng) {
  if (c.empty()) return -1;
  double total = 0;
  for (const auto& x : c) total += x.p;
  const double u = rng.next_double() * total;
  double cum = 0;
  for (const auto& x : c) {
    cum += x.p;
    if (u < cum) return x.id;
  }
  return c.back().id;  // rounding: u landed past the last partial sum
}

}  // namespace sampling

Sampler::Sampler(SamplingParams params) : params_(std::move(params)) {
  seed_ = params_.seed ? *params_.seed : (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  rng_.reseed(seed_);
}

void Sampler::reset() {
  history_.clear();
  n_generated_ = 0;
  rng_.reseed(seed_);
}

void Sampler::accept(int32_t id, bool generated) {
  history_.push_back(id);
  // Only the penalty window is needed; trim occasionally so the history stays bounded.
  const int32_t n = params_.repeat_last_n;
  if (n >= 0 && history_.size() > static_cast<size_t>(n) * 2 + 1024)
    history_.erase(history_.begin(), history_.end() - n);
  if (generated) ++n_generated_;
}

int32_t Sampler::sample(std::span<const float> logits) {
  work_.assign(logits.begin(), logits.end());
  sampling::apply_logit_bias(work_, params_.logit_bias);
  if (params_.repeat_last_n != 0) {
    size_t n = params_.repeat_last_n < 0 ? history_.size()
                                         : std::min(history_.size(), static_cast<size_t>(params_.repeat_last_n));
    sampling::apply_penalties(work_, std::span<const int32_t>(history_).last(n), params_.repeat_penalty,
                              params_.frequency_penalty, params_.presence_penalty);
  }
  cand_.clear();
  if (params_.temperature <= 0) {
    const int32_t id = sampling::argmax(work_);
    if (id >= 0) cand_.push_back({id, work_[id], 1.0f});
    return id;
  }

  // Select the top_k first (an O(n) partial selection instead of sorting the whole vocabulary); temperature
  // is monotonic, so this equals HF's temperature-then-top_k.
  for (size_t i = 0; i < work_.size(); ++i)
    if (std::isfinite(work_[i])) cand_.push_back({static_cast<int32_t>(i), work_[i], 0.0f});
  auto better = [](const TokenProb& a, const TokenProb& b) {
    return a.logit != b.logit ? a.logit > b.logit : a.id < b.id;
  };
  const int32_t k = params_.top_k;
  if (k > 0 && static_cast<size_t>(k) < cand_.size()) {
    std::nth_element(cand_.begin(), cand_.begin() + k, cand_.end(), better);
    cand_.resize(k);
  }
  std::sort(cand_.begin(), cand_.end(), better);
  if (cand_.empty()) return -1;

  sampling::temperature(cand_, params_.temperature);
  sampling::softmax(cand_);
  sampling::top_p(cand_, params_.top_p);
  sampling::min_p(cand_, params_.min_p);
  sampling::typical_p(cand_, params_.typical_p);
  return sampling::draw(cand_, rng_);
}

}  // namespace g3n
