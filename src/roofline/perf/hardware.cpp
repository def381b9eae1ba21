#include "roofline/perf/hardware.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "roofline/core/atomic_file.h"
#include "roofline/core/error.h"
#include "roofline/perf/cpu_hardware.h"

namespace roofline::perf {

namespace {

constexpr double kTera = 1e12, kGiga = 1e9;

// Vendor datasheets, dense (no 2:4 sparsity) tensor-core rates, SXM parts. NVLink figures are per direction
// (NVIDIA quotes the sum of both: 900 GB/s for H100/H200, 600 GB/s for A100).
HardwareSpec datasheet(const std::string& name) {
  HardwareSpec h;
  h.name = name;
  h.source = "datasheet";
  if (name == "h100") {
    h.description = "NVIDIA H100 SXM 80GB (datasheet)";
    h.peak_bf16_flops = 989 * kTera;
    h.peak_fp8_flops = 1979 * kTera;
    h.memory_bandwidth = 3.35 * kTera;
    h.memory_capacity = 80 * kGiga;
    h.interconnect_bandwidth = 450 * kGiga;
  } else if (name == "h200") {
    h.description = "NVIDIA H200 SXM 141GB (datasheet)";
    h.peak_bf16_flops = 989 * kTera;
    h.peak_fp8_flops = 1979 * kTera;
    h.memory_bandwidth = 4.8 * kTera;
    h.memory_capacity = 141 * kGiga;
    h.interconnect_bandwidth = 450 * kGiga;
  } else if (name == "a100") {
    h.description = "NVIDIA A100 SXM 80GB (datasheet; no fp8 units)";
    h.peak_bf16_flops = 312 * kTera;
    h.memory_bandwidth = 2.039 * kTera;
    h.memory_capacity = 80 * kGiga;
    h.interconnect_bandwidth = 300 * kGiga;
  }
  return h;
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

double number(const nlohmann::json& j, const char* key, double fallback, const std::string& label) {
  if (!j.contains(key)) return fallback;
  const nlohmann::json& v = j.at(key);
  ROOFLINE_CHECK(v.is_number() && v.get<double>() >= 0, "{}: \"{}\" must be a number >= 0", label, key);
  return v.get<double>();
}

std::string text(const nlohmann::json& j, const char* key, const std::string& fallback, const std::string& label) {
  if (!j.contains(key)) return fallback;
  ROOFLINE_CHECK(j.at(key).is_string(), "{}: \"{}\" must be a string", label, key);
  return j.at(key).get<std::string>();
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ROOFLINE_CHECK(in.good(), "{}: cannot open for reading", path);
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
}

}  // namespace

bool is_cpu(const HardwareSpec& hw) {
  if (lower(hw.name) == "cpu") return true;
  return hw.measured.is_object() && hw.measured.value("device", std::string()) == "cpu";
}

std::vector<std::string> builtin_hardware_names() { return {"h100", "h200", "a100", "cpu"}; }

HardwareSpec builtin_hardware(const std::string& name) {
  const std::string key = lower(name);
  if (key == "cpu") return estimated_cpu_hardware();
  HardwareSpec h = datasheet(key);
  ROOFLINE_CHECK(h.peak_bf16_flops > 0, "unknown hardware '{}' (known: {})", name, join(builtin_hardware_names()));
  return h;
}

std::string hardware_key(const std::string& device_name) {
  std::string key;
  for (char c : device_name) key += std::isalnum(static_cast<unsigned char>(c)) ? char(std::tolower(c)) : '-';
  if (key.rfind("nvidia-", 0) == 0) key = key.substr(7);
  const bool variant = key.find("pcie") != std::string::npos || key.find("nvl") != std::string::npos;
  for (const std::string& name : builtin_hardware_names())
    if (!variant && key.rfind(name, 0) == 0) return name;
  return key;
}

nlohmann::json hardware_to_json(const HardwareSpec& hw) {
  nlohmann::json j = {{"name", hw.name},
                      {"description", hw.description},
                      {"peak_bf16_flops_per_s", hw.peak_bf16_flops},
                      {"peak_fp8_flops_per_s", hw.peak_fp8_flops},
                      {"memory_bytes_per_s", hw.memory_bandwidth},
                      {"memory_capacity_bytes", hw.memory_capacity},
                      {"interconnect_bytes_per_s", hw.interconnect_bandwidth},
                      {"kernel_overhead_s", hw.kernel_overhead_s},
                      {"source", hw.source}};
  if (!hw.measured.is_null()) j["measured"] = hw.measured;
  if (!hw.gemm_bf16_rates.empty()) j["gemm_bf16_rates"] = hw.gemm_bf16_rates.to_json();
  return j;
}

HardwareSpec hardware_from_json(const nlohmann::json& j, const std::string& label, const HardwareSpec* base) {
  ROOFLINE_CHECK(j.is_object(), "{}: expected a JSON object of hardware figures", label);
  HardwareSpec h = base ? *base : HardwareSpec{};
  h.name = text(j, "name", h.name, label);
  h.description = text(j, "description", h.description, label);
  h.peak_bf16_flops = number(j, "peak_bf16_flops_per_s", h.peak_bf16_flops, label);
  h.peak_fp8_flops = number(j, "peak_fp8_flops_per_s", h.peak_fp8_flops, label);
  h.memory_bandwidth = number(j, "memory_bytes_per_s", h.memory_bandwidth, label);
  h.memory_capacity = number(j, "memory_capacity_bytes", h.memory_capacity, label);
  h.interconnect_bandwidth = number(j, "interconnect_bytes_per_s", h.interconnect_bandwidth, label);
  h.kernel_overhead_s = number(j, "kernel_overhead_s", h.kernel_overhead_s, label);
  h.source = text(j, "source", h.source, label);
  if (j.contains("measured")) h.measured = j.at("measured");
  if (j.contains("gemm_bf16_rates")) h.gemm_bf16_rates = GemmRateTable::from_json(j.at("gemm_bf16_rates"), label);
  ROOFLINE_CHECK(h.peak_bf16_flops > 0, "{}: \"peak_bf16_flops_per_s\" is missing or zero", label);
  ROOFLINE_CHECK(h.memory_bandwidth > 0, "{}: \"memory_bytes_per_s\" is missing or zero", label);
  return h;
}

std::string default_calibration_path() {
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  if (xdg != nullptr && *xdg != '\0') return std::string(xdg) + "/roofline/hardware.json";
  const char* home = std::getenv("HOME");
  ROOFLINE_CHECK(home != nullptr && *home != '\0',
                 "neither XDG_CONFIG_HOME nor HOME is set: cannot locate hardware.json (pass a path)");
  return std::string(home) + "/.config/roofline/hardware.json";
}

std::string calibration_path_or_default(const std::string& given) {
  if (!given.empty()) return given;  // the commands refuse a missing file at parse time (CLI::ExistingFile)
  try {
    return default_calibration_path();
  } catch (const Error&) {
    return {};
  }
}

std::map<std::string, HardwareSpec> load_calibrations(const std::string& path) {
  std::map<std::string, HardwareSpec> out;
  if (path.empty() || !std::filesystem::exists(path)) return out;
  const nlohmann::json j = read_json_file(path);
  ROOFLINE_CHECK(j.is_object(), "{}: expected an object of hardware entries keyed by name", path);
  for (const auto& [name, entry] : j.items()) {
    HardwareSpec h = hardware_from_json(entry, path + " [" + name + "]");
    h.name = name;
    out.emplace(name, std::move(h));
  }
  return out;
}

void store_calibration(const std::string& path, const HardwareSpec& hw) {
  ROOFLINE_CHECK(!hw.name.empty(), "store_calibration: the hardware has no name");
  nlohmann::json all = nlohmann::json::object();
  if (std::filesystem::exists(path)) {
    all = read_json_file(path);
    ROOFLINE_CHECK(all.is_object(), "{}: expected an object of hardware entries keyed by name", path);
  }
  all[hw.name] = hardware_to_json(hw);
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir);
  write_file_atomically(path, all.dump(2) + "\n");
}

HardwareSpec resolve_hardware(const std::string& name_or_file, const std::string& calibration_path) {
  namespace fs = std::filesystem;
  const bool looks_like_file = name_or_file.find('/') != std::string::npos || name_or_file.ends_with(".json");
  if (looks_like_file || fs::is_regular_file(name_or_file)) {
    HardwareSpec base;
    base.name = fs::path(name_or_file).stem().string();
    base.source = "file";
    return hardware_from_json(read_json_file(name_or_file), name_or_file, &base);
  }
  const std::string key = lower(name_or_file);
  const std::map<std::string, HardwareSpec> calibrated = load_calibrations(calibration_path);
  if (auto it = calibrated.find(key); it != calibrated.end()) return it->second;
  const std::vector<std::string> builtin = builtin_hardware_names();
  if (std::find(builtin.begin(), builtin.end(), key) != builtin.end()) return builtin_hardware(key);
  std::vector<std::string> known = builtin;
  for (const auto& [name, spec] : calibrated)
    if (std::find(known.begin(), known.end(), name) == known.end()) known.push_back(name + " (calibrated)");
  fail("unknown hardware '{}' (known: {}; or a JSON file of the same fields)", name_or_file, join(known));
}

}  // namespace roofline::perf
