// The measured side of the roofline, for `roofline profile` and `roofline report`: recorded op calls
// (name, shape, time, FLOPs, bytes) joined with the hardware's roofs into achieved FLOP/s and B/s, the
// fraction of the roof, and a bottleneck class per op and for the whole run, each with the lever that fixes
// it (the bottleneck map: compute, memory, launch/overhead, host input pipeline, host-device copies,
// collectives, queueing).
//
// Time accounting of a run. The span runs from the first compute op to the end of the last op (copies
// before the first compute op, e.g. weights uploaded at load, are setup). Inside it:
//   busy  = the sum of op durations (ops on one stream never overlap),
//   idle  = span - busy: on the CPU (ops timed on the host) the host work between ops, i.e. the host
//           pipeline (sampling, tokenizing, glue); on a GPU (ops timed on the device) the device's idle
//           gaps, split into host pipeline (the host was outside any op: it was busy elsewhere) and
//           launch gaps (the host was enqueueing ops: launch-bound).
// Each op's time goes to its own class (compute, memory, overhead, copy, collective).
#pragma once
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "roofline/backend/timed_backend.h"
#include "roofline/perf/hardware.h"

namespace roofline::perf {

// One op call. Times are seconds on the profile's clock (steady clock, 0 at the recorder's start); on a
// device timed with events, begin/end are device times mapped onto that clock and host_* the enqueue span.
struct OpEvent {
  std::string name;   // "matmul", "attention", "upload", ...
  std::string shape;  // OpWork::shape
  OpCategory category = OpCategory::Compute;
  double begin = 0, end = 0;
  double host_begin = 0, host_end = 0;
  double flops = 0, bytes = 0;
  int stream = 0;  // which recorded backend (OpRecorder listener) ran it
  std::string phase;  // PhaseTag::name ("prefill", "decode", ...); empty outside any PhaseScope
  int64_t step = -1;  // PhaseTag::step: the events of one step of the phase share it
  double seconds() const { return end - begin; }
};

// A sampled counter (NVML: utilisation, memory, power, clock), shown as a counter track in the trace.
struct CounterSample {
  double t = 0;  // profile clock, seconds
  double value = 0;
};
struct CounterTrack {
  std::string name;  // "gpu_util", "memory_used", ...
  std::string unit;  // "%", "MiB", "W", "MHz"
  std::vector<CounterSample> samples;
  double mean() const;
  double max() const;
};

// The two roofs an op is measured against.
struct Roofs {
  std::string hardware;      // what the figures are: "cpu (calibrated)", "h100 (datasheet)"
  double peak_flops = 0;     // FLOP/s
  double memory_bandwidth = 0;  // bytes/s
  // An op whose mean call is shorter than this and that reaches under half its roof is overhead-bound: its
  // time is dispatch (kernel launch, thread-pool wake-up), not work.
  double overhead_call_seconds = 10e-6;
  bool known() const { return peak_flops > 0 && memory_bandwidth > 0; }
  double ridge() const { return known() ? peak_flops / memory_bandwidth : 0; }  // FLOP per byte
  static Roofs from(const HardwareSpec& hw);
};

// The roofs of `--hw` NAME_OR_FILE as resolve_hardware finds it (an entry of the calibration file, "" for the
// default one, else the datasheet or the CPU estimate). An unknown name gives unknown roofs (known() false)
// with the reason in `hardware`.
Roofs roofs_for(const std::string& hw_name_or_file, const std::string& calibration_path = "");

enum class Bottleneck { Compute, Memory, Overhead, HostPipeline, HostDeviceCopy, Collective, Queueing };
inline constexpr Bottleneck kAllBottlenecks[] = {Bottleneck::Compute,        Bottleneck::Memory,
                                                 Bottleneck::Overhead,       Bottleneck::HostPipeline,
                                                 Bottleneck::HostDeviceCopy, Bottleneck::Collective,
                                                 Bottleneck::Queueing};
// "compute", "memory", "overhead", "host_pipeline", "host_device_copy", "collective", "queueing".
std::string_view to_string(Bottleneck b);
// One line: what the class means.
std::string_view describe(Bottleneck b);
// One line: the lever that moves it.
std::string_view lever(Bottleneck b);

// Calls of one op (one name, or one name and shape) added up.
struct OpStats {
  std::string name, shape;  // shape empty when aggregated by name only
  OpCategory category = OpCategory::Compute;
  int64_t calls = 0;
  double seconds = 0, flops = 0, bytes = 0;

  double intensity() const { return bytes > 0 ? flops / bytes : 0; }  // FLOP per byte
  double flops_per_second() const { return seconds > 0 ? flops / seconds : 0; }
  double bytes_per_second() const { return seconds > 0 ? bytes / seconds : 0; }
  // The least time the work could take on these roofs: max(FLOPs / peak, bytes / bandwidth).
  double roof_seconds(const Roofs& roofs) const;
  // roof_seconds / seconds: 1 is at the roof (0 when the roofs are unknown).
  double roof_fraction(const Roofs& roofs) const;
};

// Copy -> host_device_copy, Collective -> collective; a compute op: overhead when its mean call is under
// roofs.overhead_call_seconds and it reaches under half its roof, else compute when its intensity is at or
// above the ridge point, else memory. With unknown roofs the ridge is taken as kDefaultRidge and no op is
// called overhead-bound.
inline constexpr double kDefaultRidge = 10.0;  // FLOP per byte
Bottleneck classify_op(const OpStats& op, const Roofs& roofs);

// Seconds of the span in each class.
struct RunBreakdown {
  double span_seconds = 0;   // first compute op to the end of the last op
  double setup_seconds = 0;  // op time before the span (copies at load)
  double busy_seconds = 0;   // sum of op durations in the span
  double seconds[std::size(kAllBottlenecks)] = {};
  double& operator[](Bottleneck b) { return seconds[size_t(b)]; }
  double operator[](Bottleneck b) const { return seconds[size_t(b)]; }
  double total() const;  // sum over classes (= span unless queueing was added)
};

struct Verdict {
  Bottleneck bottleneck = Bottleneck::Memory;
  double share = 0;         // of the classified time
  std::string explanation;  // one or two sentences with the numbers
};

// The class with the most time wins; `roof_fraction` (of the ops in the winning class, time-weighted) is
// quoted for compute and memory, and near the roof (>= 0.7) the lever changes from "reach the roof" to
// "change the work".
Verdict classify_run(const RunBreakdown& breakdown, double roof_fraction_of_winner);

// The span ops of one phase (OpEvent::phase; kNoPhase for ops outside any PhaseScope).
inline constexpr std::string_view kNoPhase = "other";
struct PhaseStats {
  std::string name;
  int64_t steps = 0;            // distinct OpEvent::step values (0 for kNoPhase)
  int64_t op_calls = 0;
  double seconds = 0;           // sum of its op durations
  double step_wall_seconds = 0; // sum over its steps of first op begin to last op end (ops and the gaps between)
  double flops = 0, bytes = 0;
  std::vector<OpStats> by_name;  // most time first
  std::vector<Bottleneck> by_name_class;
  double seconds_per_step() const { return steps > 0 ? seconds / double(steps) : 0; }
  double wall_seconds_per_step() const { return steps > 0 ? step_wall_seconds / double(steps) : 0; }
};

// What summarize() makes of a recording.
struct ProfileSummary {
  Roofs roofs;
  bool device_timed = false;       // ops timed on the device (GPU events), else on the host clock
  std::vector<OpStats> by_name;    // span ops, most time first
  std::vector<OpStats> by_shape;   // span ops by (name, shape), most time first
  std::vector<Bottleneck> by_name_class, by_shape_class;  // classify_op of each row (by_name: of its shapes, by time)
  RunBreakdown breakdown;
  Verdict verdict;
  int64_t op_calls = 0;            // in the span
  double host_wait_seconds = 0;    // synchronize() calls in the span (host blocked on the device)
  double achieved_flops = 0, achieved_bytes = 0;  // totals over the span
  // Per phase, in order of first appearance; empty when no op ran inside a PhaseScope. Their op calls and
  // seconds add up to op_calls and busy seconds.
  std::vector<PhaseStats> phases;
};

// queue_seconds: time requests waited for a slot (serving), added as the queueing class.
ProfileSummary summarize(const std::vector<OpEvent>& events, const Roofs& roofs, bool device_timed,
                         double queue_seconds = 0);

// {"hardware", "roofs": {...}, "span_seconds", "ops": [...], "op_shapes": [...], "breakdown": {...},
//  "verdict": {"bottleneck", "share", "explanation", "lever"}, "phases": [{"name", "steps", ...}],
//  "op_phases": [...]}: rows of "ops" and "op_shapes" carry "phase": "all", rows of "op_phases" their phase.
nlohmann::json to_json(const ProfileSummary& summary);
// One section per phase (its ops, share of the phase, per-step figures), then the per-op table of the whole
// run and the verdict, for people; `top` rows per table (0: all).
std::string format_summary(const ProfileSummary& summary, int top);

// "12.3 GFLOP/s", "1.20 TFLOP/s", "850 MB/s": SI prefixes for rates and sizes.
std::string si(double value, std::string_view unit);

}  // namespace roofline::perf
