// The server's loaded models (server/model_manager.h): keep-alives apply in the order requests came, and a
// model deleted or re-created while in use is not handed to new requests.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "golden_util.h"
#include "server/model_manager.h"
#include "store/model_name.h"
#include "store/model_store.h"
#include "store/modelfile.h"

namespace g3n {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class ModelManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("g3n-model-manager-test-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    cfg_.root = root_ / "store";
    cfg_.ollama_root.reset();
    store::ModelStore st(cfg_);
    store::Modelfile mf;
    mf.from = test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf";
    store::create_model(st, store::parse_model_name("tiny"), mf, fs::current_path(), {});
  }
  void TearDown() override { fs::remove_all(root_); }

  fs::path root_;
  store::StoreConfig cfg_;
};

server::KeepAlive keep(std::chrono::nanoseconds d) { return {true, d}; }

// An unload request (keep_alive 0) that comes while a generation runs unloads the model when that generation
// ends: the generation's own keep-alive (the default 5 minutes), older, no longer wins.
TEST_F(ModelManagerTest, KeepAlivesApplyInTheOrderRequestsCame) {
  server::ModelManager mm(cfg_, {.num_parallel = 1}, 5min);
  auto running = mm.acquire("tiny", {});
  mm.acquire("tiny", keep(0ns)).reset();  // the unload request, answered while the generation runs
  EXPECT_EQ(mm.loaded().size(), 1u);       // still in use
  running.reset();
  EXPECT_TRUE(mm.loaded().empty());
  // A request after the unload request sets the keep-alive again.
  auto first = mm.acquire("tiny", {});
  mm.acquire("tiny", keep(0ns)).reset();
  auto later = mm.acquire("tiny", keep(10min));
  first.reset();
  later.reset();
  ASSERT_EQ(mm.loaded().size(), 1u);
  EXPECT_EQ(mm.loaded().front()->keep_alive, std::chrono::nanoseconds(10min));
}

// A model deleted or re-created while a request uses it: the next request loads anew (here the same store
// model: a different instance), the running one finishes on its own, which is freed with it.
TEST_F(ModelManagerTest, UnloadInUseHandsNewRequestsAFreshLoad) {
  server::ModelManager mm(cfg_, {.num_parallel = 1}, 5min);
  auto running = mm.acquire("tiny", {});
  const server::LoadedModel* old = &**running;
  EXPECT_TRUE(mm.unload("tiny"));
  EXPECT_TRUE(mm.loaded().empty());
  auto next = mm.acquire("tiny", {});
  EXPECT_NE(&**next, old);
  running.reset();  // the old instance's last lease: it does not take the new one's place or remove it
  ASSERT_EQ(mm.loaded().size(), 1u);
  EXPECT_EQ(mm.loaded().front().get(), &**next);
}

}  // namespace
}  // namespace g3n
