// The hardware side of the roofline: peak FLOP/s, memory bandwidth and capacity, interconnect bandwidth.
// Sources, in the order `--hw NAME` resolves them:
//  1. figures `roofline calibrate` measured and stored under that name (hardware.json in the config dir),
//  2. the built-in datasheet table (h100, h200, a100) or, for "cpu", this machine's estimate (cpu_hardware.h),
// and `--hw FILE` reads one JSON object of the same fields (hardware_to_json's keys).
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "roofline/perf/gemm_rates.h"

namespace roofline::perf {

struct HardwareSpec {
  std::string name;                   // key: "h100", "cpu", or a calibrated / file name
  std::string description;            // one line for people: what it is and where the figures come from
  double peak_bf16_flops = 0;         // FLOP/s, dense bf16 matmul (CPU: f32 FMA, the engine's bf16-weight path)
  double peak_fp8_flops = 0;          // FLOP/s, dense fp8 matmul; 0: none (fp8 matmuls priced at the bf16 rate)
  double memory_bandwidth = 0;        // bytes/s to device memory (HBM, or DRAM for the CPU)
  double memory_capacity = 0;         // bytes of device memory; 0: unknown (no fit check)
  double interconnect_bandwidth = 0;  // bytes/s per direction per device (NVLink); 0: unknown
  double kernel_overhead_s = 0;       // fixed seconds each kernel of a step adds (launch, the wait for the
                                      // previous kernel, the latency before its reads stream); 0: not counted
  // bf16 GEMM rates by shape (calibrated GPUs): the estimate prices each matmul at its shape's rate, capped
  // at peak_bf16_flops; empty (datasheets, the CPU, older calibrations): every matmul at the peak.
  GemmRateTable gemm_bf16_rates;
  std::string source;                 // "datasheet", "estimated", "calibrated", "file"
  nlohmann::json measured;            // calibrate's raw figures (an object), null for other sources

  double peak_flops(bool fp8) const { return fp8 && peak_fp8_flops > 0 ? peak_fp8_flops : peak_bf16_flops; }
  // FLOP per byte above which an op is compute-bound.
  double ridge_point(bool fp8 = false) const { return peak_flops(fp8) / memory_bandwidth; }
};

// Whether `hw` is a CPU: named "cpu" (the estimate, its calibration, or a file that says so), or measured by
// `roofline calibrate --device cpu` under another name.
bool is_cpu(const HardwareSpec& hw);

// "h100", "h200", "a100", "cpu".
std::vector<std::string> builtin_hardware_names();
// A built-in entry (names are case-insensitive); throws roofline::Error listing the known names.
HardwareSpec builtin_hardware(const std::string& name);

// The hardware key of a device name: the built-in name when it is that part ("NVIDIA H100 80GB HBM3" -> h100;
// PCIe and NVL variants keep their own key), else the name in lower case with dashes.
std::string hardware_key(const std::string& device_name);

// JSON keys: name, description, peak_bf16_flops_per_s, peak_fp8_flops_per_s, memory_bytes_per_s,
// memory_capacity_bytes, interconnect_bytes_per_s, kernel_overhead_s, source, measured, and gemm_bf16_rates
// ([[M, N, K, flops_per_s], ...]) when there is a table. Datasheets give no kernel overhead (0: not counted)
// and no table; `roofline calibrate --device cuda` measures both.
nlohmann::json hardware_to_json(const HardwareSpec& hw);
// Fields absent from `j` keep base's values (or zero without a base); peak_bf16_flops_per_s and
// memory_bytes_per_s must end up positive; a gemm_bf16_rates table must be a full grid of positive rates
// (GemmRateTable). `label` names the source in errors.
HardwareSpec hardware_from_json(const nlohmann::json& j, const std::string& label, const HardwareSpec* base = nullptr);

// $XDG_CONFIG_HOME/roofline/hardware.json, else $HOME/.config/roofline/hardware.json.
std::string default_calibration_path();
// The calibration file a command reads: `given` (its --calibration) when set, else the default path, else ""
// (no config directory: built-in figures only).
std::string calibration_path_or_default(const std::string& given);
// The calibrated entries stored at `path`, by name: {} when the file does not exist; roofline::Error when it
// is not valid JSON of that shape.
std::map<std::string, HardwareSpec> load_calibrations(const std::string& path);
// Stores (or replaces) hw under hw.name in the file at `path`, keeping the other entries; creates the
// directory, writes atomically.
void store_calibration(const std::string& path, const HardwareSpec& hw);

// `--hw`: an existing file (or anything with a '/' or ending in .json) is read as one JSON object; otherwise
// a name: the calibrated entry of that name when `calibration_path` has one, else the built-in one.
// Throws roofline::Error listing the known names (built-in and calibrated) for an unknown one.
HardwareSpec resolve_hardware(const std::string& name_or_file, const std::string& calibration_path);

}  // namespace roofline::perf
