#include "roofline/train/config_file.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "roofline/core/error.h"

namespace roofline::train {
namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

std::string normalize_key(std::string key) {
  for (char& c : key)
    if (c == '_') c = '-';
  return key;
}

std::string json_to_text(const nlohmann::ordered_json& v, const std::string& path, const std::string& key) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number()) return fmt::format("{}", v.get<double>());
  if (v.is_array()) {
    std::string out;
    for (const auto& item : v) {
      if (!out.empty()) out.push_back(',');
      out.append(json_to_text(item, path, key));
    }
    return out;
  }
  fail("{}: key '{}' has a value of type {}, which a command-line flag cannot take", path, key, v.type_name());
}

void flatten(const nlohmann::ordered_json& object, const std::string& path, std::vector<std::pair<std::string, std::string>>& out) {
  for (const auto& [key, value] : object.items()) {
    if (value.is_object()) flatten(value, path, out);
    else if (!value.is_null()) out.emplace_back(normalize_key(key), json_to_text(value, path, key));
  }
}

// A TOML value (the subset above) as command-line text.
std::string toml_value(const std::string& raw, const std::string& path, int line) {
  std::string v = trim(raw);
  if (v.empty()) fail("{}:{}: missing value", path, line);
  if (v[0] == '"' || v[0] == '\'') {
    const char q = v[0];
    std::string out;
    size_t i = 1;
    for (; i < v.size() && v[i] != q; ++i) {
      if (q == '"' && v[i] == '\\' && i + 1 < v.size()) {
        const char e = v[++i];
        out.push_back(e == 'n' ? '\n' : e == 't' ? '\t' : e);
      } else {
        out.push_back(v[i]);
      }
    }
    if (i >= v.size()) fail("{}:{}: unterminated string", path, line);
    std::string rest = trim(v.substr(i + 1));
    if (!rest.empty() && rest[0] != '#') fail("{}:{}: unexpected text after the string: {}", path, line, rest);
    return out;
  }
  const size_t hash = v.find('#');
  if (hash != std::string::npos) v = trim(v.substr(0, hash));
  if (v.empty()) fail("{}:{}: missing value (only a comment)", path, line);
  if (v.front() == '[') {
    if (v.back() != ']') fail("{}:{}: unterminated array", path, line);
    std::string inner = v.substr(1, v.size() - 2), out;
    std::stringstream ss(inner);
    std::string item;
    while (std::getline(ss, item, ',')) {
      item = trim(item);
      if (item.empty()) continue;
      if (!out.empty()) out.push_back(',');
      out.append(item);
    }
    return out;
  }
  std::string out;
  for (char c : v)
    if (c != '_') out.push_back(c);  // TOML allows 1_000_000
  return out;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> read_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("--config {}: cannot read", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config_text(ss.str(), path);
}

std::vector<std::pair<std::string, std::string>> parse_config_text(const std::string& text, const std::string& path) {
  std::vector<std::pair<std::string, std::string>> out;
  const std::string start = trim(text.substr(0, std::min<size_t>(text.size(), 64)));
  if (!start.empty() && start[0] == '{') {
    nlohmann::ordered_json j;
    try {
      j = nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::ordered_json::exception& e) {
      fail("{}: not valid JSON: {}", path, e.what());
    }
    if (!j.is_object()) fail("{}: a JSON config must be one object", path);
    flatten(j, path, out);
    return out;
  }
  std::stringstream lines(text);
  std::string line;
  int number = 0;
  while (std::getline(lines, line)) {
    ++number;
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    if (t[0] == '[') {
      if (t.back() != ']') fail("{}:{}: bad section header: {}", path, number, t);
      continue;
    }
    const size_t eq = t.find('=');
    if (eq == std::string::npos) fail("{}:{}: expected key = value, got: {}", path, number, t);
    std::string key = trim(t.substr(0, eq));
    if (key.size() >= 2 && (key.front() == '"' || key.front() == '\'')) key = key.substr(1, key.size() - 2);
    if (key.empty()) fail("{}:{}: empty key", path, number);
    out.emplace_back(normalize_key(key), toml_value(t.substr(eq + 1), path, number));
  }
  return out;
}

}  // namespace roofline::train
