// Op timestamps on a CUDA stream: one event recorded per mark, resolved to seconds since the first.
// Header-only and included only where ROOFLINE_HAVE_CUDA is defined (the apps), because the perf library
// builds without the CUDA toolkit. Events are resolved and recycled every kBatch marks (one host wait per
// kBatch/2 ops), so a long run holds a bounded number of them. Each mark is timed against the one before
// it (cudaEventElapsedTime is a float in ms: against a distant base it would lose microseconds) and the
// differences are summed in double.
#pragma once
#include <cuda_runtime_api.h>

#include <vector>

#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/perf/op_recorder.h"

namespace roofline::perf {

class CudaEventClock final : public DeviceClock {
 public:
  explicit CudaEventClock(cudaStream_t stream) : stream_(stream) {}
  ~CudaEventClock() override {
    for (cudaEvent_t e : pending_) cudaEventDestroy(e);
    for (cudaEvent_t e : free_) cudaEventDestroy(e);
    if (prev_) cudaEventDestroy(prev_);
  }
  CudaEventClock(const CudaEventClock&) = delete;
  CudaEventClock& operator=(const CudaEventClock&) = delete;

  size_t mark() override {
    if (pending_.size() >= kBatch) drain();
    cudaEvent_t e = nullptr;
    if (!free_.empty()) {
      e = free_.back();
      free_.pop_back();
    } else {
      ROOFLINE_CUDA_CHECK(cudaEventCreate(&e));
    }
    ROOFLINE_CUDA_CHECK(cudaEventRecord(e, stream_));
    if (!prev_) {  // mark 0
      prev_ = e;
      seconds_.push_back(0.0);
      return 0;
    }
    pending_.push_back(e);
    return seconds_.size() + pending_.size() - 1;
  }

  std::vector<double> resolve() override {
    drain();
    return seconds_;
  }

 private:
  static constexpr size_t kBatch = 16384;
  void drain() {
    if (pending_.empty()) return;
    ROOFLINE_CUDA_CHECK(cudaEventSynchronize(pending_.back()));
    for (cudaEvent_t e : pending_) {
      float ms = 0;
      ROOFLINE_CUDA_CHECK(cudaEventElapsedTime(&ms, prev_, e));
      seconds_.push_back(seconds_.back() + double(ms) * 1e-3);
      free_.push_back(prev_);
      prev_ = e;
    }
    pending_.clear();
  }
  cudaStream_t stream_;
  cudaEvent_t prev_ = nullptr;  // the last resolved mark (the next one is timed against it)
  std::vector<cudaEvent_t> pending_, free_;
  std::vector<double> seconds_;  // resolved marks, by index
};

}  // namespace roofline::perf
