// Runs a kernel test once per kernel set this CPU supports (vec_dot_sets(): scalar, then each SIMD set
// weakest first), with that set in use for vec_dot, the tiles, the sparse columns, attention and the
// elementwise kernels, so a set that is not the dispatched one is still held to its twins. Prints the
// sets it ran; failures name the set (SCOPED_TRACE). The previously used set is restored afterwards.
#pragma once
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "kernels/vec_dot.h"

namespace g3n {

template <class Fn>
void for_each_kernel_set(Fn&& body) {
  const std::string before = vec_dot_isa();
  std::string ran;
  for (const std::string& set : vec_dot_sets()) {
    ASSERT_TRUE(vec_dot_use_set(set)) << set;
    {
      SCOPED_TRACE("kernel set " + set);
      body(set);
    }
    ran += (ran.empty() ? "" : ", ") + set;
    if (::testing::Test::HasFatalFailure()) break;
  }
  vec_dot_use_set(before);
  std::printf("  kernel sets run: %s\n", ran.c_str());
}

}  // namespace g3n
