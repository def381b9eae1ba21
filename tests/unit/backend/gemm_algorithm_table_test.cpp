// The kept GEMM algorithm table (backend/gemm_algorithm_table.h): hex round trips, JSON round trips, and a
// clear error for every malformed entry (a checkpoint's state.json is user-editable input).
#include "roofline/backend/gemm_algorithm_table.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <random>

#include "roofline/core/error.h"

namespace roofline {
namespace {

TEST(GemmAlgorithmTable, HexRoundTripsEveryByte) {
  std::array<uint8_t, 256> bytes{};
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t(255 - i);
  const std::string hex = bytes_to_hex(bytes.data(), bytes.size());
  ASSERT_EQ(hex.size(), 512u);
  EXPECT_EQ(hex.substr(0, 6), "fffefd");
  std::array<uint8_t, 256> back{};
  ASSERT_TRUE(hex_to_bytes(hex, back.data(), back.size()));
  EXPECT_EQ(back, bytes);
  // Upper-case digits read too; wrong lengths and non-hex characters leave the output untouched.
  uint8_t two[2] = {7, 7};
  EXPECT_TRUE(hex_to_bytes("A0fF", two, 2));
  EXPECT_EQ(two[0], 0xa0);
  EXPECT_EQ(two[1], 0xff);
  two[0] = two[1] = 7;
  EXPECT_FALSE(hex_to_bytes("a0f", two, 2));
  EXPECT_FALSE(hex_to_bytes("a0fff0", two, 2));
  EXPECT_FALSE(hex_to_bytes("a0fg", two, 2));
  EXPECT_FALSE(hex_to_bytes("a0 f", two, 2));
  EXPECT_EQ(two[0], 7);
  EXPECT_EQ(two[1], 7);
}

GemmAlgorithmTable random_table(uint32_t seed) {
  std::mt19937 rng(seed);
  GemmAlgorithmTable t;
  t.library = "cublasLt 130000";
  t.device = "NVIDIA H100 80GB HBM3, sm_90, 132 SMs";
  for (int i = 0; i < 5; ++i) {
    std::array<uint64_t, 8> algo{};
    for (auto& w : algo) w = (uint64_t(rng()) << 32) | rng();
    GemmAlgorithmChoice c;
    c.algorithm = bytes_to_hex(algo.data(), sizeof(algo));
    c.ms = i == 0 ? 0.0 : double(rng() % 1000) / 997.0;
    c.heuristic_ms = i == 0 ? 0.0 : c.ms * 1.25;
    t.choices[fmt::format("M{} N768 K3072 form{}", rng() % 9000, i)] = c;
  }
  return t;
}

TEST(GemmAlgorithmTable, JsonRoundTrips) {
  const GemmAlgorithmTable t = random_table(11);
  const GemmAlgorithmTable back =
      GemmAlgorithmTable::from_json(nlohmann::json::parse(t.to_json().dump()), "test");
  EXPECT_EQ(back.library, t.library);
  EXPECT_EQ(back.device, t.device);
  ASSERT_EQ(back.choices.size(), t.choices.size());
  for (const auto& [form, c] : t.choices) {
    ASSERT_TRUE(back.choices.count(form)) << form;
    EXPECT_EQ(back.choices.at(form).algorithm, c.algorithm);
    EXPECT_EQ(back.choices.at(form).ms, c.ms);
    EXPECT_EQ(back.choices.at(form).heuristic_ms, c.heuristic_ms);
  }
  // Untimed choices (ms 0) are written without timings.
  const nlohmann::json j = t.to_json();
  size_t untimed = 0;
  for (const auto& [form, c] : j.at("gemms").items()) untimed += !c.contains("ms");
  EXPECT_EQ(untimed, 1u);
  EXPECT_TRUE(back.made_by(t.library, t.device));
  EXPECT_FALSE(back.made_by(t.library, "NVIDIA H200, sm_90, 132 SMs"));
  EXPECT_FALSE(back.made_by("cublasLt 130100", t.device));
  EXPECT_TRUE(GemmAlgorithmTable{}.empty());
}

void expect_rejected(const std::string& text, const std::string& needle) {
  try {
    GemmAlgorithmTable::from_json(nlohmann::json::parse(text), "state.json");
    ADD_FAILURE() << "accepted: " << text;
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("state.json"), std::string::npos) << what;
    EXPECT_NE(what.find(needle), std::string::npos) << "'" << needle << "' not in: " << what;
  }
}

// A table of one form "f" whose entry is {fields}.
std::string one_entry(const std::string& fields) {
  return fmt::format(R"({{"library": "l", "device": "d", "gemms": {{"f": {{{}}}}}}})", fields);
}

TEST(GemmAlgorithmTable, RejectsMalformedTablesClearly) {
  const std::string ok = fmt::format(R"("algorithm": "{}")", std::string(128, 'a'));
  expect_rejected("[]", "object");
  expect_rejected(R"({"device": "d", "gemms": {}})", "'library'");
  expect_rejected(R"({"library": 3, "device": "d", "gemms": {}})", "'library'");
  expect_rejected(R"({"library": "l", "device": "d"})", "'gemms'");
  expect_rejected(R"({"library": "l", "device": "d", "gemms": []})", "'gemms'");
  expect_rejected(R"({"library": "l", "device": "d", "gemms": {"f": 1}})", "gemms['f']");
  expect_rejected(one_entry(R"("ms": 1)"), "'algorithm'");
  expect_rejected(one_entry(R"("algorithm": "abc")"), "whole number");
  expect_rejected(one_entry(R"("algorithm": "")"), "whole number");
  expect_rejected(one_entry(R"("algorithm": "zz")"), "not hex");
  expect_rejected(one_entry(ok + R"(, "ms": -1)"), "ms must be");
  expect_rejected(one_entry(ok + R"(, "heuristic_ms": "x")"), "heuristic_ms must be");
  expect_rejected(fmt::format(R"({{"library": "l", "device": "d", "gemms": {{"": {{{}}}}}}})", ok), "empty");
  EXPECT_NO_THROW(GemmAlgorithmTable::from_json(nlohmann::json::parse(one_entry(ok)), "state.json"));
}

}  // namespace
}  // namespace roofline
