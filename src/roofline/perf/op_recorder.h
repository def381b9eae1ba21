// Records every op call of the backends it listens to (TimedBackend's OpListener) as OpEvents on one clock,
// plus sampled counters (NVML), for `roofline profile` and `roofline report`.
// On the CPU an op's time is its host span (the CPU backend is synchronous). On a GPU a DeviceClock enqueues
// a timestamp on the stream before and after each op (CUDA events), so ops are not synchronised one by one;
// the timestamps are resolved when the backend closes (or by resolve()), and device times are placed on the
// profile clock from the host time of the first timestamp's enqueue (the device runs it no earlier).
#pragma once
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "roofline/backend/timed_backend.h"
#include "roofline/perf/op_profile.h"

namespace roofline::perf {

// Timestamps enqueued on a device stream in op order.
class DeviceClock {
 public:
  virtual ~DeviceClock() = default;
  // Enqueues a timestamp after everything already enqueued; returns its index (0, 1, 2, ...).
  virtual size_t mark() = 0;
  // Seconds from mark 0 to each mark so far, in index order (waits for the device to reach the last one).
  virtual std::vector<double> resolve() = 0;
};

class OpRecorder {
 public:
  OpRecorder();
  ~OpRecorder();
  OpRecorder(const OpRecorder&) = delete;
  OpRecorder& operator=(const OpRecorder&) = delete;

  // A listener for one backend (owned by the recorder, valid as long as it): that backend's ops are timed
  // with `clock` on its device, or on the host without one. Its events carry the listener's index as
  // OpEvent::stream.
  OpListener& listener(std::unique_ptr<DeviceClock> clock = nullptr);
  // Whether any listener times on a device.
  bool device_timed() const;

  // Resolves pending device timestamps into the events (waits for the devices).
  void resolve();
  // Every listener's events, ordered by begin (resolve() first when device-timed).
  std::vector<OpEvent> events() const;
  // Seconds since the recorder was made.
  double now() const;

  // Thread-safe: a sampler thread appends to a named track.
  void add_counter(const std::string& name, const std::string& unit, double t, double value);
  std::vector<CounterTrack> counters() const;

 private:
  class Channel;
  double origin_;  // steady-clock seconds at construction
  std::vector<std::unique_ptr<Channel>> channels_;
  mutable std::mutex counters_mutex_;
  std::vector<CounterTrack> counters_;
};

// A Chrome/Perfetto trace (the JSON object format: {"traceEvents": [...]}) of the events and counters:
// one "X" event per op with args {flops, bytes, shape, phase, step}, on track "device ops" (device-timed) or "ops" (host),
// the host enqueue spans on "host" when device-timed, and one "C" counter track per counter. Loads in
// ui.perfetto.dev and chrome://tracing. Times in microseconds from the recorder's start.
nlohmann::json chrome_trace(const std::vector<OpEvent>& events, const std::vector<CounterTrack>& counters,
                            const std::string& title, bool device_timed);

}  // namespace roofline::perf
