// The GPU's own account of a run, for `roofline profile --kernels`: every kernel, memcpy and memset the
// device executed (CUPTI activity records, graph-replayed nodes included), grouped by kernel name into calls,
// time and share of the device's busy time, plus where the device sat idle: every gap between the end of
// one activity and the start of the next on the device's timeline, by size, by what it sat inside (a graph
// replay, between replays of a graph, around eager launches) and by the pair of kernels around it.
// This file holds no CUDA: the records are plain structs (filled by perf/cuda/cupti_recorder on a GPU, by
// hand in the tests), so the aggregation is tested on any machine.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "roofline/perf/op_profile.h"

namespace roofline::perf {

enum class KernelKind : uint8_t { Kernel, Memcpy, Memset };
const char* to_string(KernelKind kind);

// One activity the device executed. Times are nanoseconds on the recorder's clock (CUPTI's timestamps).
struct KernelRecord {
  uint64_t start_ns = 0, end_ns = 0;
  uint32_t name = 0;  // index into KernelTrace::names: the mangled kernel name, or "[memcpy HtoD]", "[memset]"
  KernelKind kind = KernelKind::Kernel;
  uint32_t device = 0, stream = 0;
  uint32_t graph = 0;        // the CUDA graph that launched it; 0: launched eagerly
  uint32_t correlation = 0;  // the API call that launched it: one cudaGraphLaunch for all nodes of a replay
  uint64_t bytes = 0;        // memcpy and memset
  uint32_t blocks = 0, threads_per_block = 0;  // kernels: grid and block size (x*y*z)
};

// What a recorder hands over: records in any order, their names, and how its clock meets the profile clock.
struct KernelTrace {
  std::vector<std::string> names;
  std::vector<KernelRecord> records;
  uint64_t dropped = 0;    // records CUPTI could not deliver (buffers full)
  uint64_t origin_ns = 0;  // a recorder timestamp taken at profile time `origin_s` (seconds), to align them
  double origin_s = 0;
};

// "void roofline::cuda::(anonymous namespace)::rms_norm<__nv_bfloat16, 4>(__nv_bfloat16 const*, ...)"
// -> "rms_norm<__nv_bfloat16, 4>": demangled (when mangled), without return type, parameters and namespaces
// (also inside template arguments). Names that are not C++ (cuBLASLt's "sm90_xmma_gemm_..." or nvjet
// kernels, "[memcpy HtoD]") come back unchanged.
std::string demangle(const std::string& name);
std::string shorten_kernel_name(std::string_view demangled);

struct KernelStats {
  std::string name;       // shortened
  std::string demangled;  // the first full demangled name of the group
  KernelKind kind = KernelKind::Kernel;
  int64_t calls = 0, graph_calls = 0;  // graph_calls: those replayed from a CUDA graph
  double seconds = 0, min_seconds = 0, max_seconds = 0;
  // What its calls add to the device's busy time: each call's time after everything that started before it
  // has ended. With programmatic dependent launch a kernel starts while its predecessor drains and waits for
  // it, so its own duration counts that wait; the added time does not, and the added times sum to the busy time.
  double added_seconds = 0;
  uint64_t bytes = 0;
  double share = 0;  // of the device's busy time
  double mean_seconds() const { return calls > 0 ? seconds / double(calls) : 0; }
  double mean_added_seconds() const { return calls > 0 ? added_seconds / double(calls) : 0; }
};

// Idle gaps between two activities on a device's timeline, summed over a class.
struct GapClass {
  std::string label;  // "< 2 us", "inside a graph replay", "rms_norm -> nvjet_...", ...
  int64_t count = 0;
  double seconds = 0;
};

// The replays of one CUDA graph: each is the set of nodes one cudaGraphLaunch ran (one correlation id).
struct GraphStats {
  uint32_t graph = 0;
  int64_t launches = 0;
  double nodes_per_launch = 0;
  double span_seconds = 0;  // summed over launches: first node start to last node end
  double busy_seconds = 0;  // summed over launches: time some node ran
  // The graph's kernels (memcpy, memset nodes) by time: calls and seconds summed over its launches, share of
  // its summed span (what a decode step's time goes to when the step is one graph).
  std::vector<KernelStats> kernels;
  double mean_span() const { return launches > 0 ? span_seconds / double(launches) : 0; }
  double mean_busy() const { return launches > 0 ? busy_seconds / double(launches) : 0; }
};

// Copies and memsets that end before a device's first kernel (weights uploaded at load) are setup: counted in
// setup_* and left out of everything else, as the op profile does, so shares and idle time describe the run.
struct KernelSummary {
  int64_t records = 0;  // counted ones (setup excluded)
  int64_t setup_records = 0;
  double setup_seconds = 0;
  uint64_t dropped = 0;
  int devices = 0;
  double span_seconds = 0;  // first start to last end, per device, summed over devices
  double busy_seconds = 0;  // time at least one activity ran, per device, summed over devices
  double idle_seconds = 0;  // span - busy: the sum of the gaps
  int64_t gaps = 0;
  std::vector<KernelStats> rows;       // by total time, descending
  std::vector<GapClass> gap_sizes;     // fixed size classes, smallest first (empty classes kept)
  std::vector<GapClass> gap_contexts;  // inside a graph replay / between graph replays / around eager work
  std::vector<GapClass> gap_pairs;     // "before -> after" kernel pairs, by total gap time, at most `top_pairs`
  std::vector<GraphStats> graphs;      // by total span, descending
  double eager_busy_seconds = 0;       // busy time of activities not launched by a graph (overlaps counted)
  int64_t eager_calls = 0;
};

// Aggregates `trace`; `top_pairs` bounds gap_pairs (0: all).
KernelSummary summarize_kernels(const KernelTrace& trace, size_t top_pairs = 12);
// The table printed by `roofline profile --kernels`: `top` kernel rows (0: all), then busy/idle and the gaps,
// the graphs, and per replay of the two longest-running graphs their `top` kernels.
std::string format_kernel_summary(const KernelSummary& summary, int top);
nlohmann::json to_json(const KernelSummary& summary);
// Chrome/Perfetto trace events (the JSON object format, like chrome_trace) of the records, one track per
// device stream, with the replays of graphs on a track of their own, plus the counters; microseconds on the
// profile clock (the trace's origin_s/origin_ns align the two clocks).
nlohmann::json kernel_chrome_trace(const KernelTrace& trace, const std::vector<CounterTrack>& counters,
                                   const std::string& title);

}  // namespace roofline::perf
