// Records what the GPU executes through CUPTI's activity API: every kernel (CONCURRENT_KERNEL records, which
// include the nodes of replayed CUDA graphs), memcpy and memset, with device start and end times, for
// `roofline profile --kernels`. Nothing is wrapped or synchronised: the program runs as in production.
//
// libcupti is opened at run time (dlopen) rather than linked, so roofline starts on a machine without CUPTI
// (it ships with the toolkit, not the driver) and only --kernels needs it. Tried in order: the file named by
// ROOFLINE_CUPTI_LIBRARY (only that, when set); the versioned soname through the ordinary search (LD_LIBRARY_PATH,
// the binary's RUNPATH, which holds the toolkit's lib dir, the loader cache); the directory CMake found it in
// at build time; the usual toolkit places under /usr/local/cuda. Built only with CUDA and CUPTI's headers
// (ROOFLINE_HAVE_CUPTI).
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "roofline/perf/kernel_profile.h"

namespace roofline::perf {

class CuptiRecorder {
 public:
  // Loads CUPTI and starts recording. `profile_clock` gives seconds on the profile's clock (the trace aligns
  // device records to it). Throws roofline::Error saying why when CUPTI cannot be loaded or started, or when
  // another recorder is running (CUPTI's buffers are process-wide).
  explicit CuptiRecorder(std::function<double()> profile_clock = nullptr);
  ~CuptiRecorder();
  CuptiRecorder(const CuptiRecorder&) = delete;
  CuptiRecorder& operator=(const CuptiRecorder&) = delete;

  // Flushes CUPTI's buffers, stops recording and returns every record (call after the device finished the
  // work: records of unfinished work are dropped). Idempotent: later calls return an empty trace.
  KernelTrace stop();
  // The libcupti file that was loaded.
  const std::string& library() const;

  struct State;

 private:
  std::unique_ptr<State> state_;
};

}  // namespace roofline::perf
