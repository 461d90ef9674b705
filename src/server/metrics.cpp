#include "server/metrics.h"

#include <algorithm>
#include <cstdio>

namespace g3n::server {

void Metrics::record_request(const std::string& label, int status, double seconds) {
  std::lock_guard lk(mu_);
  ++requests_[{label, status}];
  seconds_[label] += seconds;
}

void Metrics::record_generation(const GenerateStats& st) {
  std::lock_guard lk(mu_);
  tokens_generated_ += static_cast<uint64_t>(st.gen_tokens);
  prompt_tokens_ += static_cast<uint64_t>(st.prompt_tokens);
  prompt_cached_ += static_cast<uint64_t>(st.cached_tokens);
  eval_seconds_ += st.gen_s;
  if (st.gen_tokens > 1 && st.gen_s > 0) last_tokens_per_second_ = (st.gen_tokens - 1) / st.gen_s;
}

void Metrics::record_speculation(const SpecStats& spec, const GenerateStats& st) {
  std::lock_guard lk(mu_);
  ++spec_requests_;
  spec_drafted_ += static_cast<uint64_t>(spec.drafted);
  spec_accepted_ += static_cast<uint64_t>(spec.accepted);
  spec_rounds_ += static_cast<uint64_t>(spec.rounds);
  // Tokens the rounds produced: every generated token after the first (which the prompt's pass chose).
  spec_tokens_ += static_cast<uint64_t>(std::max(0, st.gen_tokens - 1));
}

void Metrics::record_image_encoded(double seconds) {
  std::lock_guard lk(mu_);
  ++images_encoded_;
  image_seconds_ += seconds;
}

void Metrics::record_image_cached() {
  std::lock_guard lk(mu_);
  ++images_cached_;
}

void Metrics::record_image_cancelled() {
  std::lock_guard lk(mu_);
  ++images_cancelled_;
}

void Metrics::record_audio_encoded(double seconds, double audio_seconds) {
  std::lock_guard lk(mu_);
  ++audio_encoded_;
  audio_encode_seconds_ += seconds;
  audio_input_seconds_ += audio_seconds;
}

void Metrics::record_audio_cached() {
  std::lock_guard lk(mu_);
  ++audio_cached_;
}

void Metrics::record_audio_cancelled() {
  std::lock_guard lk(mu_);
  ++audio_cancelled_;
}

void Metrics::record_embed_input() {
  std::lock_guard lk(mu_);
  ++embed_inputs_;
}

void Metrics::record_embed_cancelled() {
  std::lock_guard lk(mu_);
  ++embed_cancelled_;
}

std::string Metrics::text(int queued, int active, size_t loaded_models) const {
  std::string o;
  char buf[1024];
  {
    std::lock_guard lk(mu_);
    o += "# HELP g3n_requests_total HTTP requests by path and status.\n# TYPE g3n_requests_total counter\n";
    for (const auto& [k, n] : requests_) {
      std::snprintf(buf, sizeof buf, "g3n_requests_total{path=\"%s\",status=\"%d\"} %llu\n", k.first.c_str(), k.second,
                    static_cast<unsigned long long>(n));
      o += buf;
    }
    o += "# HELP g3n_request_duration_seconds_total Time spent serving requests, by path.\n"
         "# TYPE g3n_request_duration_seconds_total counter\n";
    for (const auto& [k, s] : seconds_) {
      std::snprintf(buf, sizeof buf, "g3n_request_duration_seconds_total{path=\"%s\"} %.6f\n", k.c_str(), s);
      o += buf;
    }
    std::snprintf(buf, sizeof buf,
                  "# HELP g3n_tokens_generated_total Tokens sampled for all requests.\n# TYPE g3n_tokens_generated_total counter\n"
                  "g3n_tokens_generated_total %llu\n"
                  "# HELP g3n_prompt_tokens_total Prompt tokens of all requests.\n# TYPE g3n_prompt_tokens_total counter\n"
                  "g3n_prompt_tokens_total %llu\n"
                  "# HELP g3n_prompt_cached_tokens_total Prompt rows reused from a slot's cache instead of evaluated.\n"
                  "# TYPE g3n_prompt_cached_tokens_total counter\ng3n_prompt_cached_tokens_total %llu\n",
                  static_cast<unsigned long long>(tokens_generated_), static_cast<unsigned long long>(prompt_tokens_),
                  static_cast<unsigned long long>(prompt_cached_));
    o += buf;
    std::snprintf(buf, sizeof buf,
                  "# HELP g3n_images_encoded_total Request images run through the vision encoder.\n"
                  "# TYPE g3n_images_encoded_total counter\ng3n_images_encoded_total %llu\n"
                  "# HELP g3n_images_cached_total Request images found in the encoder's cache (not encoded again).\n"
                  "# TYPE g3n_images_cached_total counter\ng3n_images_cached_total %llu\n"
                  "# HELP g3n_image_encodes_cancelled_total Image encodes stopped because the client went away.\n"
                  "# TYPE g3n_image_encodes_cancelled_total counter\ng3n_image_encodes_cancelled_total %llu\n"
                  "# HELP g3n_image_encode_seconds_total Time spent decoding and encoding images.\n"
                  "# TYPE g3n_image_encode_seconds_total counter\ng3n_image_encode_seconds_total %.6f\n",
                  static_cast<unsigned long long>(images_encoded_), static_cast<unsigned long long>(images_cached_),
                  static_cast<unsigned long long>(images_cancelled_), image_seconds_);
    o += buf;
    std::snprintf(buf, sizeof buf,
                  "# HELP g3n_audio_encoded_total Request recordings run through the audio encoder.\n"
                  "# TYPE g3n_audio_encoded_total counter\ng3n_audio_encoded_total %llu\n"
                  "# HELP g3n_audio_cached_total Request recordings found in the encoder's cache (not encoded again).\n"
                  "# TYPE g3n_audio_cached_total counter\ng3n_audio_cached_total %llu\n"
                  "# HELP g3n_audio_encodes_cancelled_total Audio encodes stopped because the client went away.\n"
                  "# TYPE g3n_audio_encodes_cancelled_total counter\ng3n_audio_encodes_cancelled_total %llu\n"
                  "# HELP g3n_audio_encode_seconds_total Time spent encoding audio (features, tower, embedder).\n"
                  "# TYPE g3n_audio_encode_seconds_total counter\ng3n_audio_encode_seconds_total %.6f\n"
                  "# HELP g3n_audio_input_seconds_total Length of the audio encoded.\n"
                  "# TYPE g3n_audio_input_seconds_total counter\ng3n_audio_input_seconds_total %.3f\n",
                  static_cast<unsigned long long>(audio_encoded_), static_cast<unsigned long long>(audio_cached_),
                  static_cast<unsigned long long>(audio_cancelled_), audio_encode_seconds_, audio_input_seconds_);
    o += buf;
    std::snprintf(buf, sizeof buf,
                  "# HELP g3n_embed_inputs_total Inputs of embedding requests embedded.\n"
                  "# TYPE g3n_embed_inputs_total counter\ng3n_embed_inputs_total %llu\n"
                  "# HELP g3n_embed_cancelled_total Embedding requests stopped because the client went away.\n"
                  "# TYPE g3n_embed_cancelled_total counter\ng3n_embed_cancelled_total %llu\n",
                  static_cast<unsigned long long>(embed_inputs_), static_cast<unsigned long long>(embed_cancelled_));
    o += buf;
    std::snprintf(buf, sizeof buf,
                  "# HELP g3n_eval_seconds_total Time spent generating tokens, summed over requests.\n"
                  "# TYPE g3n_eval_seconds_total counter\ng3n_eval_seconds_total %.6f\n"
                  "# HELP g3n_tokens_per_second Generation rate of the last finished request.\n"
                  "# TYPE g3n_tokens_per_second gauge\ng3n_tokens_per_second %.3f\n",
                  eval_seconds_, last_tokens_per_second_);
    o += buf;
    // Speculation: acceptance = accepted / drafted; tokens per round = the speed-up over one token per
    // forward pass before the cost of verifying several rows (g3n bench --spec measures that cost).
    std::snprintf(buf, sizeof buf,
                  "# HELP g3n_spec_requests_total Requests that decoded speculatively.\n"
                  "# TYPE g3n_spec_requests_total counter\ng3n_spec_requests_total %llu\n"
                  "# HELP g3n_spec_draft_tokens_total Draft tokens verified.\n"
                  "# TYPE g3n_spec_draft_tokens_total counter\ng3n_spec_draft_tokens_total %llu\n"
                  "# HELP g3n_spec_accepted_tokens_total Draft tokens accepted.\n"
                  "# TYPE g3n_spec_accepted_tokens_total counter\ng3n_spec_accepted_tokens_total %llu\n"
                  "# HELP g3n_spec_rounds_total Forward passes of speculating requests.\n"
                  "# TYPE g3n_spec_rounds_total counter\ng3n_spec_rounds_total %llu\n",
                  static_cast<unsigned long long>(spec_requests_), static_cast<unsigned long long>(spec_drafted_),
                  static_cast<unsigned long long>(spec_accepted_), static_cast<unsigned long long>(spec_rounds_));
    o += buf;
    std::snprintf(buf, sizeof buf,
                  "# HELP g3n_spec_acceptance Accepted / drafted tokens over all speculating requests.\n"
                  "# TYPE g3n_spec_acceptance gauge\ng3n_spec_acceptance %.4f\n"
                  "# HELP g3n_spec_tokens_per_round Tokens per forward pass of speculating requests (plain decoding: 1).\n"
                  "# TYPE g3n_spec_tokens_per_round gauge\ng3n_spec_tokens_per_round %.4f\n",
                  spec_drafted_ ? static_cast<double>(spec_accepted_) / static_cast<double>(spec_drafted_) : 0.0,
                  spec_rounds_ ? static_cast<double>(spec_tokens_) / static_cast<double>(spec_rounds_) : 0.0);
    o += buf;
  }
  std::snprintf(buf, sizeof buf,
                "# HELP g3n_queue_depth Requests waiting for a slot.\n# TYPE g3n_queue_depth gauge\ng3n_queue_depth %d\n"
                "# HELP g3n_active_requests Requests generating now.\n# TYPE g3n_active_requests gauge\ng3n_active_requests %d\n"
                "# HELP g3n_loaded_models Models in memory.\n# TYPE g3n_loaded_models gauge\ng3n_loaded_models %zu\n",
                queued, active, loaded_models);
  o += buf;
  return o;
}

}  // namespace g3n::server
