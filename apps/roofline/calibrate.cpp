// roofline calibrate: measure the real ceilings of this machine (CPU: FMA rate, streaming read bandwidth,
// the engine's matmul; CUDA: device copy bandwidth, bf16 GEMM rate on a big cube and over a grid of shapes)
// and store them in hardware.json, where `roofline estimate --hw NAME` picks them up in place of the datasheet
// or estimated figures.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <vector>

#include <fmt/format.h>

#include "commands.h"
#include "roofline/core/error.h"
#include "roofline/perf/calibrate.h"
#include "roofline/perf/cpu_hardware.h"
#include "roofline/perf/gemm_rates.h"
#include "roofline/perf/hardware.h"

#ifdef ROOFLINE_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "roofline/backend/cuda/ceilings.h"
#include "roofline/backend/cuda/cuda_backend.h"
#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/cuda_runtime_info.h"
#include "roofline/backend/cuda/kernels.h"
#endif

namespace roofline::app {

namespace {

#ifdef ROOFLINE_HAVE_CUDA
// The bf16 rate of the backend's matmul on each shape of perf::gemm_rate_grid (gemm_rates.h).
// The estimate prices the backend's GEMV rows at their bytes and everything above from this table.
static_assert(perf::kGemvMaxRows == cuda::kGemvMaxM, "perf::kGemvMaxRows mirrors the backend's GEMV rows");
perf::GemmRateTable measure_gemm_rate_table(cuda::CudaBackend& backend, bool quick) {
  std::vector<cuda::GemmRateSample> shapes;
  for (const perf::GemmShape& g : perf::gemm_rate_grid(quick))
    shapes.push_back({int64_t(g.m), int64_t(g.n), int64_t(g.k), 0});
  std::fprintf(stderr, "measuring bf16 GEMM rates by shape: %zu shapes ...\n", shapes.size());
  std::vector<perf::GemmRatePoint> points;
  for (const cuda::GemmRateSample& s : cuda::measure_gemm_rates(backend, shapes))
    points.push_back({s.m, s.n, s.k, s.flops_per_s});
  return perf::GemmRateTable(std::move(points), "calibrate");
}

// Device-to-device copy bandwidth and the bf16 GEMM rate of the CUDA backend's matmul on n x n x n random
// data (backend/cuda/ceilings.h), then its rate over the shape grid.
perf::HardwareSpec calibrate_cuda(int64_t n, bool quick) {
  const std::vector<cuda::DeviceInfo> devices = cuda::list_devices();
  ROOFLINE_CHECK(!devices.empty(), "calibrate --device cuda: no CUDA device is visible (no driver or no GPU)");
  const cuda::DeviceInfo& device = devices[0];
  std::fprintf(stderr, "measuring %s: copy bandwidth, then bf16 GEMM %lldx%lldx%lld ...\n", device.name.c_str(),
               (long long)n, (long long)n, (long long)n);
  auto backend = cuda::make_cuda_backend(0);
  const cuda::GpuCeilings ceilings = cuda::measure_gpu_ceilings(*backend, n);
  const double copy_bandwidth = ceilings.copy_bytes_per_s;
  const double gemm_flops = ceilings.gemm_bf16_flops_per_s;
  perf::GemmRateTable rates = measure_gemm_rate_table(*backend, quick);

  perf::HardwareSpec h;
  h.name = perf::hardware_key(device.name);
  const std::vector<std::string> builtin = perf::builtin_hardware_names();
  const bool known = std::find(builtin.begin(), builtin.end(), h.name) != builtin.end() && h.name != "cpu";
  const perf::HardwareSpec sheet = known ? perf::builtin_hardware(h.name) : perf::HardwareSpec{};
  h.description = device.name + ", measured by roofline calibrate";
  h.source = "calibrated";
  h.peak_bf16_flops = gemm_flops;
  // fp8 was not measured: the datasheet's fp8 peak scaled by the bf16 fraction actually reached.
  if (sheet.peak_fp8_flops > 0) h.peak_fp8_flops = sheet.peak_fp8_flops * gemm_flops / sheet.peak_bf16_flops;
  h.memory_bandwidth = copy_bandwidth;
  h.memory_capacity = double(device.total_memory);
  h.interconnect_bandwidth = sheet.interconnect_bandwidth;  // not measured (needs two GPUs): datasheet, or unknown
  h.kernel_overhead_s = ceilings.kernel_overhead_s;
  h.gemm_bf16_rates = std::move(rates);
  h.measured = {{"device", device.name},
                {"sm", fmt::format("{}.{}", device.sm_major, device.sm_minor)},
                {"copy_bytes_per_s", copy_bandwidth},
                {"gemm_bf16_flops_per_s", gemm_flops},
                {"kernel_overhead_s", ceilings.kernel_overhead_s},
                {"empty_kernel_s", ceilings.empty_kernel_s},
                {"gemm_shape", fmt::format("{0}x{0}x{0} bf16", n)}};
  if (known) {
    h.measured["datasheet_peak_bf16_flops_per_s"] = sheet.peak_bf16_flops;
    h.measured["datasheet_memory_bytes_per_s"] = sheet.memory_bandwidth;
  }
  return h;
}
#endif

void print_spec(const perf::HardwareSpec& h) {
  std::printf("%-26s %s\n", "hardware", h.name.c_str());
  std::printf("%-26s %s\n", "description", h.description.c_str());
  for (const auto& [key, value] : h.measured.items()) {
    if (value.is_number_float())
      std::printf("%-26s %.4g\n", key.c_str(), value.get<double>());
    else
      std::printf("%-26s %s\n", key.c_str(), value.is_string() ? value.get<std::string>().c_str() : value.dump().c_str());
  }
  if (!h.gemm_bf16_rates.empty()) {
    const std::vector<perf::GemmRatePoint>& points = h.gemm_bf16_rates.points();
    auto [lo, hi] = std::minmax_element(points.begin(), points.end(), [](const auto& a, const auto& b) {
      return a.flops_per_s < b.flops_per_s;
    });
    std::printf("%-26s %zu shapes, %.4g (%lldx%lldx%lld) to %.4g FLOP/s (%lldx%lldx%lld)\n", "gemm_bf16_rates",
                points.size(), lo->flops_per_s, (long long)lo->m, (long long)lo->n, (long long)lo->k, hi->flops_per_s,
                (long long)hi->m, (long long)hi->n, (long long)hi->k);
  }
}

}  // namespace

Run add_calibrate(CLI::App& root) {
  struct Options {
    std::string device = "cpu", out, name;
    int threads = 0;
    bool quick = false, json = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = root.add_subcommand(
      "calibrate", "Measure this machine's real ceilings (peak FLOP/s, memory bandwidth) and store them for "
                   "`roofline estimate --hw NAME`");
  cmd->add_option("--device", o->device, "What to measure: cpu (FMA rate, read bandwidth, matmul) or cuda (GPU 0)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--out", o->out,
                  "hardware.json to update (default: $XDG_CONFIG_HOME/roofline/hardware.json or "
                  "~/.config/roofline/hardware.json)");
  cmd->add_option("--name", o->name, "Key to store the figures under (default: cpu, or the GPU's name, e.g. h100)");
  cmd->add_option("--threads", o->threads, "CPU threads (0: one per hardware thread)")->check(CLI::Range(0, 1024));
  cmd->add_flag("--quick", o->quick, "Smaller measurements (seconds less, noisier)");
  cmd->add_flag("--json", o->json, "Print the stored entry as JSON");
  return [o]() {
    perf::HardwareSpec h;
    if (o->device == "cuda") {
#ifdef ROOFLINE_HAVE_CUDA
      h = calibrate_cuda(o->quick ? 4096 : 8192, o->quick);
#else
      fail("calibrate --device cuda: this build has no CUDA backend (configure with nvcc present or -DROOFLINE_CUDA=ON)");
#endif
    } else {
      perf::CpuCalibrationOptions options;
      options.threads = o->threads;
      if (o->quick) {
        options.bandwidth_bytes = size_t(256) << 20;
        options.matmul_m = 128;
        options.fma_seconds = 0.05;
      }
      std::fprintf(stderr, "measuring the CPU: FMA rate, memory read bandwidth, matmul %lldx%lldx%lld ...\n",
                   (long long)options.matmul_m, (long long)options.matmul_n, (long long)options.matmul_k);
      h = perf::calibrated_cpu_hardware(perf::calibrate_cpu(options));
    }
    if (!o->name.empty()) h.name = o->name;
    for (char& c : h.name) c = char(std::tolower(static_cast<unsigned char>(c)));
    const std::string path = o->out.empty() ? perf::default_calibration_path() : o->out;
    perf::store_calibration(path, h);
    if (o->json) {
      std::printf("%s\n", perf::hardware_to_json(h).dump(1).c_str());
    } else {
      print_spec(h);
      std::printf("%-26s %.4g FLOP/s, %.4g B/s\n", "stored (peak, bandwidth)", h.peak_bf16_flops, h.memory_bandwidth);
    }
    std::fprintf(stderr, "stored under '%s' in %s\n", h.name.c_str(), path.c_str());
    return 0;
  };
}

}  // namespace roofline::app
