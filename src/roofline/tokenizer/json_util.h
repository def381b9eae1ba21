// Checked access to tokenizer.json fields: every failure is a roofline::Error naming where it happened.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "roofline/core/error.h"
#include "roofline/tokenizer/unicode.h"

namespace roofline::tok {

inline const nlohmann::json& json_field(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.is_object()) fail("{}: expected an object, got {}", where, j.type_name());
  auto it = j.find(key);
  if (it == j.end()) fail("{}: missing field '{}'", where, key);
  return *it;
}

inline std::string json_type(const nlohmann::json& j, const std::string& where) {
  const auto& t = json_field(j, "type", where);
  if (!t.is_string()) fail("{}: field 'type' must be a string", where);
  return t.get<std::string>();
}

inline std::string json_string(const nlohmann::json& j, const char* key, const std::string& where) {
  const auto& v = json_field(j, key, where);
  if (!v.is_string()) fail("{}: field '{}' must be a string, got {}", where, key, v.type_name());
  return v.get<std::string>();
}

// An optional string: empty when absent or null.
inline std::string json_string_or(const nlohmann::json& j, const char* key, const std::string& where,
                                  const std::string& fallback = "") {
  if (!j.is_object()) fail("{}: expected an object, got {}", where, j.type_name());
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_string()) fail("{}: field '{}' must be a string, got {}", where, key, it->type_name());
  return it->get<std::string>();
}

inline bool json_bool(const nlohmann::json& j, const char* key, const std::string& where, bool fallback) {
  if (!j.is_object()) fail("{}: expected an object, got {}", where, j.type_name());
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail("{}: field '{}' must be true or false, got {}", where, key, it->dump());
  return it->get<bool>();
}

inline int64_t json_int(const nlohmann::json& j, const char* key, const std::string& where) {
  const auto& v = json_field(j, key, where);
  if (!v.is_number_integer()) fail("{}: field '{}' must be an integer, got {}", where, key, v.dump());
  return v.get<int64_t>();
}

// A field holding exactly one character (e.g. Metaspace's replacement); `fallback` when absent or null.
inline char32_t json_char(const nlohmann::json& j, const char* key, const std::string& where,
                          const std::string& fallback = "") {
  std::string s = json_string_or(j, key, where, fallback);
  size_t len = 0;
  if (s.empty() || !is_valid_utf8(s) || (decode_utf8(s, 0, len), len != s.size()))
    fail("{}: '{}' must be a single character, got '{}'", where, key, s);
  return decode_utf8(s, 0, len);
}

}  // namespace roofline::tok
