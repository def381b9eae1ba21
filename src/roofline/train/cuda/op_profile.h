// Per-op GPU time of CUDA training, on when ROOFLINE_TRAIN_PROFILE=1: the model records a CUDA event after each
// op (mark) and, once the stream is synchronized (flush), charges the time between consecutive events to the
// later op. Time between a sync and the next start() (host work, launch latency) is not charged to any op:
// the step time minus the table's total is that gap. The first micro-batch (plan creation, allocation) is
// left out. The table (ms per micro-batch, share, achieved TFLOP/s from each op's FLOP count) goes to stderr
// when the model is destroyed. Off, every call returns at once.
#pragma once
#include <cuda_runtime_api.h>

#include <map>
#include <string>
#include <vector>

namespace roofline::train::cuda {

class OpProfile {
 public:
  explicit OpProfile(cudaStream_t stream);
  ~OpProfile();
  OpProfile(const OpProfile&) = delete;
  OpProfile& operator=(const OpProfile&) = delete;

  bool enabled() const { return enabled_; }
  void start();                                  // a boundary: the next mark's time starts here
  void mark(const char* op, double flops = 0);   // the time since the previous event belongs to `op`
  void flush();                                  // after a stream sync: read the recorded events
  void end_micro_batch() { ++micro_batches_; }   // the first one is discarded as warm-up
  std::string table() const;

 private:
  struct Stat {
    double ms = 0, flops = 0;
    int64_t calls = 0;
    int64_t order = 0;  // first appearance, for the table's row order
  };
  cudaEvent_t event_at(size_t i);

  bool enabled_ = false;
  cudaStream_t stream_;
  std::vector<cudaEvent_t> events_;          // a pool, reused after each flush
  std::vector<const char*> names_;           // per recorded event: the op it ends (null: a boundary)
  std::vector<double> flops_;
  size_t used_ = 0;
  int64_t micro_batches_ = 0;                 // counted by the model; stats before the second are dropped
  std::map<std::string, Stat> stats_;
};

}  // namespace roofline::train::cuda
