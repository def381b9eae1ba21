#include "roofline/train/cuda/op_profile.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "roofline/backend/cuda/cuda_check.h"

namespace roofline::train::cuda {

OpProfile::OpProfile(cudaStream_t stream) : stream_(stream) {
  const char* env = std::getenv("ROOFLINE_TRAIN_PROFILE");
  enabled_ = env && std::strcmp(env, "0") != 0 && *env != '\0';
}

OpProfile::~OpProfile() {
  for (cudaEvent_t e : events_) cudaEventDestroy(e);
}

cudaEvent_t OpProfile::event_at(size_t i) {
  while (events_.size() <= i) {
    cudaEvent_t e = nullptr;
    ROOFLINE_CUDA_CHECK(cudaEventCreate(&e));
    events_.push_back(e);
  }
  return events_[i];
}

void OpProfile::start() {
  if (!enabled_) return;
  ROOFLINE_CUDA_CHECK(cudaEventRecord(event_at(used_), stream_));
  names_.resize(used_ + 1);
  flops_.resize(used_ + 1);
  names_[used_] = nullptr;
  flops_[used_] = 0;
  ++used_;
}

void OpProfile::mark(const char* op, double flops) {
  if (!enabled_) return;
  ROOFLINE_CUDA_CHECK(cudaEventRecord(event_at(used_), stream_));
  names_.resize(used_ + 1);
  flops_.resize(used_ + 1);
  names_[used_] = op;
  flops_[used_] = flops;
  ++used_;
}

void OpProfile::flush() {
  if (!enabled_) return;
  if (micro_batches_ >= 1) {  // micro-batch 0 is warm-up
    for (size_t i = 1; i < used_; ++i) {
      if (!names_[i]) continue;
      float ms = 0;
      ROOFLINE_CUDA_CHECK(cudaEventElapsedTime(&ms, events_[i - 1], events_[i]));
      auto [it, inserted] = stats_.try_emplace(names_[i]);
      if (inserted) it->second.order = int64_t(stats_.size());
      it->second.ms += ms;
      it->second.flops += flops_[i];
      ++it->second.calls;
    }
  }
  used_ = 0;
}

std::string OpProfile::table() const {
  const int64_t counted = micro_batches_ - 1;
  if (!enabled_ || counted <= 0 || stats_.empty()) return {};
  std::vector<std::pair<std::string, Stat>> rows(stats_.begin(), stats_.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
  double total = 0;
  for (const auto& [name, s] : rows) total += s.ms;
  std::string out = fmt::format("ROOFLINE_TRAIN_PROFILE: GPU time per micro-batch over {} micro-batches "
                                "(events between ops; optimizer ops per step)\n",
                                counted);
  out += fmt::format("{:<28} {:>9} {:>7} {:>7} {:>9}\n", "op", "ms", "share", "calls", "TFLOP/s");
  for (const auto& [name, s] : rows) {
    const std::string rate = s.flops > 0 ? fmt::format("{:.1f}", s.flops / (s.ms * 1e-3) / 1e12) : "";
    out += fmt::format("{:<28} {:>9.3f} {:>6.1f}% {:>7} {:>9}\n", name, s.ms / double(counted),
                       100.0 * s.ms / total, s.calls / counted, rate);
  }
  out += fmt::format("{:<28} {:>9.3f}\n", "total", total / double(counted));
  return out;
}

}  // namespace roofline::train::cuda
