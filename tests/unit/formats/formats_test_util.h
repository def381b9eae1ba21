// Helpers for the formats tests: a scratch directory per test and raw safetensors images built by hand, so
// tests can write files the writer would never produce.
#pragma once
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "roofline/core/error.h"

namespace roofline::test {

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() / fmt::format("roofline_formats_{}_{}", ::getpid(), counter++);
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string str() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// u64 little-endian header length (the true one unless `length` overrides it), the header text, then
// `data_bytes` bytes of data (0, 1, 2, ...).
inline std::string safetensors_image(const std::string& header, size_t data_bytes,
                                     std::optional<uint64_t> length = std::nullopt) {
  uint64_t n = length.value_or(header.size());
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(char(uint8_t(n >> (8 * i))));
  out += header;
  for (size_t i = 0; i < data_bytes; ++i) out.push_back(char(uint8_t(i)));
  return out;
}

// Runs `body` and returns the roofline::Error message; fails the test when nothing (or something else) throws.
template <typename Body>
std::string error_of(Body&& body) {
  try {
    body();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected roofline::Error";
  return "";
}

}  // namespace roofline::test
