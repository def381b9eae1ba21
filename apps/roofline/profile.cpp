// roofline profile [--json F] [--trace F] [--top N] [--hw NAME] [--calibration F] -- <command and args>: runs any roofline
// command in this process with every op of every backend it makes timed (set_backend_hook wraps each backend
// in a TimedBackend that reports to an OpRecorder: steady clock on the CPU, CUDA events on the stream on a
// GPU, plus NVML counters), then prints a per-op table and a verdict (the bottleneck class and its lever)
// to stderr, so the command's own stdout is untouched; --json and --trace write the same as files.
// With --kernels the backends are left unwrapped (CUDA graphs are captured and replayed as in production)
// and CUPTI records what the GPU ran instead: every kernel, memcpy and memset with its device times, printed
// as kernels by time, GPU busy and idle, and the idle gaps by size, place and kernel pair (perf/kernel_profile.h).
#include <algorithm>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "roofline/backend/timed_backend.h"
#include "roofline/core/atomic_file.h"
#include "roofline/core/error.h"
#include "roofline/perf/kernel_profile.h"
#include "roofline/perf/nvml_sampler.h"
#include "roofline/perf/op_profile.h"
#include "roofline/perf/op_recorder.h"

#ifdef ROOFLINE_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "roofline/backend/cuda/cuda_backend.h"
#include "roofline/backend/cuda/cuda_runtime_info.h"
#include "roofline/perf/cuda/cuda_event_clock.h"
#endif
#ifdef ROOFLINE_HAVE_CUPTI
#include "roofline/perf/cuda/cupti_recorder.h"
#endif

namespace roofline::app {

namespace {

// The commands profile can run: every command of main.cpp except profile and report themselves.
int run_command(std::vector<std::string> args) {
  CLI::App app{"roofline"};
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, Run>> commands;
  for (Run (*adder)(CLI::App&) : {add_generate, add_logits, add_tokenize, add_detokenize, add_chat, add_info,
                                  add_bench, add_estimate, add_calibrate, add_serve, add_train, add_data,
                                  add_score}) {
    const size_t before = app.get_subcommands({}).size();
    Run run = adder(app);
    commands.emplace_back(app.get_subcommands({})[before], std::move(run));
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes a vector last argument first
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (auto& [cmd, run] : commands)
    if (cmd->parsed()) return run();
  return 0;
}

std::string join(const std::vector<std::string>& args) {
  std::string s;
  for (const std::string& a : args) s += (s.empty() ? "" : " ") + (a.find(' ') != std::string::npos ? "'" + a + "'" : a);
  return s;
}

// Installs the hook for the profiled run and always removes it.
struct HookScope {
  explicit HookScope(BackendHook hook) { set_backend_hook(std::move(hook)); }
  ~HookScope() { set_backend_hook(nullptr); }
};

struct ProfileOptions {
  std::string json_path, trace_path, hw, calibration;
  int top = 15;
  bool kernels = false;
  std::vector<std::string> command;
};

void write_counters(nlohmann::json& j, const std::vector<perf::CounterTrack>& counters) {
  j["counters"] = nlohmann::json::object();
  for (const perf::CounterTrack& c : counters)
    j["counters"][c.name] = {{"unit", c.unit}, {"mean", c.mean()}, {"max", c.max()}, {"samples", c.samples.size()}};
}

void print_counters(const std::vector<perf::CounterTrack>& counters) {
  for (const perf::CounterTrack& c : counters)
    std::fprintf(stderr, "%-16s mean %.1f %s, max %.1f %s (%zu samples)\n", c.name.c_str(), c.mean(), c.unit.c_str(),
                 c.max(), c.unit.c_str(), c.samples.size());
}

// profile --kernels: the command runs with its backends as they are, under a CUPTI activity recorder.
int profile_kernels(const ProfileOptions& o) {
#ifndef ROOFLINE_HAVE_CUPTI
  (void)o;
  fail("profile --kernels: this roofline was built without CUDA and CUPTI (configure with -DROOFLINE_CUDA=ON and a "
       "CUDA toolkit that has CUPTI); the op profile (without --kernels) works everywhere");
#else
  if (cuda::list_devices().empty())
    fail("profile --kernels: no CUDA GPU is visible here (no driver or no device), and kernel records need one; "
         "the op profile (without --kernels) works on the CPU");
  perf::OpRecorder clock;  // the profile clock and the NVML counter tracks; no op is timed
  std::unique_ptr<perf::NvmlSampler> sampler;
  std::string device_key = "cuda";
  perf::CuptiRecorder cupti([&] { return clock.now(); });
  int rc = 0;
  {
    HookScope scope([&](std::unique_ptr<Backend> backend) -> std::unique_ptr<Backend> {
      if (auto* cuda_backend = dynamic_cast<cuda::CudaBackend*>(backend.get())) {
        for (const cuda::DeviceInfo& d : cuda::list_devices())
          if (d.index == cuda_backend->device_index()) device_key = perf::hardware_key(d.name);
        if (!sampler) {
          char bus[64] = {};
          if (cudaDeviceGetPCIBusId(bus, sizeof bus, cuda_backend->device_index()) != cudaSuccess) bus[0] = 0;
          sampler = std::make_unique<perf::NvmlSampler>(clock, bus);
          if (!sampler->available()) std::fprintf(stderr, "profile: no NVML counters: %s\n", sampler->error().c_str());
        }
      }
      return backend;  // unwrapped: graphs are captured and replayed as without the profile
    });
    rc = run_command(o.command);
  }
  if (sampler) sampler->stop();
  int device_count = 0;
  if (cudaGetDeviceCount(&device_count) == cudaSuccess)
    for (int d = 0; d < device_count; ++d)  // the records of work still running would be incomplete
      if (cudaSetDevice(d) == cudaSuccess) cudaDeviceSynchronize();
  cudaGetLastError();
  const perf::KernelTrace trace = cupti.stop();
  std::fflush(stdout);

  const std::vector<perf::CounterTrack> counters = clock.counters();
  const perf::KernelSummary summary = perf::summarize_kernels(trace);
  const std::string title = "roofline " + join(o.command);
  if (trace.records.empty())
    std::fprintf(stderr, "\nprofile --kernels: '%s' ran nothing on a GPU (no kernel, memcpy or memset recorded)\n",
                 title.c_str());
  else
    std::fprintf(stderr, "\n== profile --kernels: %s (%s; CUPTI %s)\n%s", title.c_str(), device_key.c_str(),
                 cupti.library().c_str(), perf::format_kernel_summary(summary, o.top).c_str());
  print_counters(counters);
  if (!o.json_path.empty()) {
    nlohmann::json j = perf::to_json(summary);
    j["hardware"] = device_key;
    j["cupti_library"] = cupti.library();
    j["command"] = o.command;
    j["exit_code"] = rc;
    write_counters(j, counters);
    write_file_atomically(o.json_path, j.dump(1) + "\n");
  }
  if (!o.trace_path.empty())
    write_file_atomically(o.trace_path, perf::kernel_chrome_trace(trace, counters, title).dump() + "\n");
  return rc;
#endif
}

}  // namespace

Run add_profile(CLI::App& root) {
  using Options = ProfileOptions;
  auto o = std::make_shared<Options>();
  CLI::App* cmd = root.add_subcommand(
      "profile", "Run any roofline command with every op timed; print where the time goes, how far from the roof, "
                 "and the bottleneck with its lever (e.g. roofline profile -- generate -m DIR -p hi -n 16)");
  cmd->add_option("--json", o->json_path, "Also write the profile as JSON to this file");
  cmd->add_option("--trace", o->trace_path, "Write a Chrome/Perfetto trace (open in ui.perfetto.dev) to this file");
  cmd->add_option("--top", o->top, "Rows of the op table (0: all)")->check(CLI::Range(0, 100000));
  cmd->add_option("--hw", o->hw,
                  "Roofs: a hardware name (h100, h200, a100, cpu, or one stored by `roofline calibrate`) or a JSON "
                  "file (default: calibrated figures of the device that ran, else its datasheet or estimate)");
  cmd->add_option("--calibration", o->calibration,
                  "Calibrated hardware file that --hw names an entry of (default: $XDG_CONFIG_HOME/roofline/"
                  "hardware.json or ~/.config/roofline/hardware.json)")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--kernels", o->kernels,
                "Record what the GPU runs instead of timing ops: every kernel, memcpy and memset (CUPTI activity "
                "records, CUDA graph replays included), with the backends unwrapped so the command runs as in "
                "production; prints kernels by time, GPU busy and idle time, and the idle gaps (CUDA builds, on a GPU)");
  cmd->add_option("command", o->command, "The roofline command and its arguments, after --")->required();
  return [o]() {
    if (o->command.empty()) fail("profile: give the command to run after --, e.g. roofline profile -- generate -m DIR -p hi");
    if (o->command[0] == "profile" || o->command[0] == "report")
      fail("profile: '{}' cannot be profiled (it runs other commands itself)", o->command[0]);
    if (o->kernels) return profile_kernels(*o);

    perf::OpRecorder recorder;
    std::unique_ptr<perf::NvmlSampler> sampler;
    std::string device_key = "cpu";
    int rc = 0;
    {
      HookScope scope([&](std::unique_ptr<Backend> backend) -> std::unique_ptr<Backend> {
        std::unique_ptr<perf::DeviceClock> clock;
#ifdef ROOFLINE_HAVE_CUDA
        if (auto* cuda_backend = dynamic_cast<cuda::CudaBackend*>(backend.get())) {
          clock = std::make_unique<perf::CudaEventClock>(cuda_backend->stream());
          for (const cuda::DeviceInfo& d : cuda::list_devices())
            if (d.index == cuda_backend->device_index()) device_key = perf::hardware_key(d.name);
          if (!sampler) {
            char bus[64] = {};
            if (cudaDeviceGetPCIBusId(bus, sizeof bus, cuda_backend->device_index()) != cudaSuccess) bus[0] = 0;
            sampler = std::make_unique<perf::NvmlSampler>(recorder, bus);
            if (!sampler->available()) std::fprintf(stderr, "profile: no NVML counters: %s\n", sampler->error().c_str());
          }
        }
#endif
        return std::make_unique<TimedBackend>(std::move(backend), &recorder.listener(std::move(clock)));
      });
      rc = run_command(o->command);
    }
    if (sampler) sampler->stop();
    recorder.resolve();
    std::fflush(stdout);

    const std::vector<perf::OpEvent> events = recorder.events();
    const std::vector<perf::CounterTrack> counters = recorder.counters();
    const perf::Roofs roofs = perf::roofs_for(o->hw.empty() ? device_key : o->hw, o->calibration);
    const perf::ProfileSummary summary = perf::summarize(events, roofs, recorder.device_timed());
    const std::string title = "roofline " + join(o->command);
    if (events.empty()) {
      std::fprintf(stderr, "\nprofile: '%s' ran no ops on a backend (nothing to profile)\n", title.c_str());
    } else {
      std::fprintf(stderr, "\n== profile: %s\n%s", title.c_str(), perf::format_summary(summary, o->top).c_str());
      print_counters(counters);
    }
    if (!o->json_path.empty()) {
      nlohmann::json j = perf::to_json(summary);
      j["command"] = o->command;
      j["exit_code"] = rc;
      write_counters(j, counters);
      write_file_atomically(o->json_path, j.dump(1) + "\n");
    }
    if (!o->trace_path.empty())
      write_file_atomically(o->trace_path,
                            perf::chrome_trace(events, counters, title, recorder.device_timed()).dump() + "\n");
    return rc;
  };
}

}  // namespace roofline::app
