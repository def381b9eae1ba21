#include "roofline/backend/gemm_algorithm_table.h"

#include <cstring>
#include <vector>

#include "roofline/core/error.h"

namespace roofline {
namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string bytes_to_hex(const void* data, size_t bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  const auto* p = static_cast<const unsigned char*>(data);
  std::string out(2 * bytes, '0');
  for (size_t i = 0; i < bytes; ++i) {
    out[2 * i] = kDigits[p[i] >> 4];
    out[2 * i + 1] = kDigits[p[i] & 15];
  }
  return out;
}

bool hex_to_bytes(std::string_view hex, void* out, size_t bytes) {
  if (hex.size() != 2 * bytes) return false;
  std::vector<unsigned char> decoded(bytes);
  for (size_t i = 0; i < bytes; ++i) {
    const int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    decoded[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  if (bytes > 0) std::memcpy(out, decoded.data(), bytes);
  return true;
}

nlohmann::json GemmAlgorithmTable::to_json() const {
  nlohmann::json gemms = nlohmann::json::object();
  for (const auto& [form, choice] : choices) {
    nlohmann::json c = {{"algorithm", choice.algorithm}};
    if (choice.ms > 0) c["ms"] = choice.ms;
    if (choice.heuristic_ms > 0) c["heuristic_ms"] = choice.heuristic_ms;
    gemms[form] = c;
  }
  return {{"library", library}, {"device", device}, {"gemms", gemms}};
}

GemmAlgorithmTable GemmAlgorithmTable::from_json(const nlohmann::json& j, std::string_view where) {
  auto bad = [&](const std::string& what) { fail("{}: invalid GEMM algorithm table: {}", where, what); };
  if (!j.is_object()) bad("expected an object with library, device and gemms");
  for (const char* field : {"library", "device"})
    if (!j.contains(field) || !j.at(field).is_string()) bad(fmt::format("'{}' must be a string", field));
  if (!j.contains("gemms") || !j.at("gemms").is_object()) bad("'gemms' must be an object");
  GemmAlgorithmTable table;
  table.library = j.at("library").get<std::string>();
  table.device = j.at("device").get<std::string>();
  for (const auto& [form, c] : j.at("gemms").items()) {
    if (form.empty()) bad("an empty GEMM form");
    if (!c.is_object() || !c.contains("algorithm") || !c.at("algorithm").is_string())
      bad(fmt::format("gemms['{}'] needs an 'algorithm' string", form));
    GemmAlgorithmChoice choice;
    choice.algorithm = c.at("algorithm").get<std::string>();
    if (choice.algorithm.empty() || choice.algorithm.size() % 2 != 0)
      bad(fmt::format("gemms['{}'].algorithm is not a whole number of hex bytes", form));
    std::vector<unsigned char> scratch(choice.algorithm.size() / 2);
    if (!hex_to_bytes(choice.algorithm, scratch.data(), scratch.size()))
      bad(fmt::format("gemms['{}'].algorithm is not hex", form));
    for (auto [field, value] : {std::pair{"ms", &choice.ms}, std::pair{"heuristic_ms", &choice.heuristic_ms}}) {
      if (!c.contains(field)) continue;
      if (!c.at(field).is_number() || c.at(field).get<double>() < 0)
        bad(fmt::format("gemms['{}'].{} must be a non-negative number", form, field));
      *value = c.at(field).get<double>();
    }
    table.choices.emplace(form, std::move(choice));
  }
  return table;
}

}  // namespace roofline
