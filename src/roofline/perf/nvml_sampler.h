// GPU utilisation, memory, power and SM clock sampled through NVML on a thread, like `nvidia-smi dmon`,
// into an OpRecorder's counter tracks (shown beside the op timeline in the trace).
// libnvidia-ml.so.1 is opened at run time (dlopen), so the binary runs where there is no driver; the few
// NVML entry points used are declared here (their C ABI is stable), so this builds without the CUDA
// toolkit's nvml.h and without CUDA at all.
#pragma once
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "roofline/perf/op_recorder.h"

namespace roofline::perf {

class NvmlSampler {
 public:
  // Samples the GPU with this PCI bus id ("0000:1B:00.0", what cudaDeviceGetPCIBusId gives; empty: NVML
  // device 0) every `period` into `recorder` (tracks gpu_util %, memory_util %, memory_used MiB, power W,
  // sm_clock MHz). When NVML cannot be loaded or the device is not found, available() is false, error()
  // says why, and nothing is sampled.
  NvmlSampler(OpRecorder& recorder, const std::string& pci_bus_id,
              std::chrono::milliseconds period = std::chrono::milliseconds(50));
  ~NvmlSampler();  // stops
  NvmlSampler(const NvmlSampler&) = delete;
  NvmlSampler& operator=(const NvmlSampler&) = delete;

  bool available() const { return available_; }
  const std::string& error() const { return error_; }
  // Takes one last sample and stops the thread (idempotent).
  void stop();

 private:
  struct Api;
  void sample();
  OpRecorder& recorder_;
  std::chrono::milliseconds period_;
  std::unique_ptr<Api> api_;
  void* device_ = nullptr;
  bool available_ = false;
  std::string error_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace roofline::perf
