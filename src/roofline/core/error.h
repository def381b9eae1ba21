// One error path for the whole engine: library code throws roofline::Error carrying what failed and
// where; the CLI catches it at the top and prints one line with a non-zero exit. Never exit() in a library.
#pragma once
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace roofline {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws roofline::Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

// Precondition check that survives release builds.
#define ROOFLINE_CHECK(cond, ...)                 \
  do {                                            \
    if (!(cond)) ::roofline::fail(__VA_ARGS__);   \
  } while (0)

}  // namespace roofline
