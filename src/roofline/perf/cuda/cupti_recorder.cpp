#include "roofline/perf/cuda/cupti_recorder.h"

#include <cupti.h>
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "roofline/core/error.h"

#ifndef ROOFLINE_CUPTI_SONAME
#define ROOFLINE_CUPTI_SONAME "libcupti.so"
#endif
#ifndef ROOFLINE_CUPTI_DIR
#define ROOFLINE_CUPTI_DIR ""
#endif

namespace roofline::perf {

namespace {

// The entry points used, resolved from the loaded library (types from the headers built against).
struct Api {
  void* handle = nullptr;
  std::string path, error;
  decltype(&cuptiGetVersion) get_version = nullptr;
  decltype(&cuptiGetResultString) result_string = nullptr;
  decltype(&cuptiGetTimestamp) timestamp = nullptr;
  decltype(&cuptiActivityRegisterCallbacks) register_callbacks = nullptr;
  decltype(&cuptiActivityEnable) enable = nullptr;
  decltype(&cuptiActivityDisable) disable = nullptr;
  decltype(&cuptiActivityFlushAll) flush_all = nullptr;
  decltype(&cuptiActivityGetNextRecord) next_record = nullptr;
  decltype(&cuptiActivityGetNumDroppedRecords) dropped_records = nullptr;
  bool callbacks_registered = false;
};

template <typename F>
bool resolve(Api& api, F& f, const char* name) {
  f = reinterpret_cast<F>(dlsym(api.handle, name));
  if (!f) api.error = fmt::format("{} has no {}", api.path, name);
  return f != nullptr;
}

// Opened once per process and never closed (CUPTI keeps threads and driver hooks alive).
Api& api() {
  static Api a = [] {
    Api a;
    std::vector<std::string> candidates;
    if (const char* forced = std::getenv("ROOFLINE_CUPTI_LIBRARY"); forced && *forced) {
      candidates.push_back(forced);
    } else {
      candidates.push_back(ROOFLINE_CUPTI_SONAME);
      if (*ROOFLINE_CUPTI_DIR) candidates.push_back(std::string(ROOFLINE_CUPTI_DIR) + "/" + ROOFLINE_CUPTI_SONAME);
      for (const char* dir : {"/usr/local/cuda/extras/CUPTI/lib64", "/usr/local/cuda/lib64", "/usr/local/cuda/lib"})
        candidates.push_back(std::string(dir) + "/" + ROOFLINE_CUPTI_SONAME);
    }
    std::string tried;
    for (const std::string& c : candidates) {
      a.handle = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (a.handle) {
        a.path = c;
        break;
      }
      const char* why = dlerror();
      tried += fmt::format("\n  {}: {}", c, why ? why : "not loadable");
    }
    if (!a.handle) {
      a.error = fmt::format(
          "cannot load CUPTI ({}, from the CUDA toolkit's CUPTI lib dir; set ROOFLINE_CUPTI_LIBRARY to its path). "
          "Tried:{}",
          ROOFLINE_CUPTI_SONAME, tried);
      return a;
    }
    Dl_info info{};
    if (dladdr(dlsym(a.handle, "cuptiGetVersion"), &info) && info.dli_fname) a.path = info.dli_fname;
    if (resolve(a, a.get_version, "cuptiGetVersion") && resolve(a, a.result_string, "cuptiGetResultString") &&
        resolve(a, a.timestamp, "cuptiGetTimestamp") &&
        resolve(a, a.register_callbacks, "cuptiActivityRegisterCallbacks") &&
        resolve(a, a.enable, "cuptiActivityEnable") && resolve(a, a.disable, "cuptiActivityDisable") &&
        resolve(a, a.flush_all, "cuptiActivityFlushAll") && resolve(a, a.next_record, "cuptiActivityGetNextRecord") &&
        resolve(a, a.dropped_records, "cuptiActivityGetNumDroppedRecords"))
      a.error.clear();
    else
      a.handle = nullptr;
    return a;
  }();
  return a;
}

std::string result_text(CUptiResult r) {
  const char* s = nullptr;
  if (api().result_string && api().result_string(r, &s) == CUPTI_SUCCESS && s) return s;
  return fmt::format("CUPTI error {}", int(r));
}

void check(CUptiResult r, const char* what) {
  if (r != CUPTI_SUCCESS) fail("profile --kernels: {} failed: {}", what, result_text(r));
}

constexpr CUpti_ActivityKind kKinds[] = {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMCPY,
                                         CUPTI_ACTIVITY_KIND_MEMSET};

}  // namespace

struct CuptiRecorder::State {
  std::mutex mutex;
  KernelTrace trace;
  std::unordered_map<const char*, uint32_t> name_by_pointer;  // CUPTI shares one name string per kernel
  std::unordered_map<std::string, uint32_t> name_by_text;
  bool running = false;

  uint32_t intern(const char* name) {
    if (!name) name = "[unnamed kernel]";
    if (auto it = name_by_pointer.find(name); it != name_by_pointer.end()) return it->second;
    auto [it, inserted] = name_by_text.emplace(name, uint32_t(trace.names.size()));
    if (inserted) trace.names.emplace_back(name);
    name_by_pointer.emplace(name, it->second);
    return it->second;
  }

  void add(const CUpti_Activity* record) {
    KernelRecord r;
    switch (record->kind) {
      case CUPTI_ACTIVITY_KIND_KERNEL:
      case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
        const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
        r = {k->start, k->end, intern(k->name), KernelKind::Kernel, k->deviceId, k->streamId, k->graphId,
             k->correlationId, 0, uint32_t(k->gridX) * uint32_t(k->gridY) * uint32_t(k->gridZ),
             uint32_t(k->blockX) * uint32_t(k->blockY) * uint32_t(k->blockZ)};
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMCPY: {
        const auto* m = reinterpret_cast<const CUpti_ActivityMemcpy6*>(record);
        const char* name = "[memcpy]";
        switch (m->copyKind) {
          case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD: name = "[memcpy HtoD]"; break;
          case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH: name = "[memcpy DtoH]"; break;
          case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD: name = "[memcpy DtoD]"; break;
          case CUPTI_ACTIVITY_MEMCPY_KIND_HTOH: name = "[memcpy HtoH]"; break;
          case CUPTI_ACTIVITY_MEMCPY_KIND_PTOP: name = "[memcpy PtoP]"; break;
          default: break;
        }
        r = {m->start, m->end, intern(name), KernelKind::Memcpy, m->deviceId, m->streamId, m->graphId,
             m->correlationId, m->bytes, 0, 0};
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMSET: {
        const auto* m = reinterpret_cast<const CUpti_ActivityMemset4*>(record);
        r = {m->start, m->end, intern("[memset]"), KernelKind::Memset, m->deviceId, m->streamId, m->graphId,
             m->correlationId, m->bytes, 0, 0};
        break;
      }
      default: return;
    }
    if (r.start_ns == 0 || r.end_ns < r.start_ns) {  // unfinished when flushed
      ++trace.dropped;
      return;
    }
    trace.records.push_back(r);
  }
};

namespace {

std::mutex g_active_mutex;
CuptiRecorder::State* g_active = nullptr;  // the running recorder, whose buffers CUPTI fills

constexpr size_t kBufferBytes = size_t(8) << 20;

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;
  *max_records = 0;  // as many as fit
}

void CUPTIAPI buffer_completed(CUcontext context, uint32_t stream, uint8_t* buffer, size_t, size_t valid_bytes) {
  {
    std::lock_guard active_lock(g_active_mutex);
    if (g_active && buffer) {
      std::lock_guard lock(g_active->mutex);
      CUpti_Activity* record = nullptr;
      while (api().next_record(buffer, valid_bytes, &record) == CUPTI_SUCCESS) g_active->add(record);
      size_t dropped = 0;
      if (api().dropped_records(context, stream, &dropped) == CUPTI_SUCCESS) g_active->trace.dropped += dropped;
    }
  }
  std::free(buffer);
}

}  // namespace

CuptiRecorder::CuptiRecorder(std::function<double()> profile_clock) : state_(std::make_unique<State>()) {
  Api& a = api();
  if (!a.handle) fail("profile --kernels: {}", a.error);
  uint32_t version = 0;
  check(a.get_version(&version), "cuptiGetVersion");
  if (version < CUPTI_API_VERSION)
    std::fprintf(stderr, "profile --kernels: %s is CUPTI API version %u, older than the %u built against\n",
                 a.path.c_str(), version, unsigned(CUPTI_API_VERSION));
  {
    std::lock_guard lock(g_active_mutex);
    if (g_active) fail("profile --kernels: another CUPTI recorder is running in this process");
    g_active = state_.get();
  }
  try {
    if (!a.callbacks_registered) {
      check(a.register_callbacks(buffer_requested, buffer_completed), "cuptiActivityRegisterCallbacks");
      a.callbacks_registered = true;
    }
    for (CUpti_ActivityKind kind : kKinds) check(a.enable(kind), "cuptiActivityEnable");
    check(a.timestamp(&state_->trace.origin_ns), "cuptiGetTimestamp");
    state_->trace.origin_s = profile_clock ? profile_clock() : 0.0;
  } catch (...) {
    for (CUpti_ActivityKind kind : kKinds) a.disable(kind);
    std::lock_guard lock(g_active_mutex);
    g_active = nullptr;
    throw;
  }
  state_->running = true;
}

CuptiRecorder::~CuptiRecorder() {
  if (state_ && state_->running) stop();
}

KernelTrace CuptiRecorder::stop() {
  if (!state_->running) return {};
  Api& a = api();
  // Forced: delivers the last, partly filled buffers too (completed records only matter; the device is idle).
  const CUptiResult flushed = a.flush_all(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  for (CUpti_ActivityKind kind : kKinds) a.disable(kind);
  a.flush_all(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  {
    std::lock_guard lock(g_active_mutex);
    g_active = nullptr;
  }
  state_->running = false;
  if (flushed != CUPTI_SUCCESS)
    std::fprintf(stderr, "profile --kernels: cuptiActivityFlushAll: %s\n", result_text(flushed).c_str());
  std::lock_guard lock(state_->mutex);
  return std::move(state_->trace);
}

const std::string& CuptiRecorder::library() const { return api().path; }

}  // namespace roofline::perf
