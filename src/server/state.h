// What every handler shares: the configuration, the loaded models, the counters, and whether the
// server is stopping. Owned by Server; handlers get it by reference.
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <random>

#include "server/metrics.h"
#include "server/model_manager.h"
#include "server/server.h"

namespace g3n::server {

struct ServerState {
  explicit ServerState(ServerConfig c) : cfg(std::move(c)), models(cfg.store, cfg.sched, cfg.keep_alive, cfg.num_threads) {}

  ServerConfig cfg;
  ModelManager models;
  Metrics metrics;
  std::atomic<bool> stopping{false};

  uint64_t random_u64() {
    std::lock_guard lk(rng_mu_);
    return rng_();
  }

 private:
  std::mutex rng_mu_;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace g3n::server
