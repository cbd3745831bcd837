// Minimal test harness: CHECK records failures, the runner prints "N passed, M failed" last.
#pragma once

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace npc_test {

struct Case {
  const char* name;
  std::function<void()> body;
};

inline std::vector<Case>& Registry() {
  static std::vector<Case> cases;
  return cases;
}
inline int& CurrentFailures() {
  static int failures = 0;
  return failures;
}

struct Register {
  Register(const char* name, std::function<void()> body) { Registry().push_back({name, std::move(body)}); }
};

inline void Fail(const char* file, int line, const std::string& what) {
  ++CurrentFailures();
  std::fprintf(stderr, "  FAILED %s:%d: %s\n", file, line, what.c_str());
}

// Runs every registered case whose name contains `filter` (empty = all).
inline int RunAll(const std::string& filter = "") {
  int passed = 0, failed = 0;
  for (const Case& c : Registry()) {
    if (!filter.empty() && std::string(c.name).find(filter) == std::string::npos) continue;
    CurrentFailures() = 0;
    c.body();
    if (CurrentFailures() == 0) {
      ++passed;
      std::printf("ok   %s\n", c.name);
    } else {
      ++failed;
      std::printf("FAIL %s\n", c.name);
    }
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace npc_test

#define NPC_CAT2(a, b) a##b
#define NPC_CAT(a, b) NPC_CAT2(a, b)
#define TEST_CASE(name)                                                                 \
  static void NPC_CAT(test_fn_, __LINE__)();                                            \
  static ::npc_test::Register NPC_CAT(test_reg_, __LINE__)(name, &NPC_CAT(test_fn_, __LINE__)); \
  static void NPC_CAT(test_fn_, __LINE__)()

#define CHECK(cond)                                                      \
  do {                                                                   \
    if (!(cond)) ::npc_test::Fail(__FILE__, __LINE__, "CHECK(" #cond ")"); \
  } while (0)

#define CHECK_EQ(a, b)                                                                                \
  do {                                                                                                \
    const auto& npc_a_ = (a);                                                                         \
    const auto& npc_b_ = (b);                                                                         \
    if (!(npc_a_ == npc_b_)) ::npc_test::Fail(__FILE__, __LINE__, "CHECK_EQ(" #a ", " #b ")");       \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                                        \
  do {                                                                                               \
    const double npc_a_ = (a), npc_b_ = (b);                                                         \
    if (!(std::fabs(npc_a_ - npc_b_) <= (tol)))                                                      \
      ::npc_test::Fail(__FILE__, __LINE__, "CHECK_NEAR(" #a ", " #b "): " + std::to_string(npc_a_) + \
                                               " vs " + std::to_string(npc_b_));                     \
  } while (0)
