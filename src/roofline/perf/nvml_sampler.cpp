#include "roofline/perf/nvml_sampler.h"

#include <dlfcn.h>

namespace roofline::perf {

// The NVML ABI this file uses (nvml.h, v2 entry points): return 0 is NVML_SUCCESS; devices are opaque.
namespace nvml {
using Return = int;
using Device = struct DeviceSt*;
struct Utilization {
  unsigned int gpu, memory;  // percent of the last sample period
};
struct Memory {
  unsigned long long total, free, used;  // bytes
};
constexpr int kClockSm = 1;  // NVML_CLOCK_SM
}  // namespace nvml

struct NvmlSampler::Api {
  void* lib = nullptr;
  nvml::Return (*init)() = nullptr;
  nvml::Return (*shutdown)() = nullptr;
  nvml::Return (*by_index)(unsigned int, nvml::Device*) = nullptr;
  nvml::Return (*by_pci)(const char*, nvml::Device*) = nullptr;
  nvml::Return (*utilization)(nvml::Device, nvml::Utilization*) = nullptr;
  nvml::Return (*memory)(nvml::Device, nvml::Memory*) = nullptr;
  nvml::Return (*power)(nvml::Device, unsigned int*) = nullptr;  // milliwatts
  nvml::Return (*clock)(nvml::Device, int, unsigned int*) = nullptr;  // MHz
};

namespace {
template <typename F>
bool load(void* lib, const char* name, F& f) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  return f != nullptr;
}
}  // namespace

NvmlSampler::NvmlSampler(OpRecorder& recorder, const std::string& pci_bus_id, std::chrono::milliseconds period)
    : recorder_(recorder), period_(period) {
  api_ = std::make_unique<Api>();
  api_->lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!api_->lib) {
    const char* why = dlerror();
    error_ = std::string("cannot load libnvidia-ml.so.1 (no NVIDIA driver?): ") + (why ? why : "unknown");
    return;
  }
  if (!load(api_->lib, "nvmlInit_v2", api_->init) || !load(api_->lib, "nvmlShutdown", api_->shutdown) ||
      !load(api_->lib, "nvmlDeviceGetHandleByIndex_v2", api_->by_index) ||
      !load(api_->lib, "nvmlDeviceGetHandleByPciBusId_v2", api_->by_pci) ||
      !load(api_->lib, "nvmlDeviceGetUtilizationRates", api_->utilization) ||
      !load(api_->lib, "nvmlDeviceGetMemoryInfo", api_->memory) ||
      !load(api_->lib, "nvmlDeviceGetPowerUsage", api_->power) ||
      !load(api_->lib, "nvmlDeviceGetClockInfo", api_->clock)) {
    error_ = "libnvidia-ml.so.1 lacks an NVML entry point this build needs";
    return;
  }
  if (api_->init() != 0) {
    error_ = "nvmlInit failed";
    api_->shutdown = nullptr;
    return;
  }
  nvml::Device device = nullptr;
  const nvml::Return found = pci_bus_id.empty() ? api_->by_index(0, &device) : api_->by_pci(pci_bus_id.c_str(), &device);
  if (found != 0 || !device) {
    error_ = "NVML has no device " + (pci_bus_id.empty() ? std::string("0") : pci_bus_id);
    return;
  }
  device_ = device;
  available_ = true;
  sample();
  thread_ = std::thread([this] {
    while (!stop_.load()) {
      std::this_thread::sleep_for(period_);
      sample();
    }
  });
}

NvmlSampler::~NvmlSampler() {
  stop();
  if (api_) {
    if (api_->shutdown) api_->shutdown();
    if (api_->lib) dlclose(api_->lib);
  }
}

void NvmlSampler::stop() {
  if (!thread_.joinable()) return;
  stop_.store(true);
  thread_.join();
  sample();
}

void NvmlSampler::sample() {
  auto device = static_cast<nvml::Device>(device_);
  const double t = recorder_.now();
  nvml::Utilization u{};
  if (api_->utilization(device, &u) == 0) {
    recorder_.add_counter("gpu_util", "%", t, u.gpu);
    recorder_.add_counter("memory_util", "%", t, u.memory);
  }
  nvml::Memory m{};
  if (api_->memory(device, &m) == 0) recorder_.add_counter("memory_used", "MiB", t, double(m.used) / (1 << 20));
  unsigned int milliwatts = 0;
  if (api_->power(device, &milliwatts) == 0) recorder_.add_counter("power", "W", t, milliwatts / 1000.0);
  unsigned int mhz = 0;
  if (api_->clock(device, nvml::kClockSm, &mhz) == 0) recorder_.add_counter("sm_clock", "MHz", t, mhz);
}

}  // namespace roofline::perf
