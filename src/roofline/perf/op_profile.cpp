#include "roofline/perf/op_profile.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

namespace roofline::perf {

double CounterTrack::mean() const {
  if (samples.empty()) return 0;
  double s = 0;
  for (const CounterSample& c : samples) s += c.value;
  return s / double(samples.size());
}

double CounterTrack::max() const {
  double m = 0;
  for (const CounterSample& c : samples) m = std::max(m, c.value);
  return m;
}

Roofs Roofs::from(const HardwareSpec& hw) {
  Roofs r;
  r.hardware = hw.name + " (" + (hw.source.empty() ? "unknown source" : hw.source) + ")";
  r.peak_flops = hw.peak_bf16_flops;
  r.memory_bandwidth = hw.memory_bandwidth;
  return r;
}

Roofs roofs_for(const std::string& hw_name_or_file, const std::string& calibration_path) {
  try {
    return Roofs::from(resolve_hardware(hw_name_or_file, calibration_path_or_default(calibration_path)));
  } catch (const std::exception& e) {
    Roofs r;
    r.hardware = hw_name_or_file + " (no figures: " + e.what() + ")";
    return r;
  }
}

std::string_view to_string(Bottleneck b) {
  switch (b) {
    case Bottleneck::Compute: return "compute";
    case Bottleneck::Memory: return "memory";
    case Bottleneck::Overhead: return "overhead";
    case Bottleneck::HostPipeline: return "host_pipeline";
    case Bottleneck::HostDeviceCopy: return "host_device_copy";
    case Bottleneck::Collective: return "collective";
    case Bottleneck::Queueing: return "queueing";
  }
  return "?";
}

std::string_view describe(Bottleneck b) {
  switch (b) {
    case Bottleneck::Compute:
      return "compute-bound: the ops are above the ridge point, arithmetic sets their time";
    case Bottleneck::Memory:
      return "memory-bound: the ops are below the ridge point, bytes moved set their time";
    case Bottleneck::Overhead:
      return "launch/overhead-bound: many tiny ops (or idle gaps between them) cost more than their work";
    case Bottleneck::HostPipeline:
      return "host input pipeline: the device waits while the host works outside the ops (sampling, "
             "tokenizing, glue)";
    case Bottleneck::HostDeviceCopy: return "host-device copies: transfers between host and device dominate";
    case Bottleneck::Collective: return "collectives: communication between devices dominates";
    case Bottleneck::Queueing: return "queueing: requests wait for a slot longer than they run";
  }
  return "?";
}

std::string_view lever(Bottleneck b) {
  switch (b) {
    case Bottleneck::Compute:
      return "faster math: lower-precision matmuls (fp8/int8 tensor cores), better-tiled kernels; or less "
             "math (smaller model, fewer recomputed activations)";
    case Bottleneck::Memory:
      return "fewer bytes per token: batch more tokens per weight read (larger batch, speculative decoding), "
             "quantize weights and KV cache (int8/int4/fp8), fuse elementwise ops";
    case Bottleneck::Overhead:
      return "fewer, bigger launches: CUDA graphs, fused kernels, larger batches; on the CPU fewer parallel "
             "regions per step";
    case Bottleneck::HostPipeline:
      return "overlap host and device: sample on the device, prefetch/tokenize ahead, run host work "
             "asynchronously, batch requests";
    case Bottleneck::HostDeviceCopy:
      return "keep data resident on the device, use pinned memory and async copies overlapped with compute, "
             "copy less (device-side sampling)";
    case Bottleneck::Collective:
      return "overlap communication with compute, shard less (more data, less tensor parallelism), bigger "
             "messages, a faster interconnect";
    case Bottleneck::Queueing:
      return "more capacity (replicas, larger batches), admission control, priority scheduling, shorter "
             "max tokens";
  }
  return "?";
}

double OpStats::roof_seconds(const Roofs& roofs) const {
  if (!roofs.known()) return 0;
  return std::max(flops / roofs.peak_flops, bytes / roofs.memory_bandwidth);
}

double OpStats::roof_fraction(const Roofs& roofs) const {
  return seconds > 0 ? roof_seconds(roofs) / seconds : 0;
}

Bottleneck classify_op(const OpStats& op, const Roofs& roofs) {
  if (op.category == OpCategory::Copy) return Bottleneck::HostDeviceCopy;
  if (op.category == OpCategory::Collective) return Bottleneck::Collective;
  if (roofs.known() && op.calls > 0) {
    const double mean_call = op.seconds / double(op.calls);
    if (mean_call < roofs.overhead_call_seconds && op.roof_fraction(roofs) < 0.5) return Bottleneck::Overhead;
  }
  const double ridge = roofs.known() ? roofs.ridge() : kDefaultRidge;
  return op.flops > 0 && op.intensity() >= ridge ? Bottleneck::Compute : Bottleneck::Memory;
}

double RunBreakdown::total() const {
  double s = 0;
  for (double v : seconds) s += v;
  return s;
}

Verdict classify_run(const RunBreakdown& breakdown, double roof_fraction_of_winner) {
  Verdict v;
  const double total = breakdown.total();
  double best = -1;
  for (Bottleneck b : kAllBottlenecks)
    if (breakdown[b] > best) best = breakdown[b], v.bottleneck = b;
  v.share = total > 0 ? best / total : 0;
  v.explanation = fmt::format("{} ({:.0f}% of the run).", describe(v.bottleneck), 100.0 * v.share);
  if (v.bottleneck == Bottleneck::Compute || v.bottleneck == Bottleneck::Memory) {
    const char* roof = v.bottleneck == Bottleneck::Compute ? "compute" : "bandwidth";
    if (roof_fraction_of_winner >= 0.7)
      v.explanation += fmt::format(" These ops run at {:.0f}% of the {} roof: the kernels are near the limit, so "
                                   "the lever is to change the work.",
                                   100.0 * roof_fraction_of_winner, roof);
    else if (roof_fraction_of_winner > 0)
      v.explanation += fmt::format(" These ops reach {:.0f}% of the {} roof: better kernels can still gain up to "
                                   "{:.1f}x before the lever below.",
                                   100.0 * roof_fraction_of_winner, roof, 1.0 / roof_fraction_of_winner);
  }
  return v;
}

namespace {

void add_to(OpStats& s, const OpEvent& e) {
  s.calls += 1;
  s.seconds += e.seconds();
  s.flops += e.flops;
  s.bytes += e.bytes;
}

std::vector<OpStats> sorted(std::map<std::pair<std::string, std::string>, OpStats>& m) {
  std::vector<OpStats> out;
  for (auto& [key, s] : m) out.push_back(std::move(s));
  std::stable_sort(out.begin(), out.end(), [](const OpStats& a, const OpStats& b) { return a.seconds > b.seconds; });
  return out;
}

}  // namespace

ProfileSummary summarize(const std::vector<OpEvent>& events, const Roofs& roofs, bool device_timed,
                         double queue_seconds) {
  ProfileSummary s;
  s.roofs = roofs;
  s.device_timed = device_timed;
  RunBreakdown& br = s.breakdown;

  double span_begin = INFINITY, span_end = -INFINITY;
  for (const OpEvent& e : events)
    if (e.category == OpCategory::Compute) span_begin = std::min(span_begin, e.begin);
  if (!std::isfinite(span_begin)) span_begin = events.empty() ? 0 : INFINITY;  // no compute op: all setup
  for (const OpEvent& e : events)
    if (e.category != OpCategory::Sync && e.begin >= span_begin) span_end = std::max(span_end, e.end);

  std::map<std::pair<std::string, std::string>, OpStats> names, shapes;
  double host_enqueue = 0;
  struct PhaseAccumulator {
    std::map<std::pair<std::string, std::string>, OpStats> names;
    std::map<int64_t, std::pair<double, double>> step_spans;  // step -> first begin, last end
    double first_begin = INFINITY;
  };
  std::map<std::string, PhaseAccumulator> phase_acc;
  for (const OpEvent& e : events) {
    if (e.category == OpCategory::Sync) {
      if (e.host_begin >= span_begin && e.host_end <= span_end) s.host_wait_seconds += e.host_end - e.host_begin;
      continue;
    }
    if (e.begin < span_begin) {
      br.setup_seconds += e.seconds();
      continue;
    }
    s.op_calls += 1;
    br.busy_seconds += e.seconds();
    host_enqueue += e.host_end - e.host_begin;
    s.achieved_flops += e.flops;
    s.achieved_bytes += e.bytes;
    OpStats& n = names[{e.name, ""}];
    n.name = e.name, n.category = e.category;
    add_to(n, e);
    OpStats& sh = shapes[{e.name, e.shape}];
    sh.name = e.name, sh.shape = e.shape, sh.category = e.category;
    add_to(sh, e);
    PhaseAccumulator& ph = phase_acc[e.phase.empty() ? std::string(kNoPhase) : e.phase];
    OpStats& pn = ph.names[{e.name, ""}];
    pn.name = e.name, pn.category = e.category;
    add_to(pn, e);
    ph.first_begin = std::min(ph.first_begin, e.begin);
    if (!e.phase.empty()) {
      auto [it, fresh] = ph.step_spans.try_emplace(e.step, e.begin, e.end);
      if (!fresh) it->second = {std::min(it->second.first, e.begin), std::max(it->second.second, e.end)};
    }
  }
  br.span_seconds = s.op_calls > 0 ? span_end - span_begin : 0;
  s.by_name = sorted(names);
  s.by_shape = sorted(shapes);

  // Op time by class, per shape (a decode matmul and a prefill matmul are different ops on the roofline).
  std::map<std::string, std::map<Bottleneck, double>> name_class_time;
  for (const OpStats& op : s.by_shape) {
    const Bottleneck b = classify_op(op, roofs);
    s.by_shape_class.push_back(b);
    br[b] += op.seconds;
    name_class_time[op.name][b] += op.seconds;
  }
  for (const OpStats& op : s.by_name) {
    Bottleneck best = classify_op(op, roofs);
    double most = -1;
    for (auto& [b, t] : name_class_time[op.name])
      if (t > most) most = t, best = b;
    s.by_name_class.push_back(best);
  }

  // The idle part of the span (see the header): host pipeline, and on a device also launch gaps.
  const double idle = std::max(0.0, br.span_seconds - br.busy_seconds);
  if (device_timed) {
    const double host_outside = std::max(0.0, br.span_seconds - host_enqueue - s.host_wait_seconds);
    const double pipeline = std::min(idle, host_outside);
    br[Bottleneck::HostPipeline] += pipeline;
    br[Bottleneck::Overhead] += idle - pipeline;
  } else {
    br[Bottleneck::HostPipeline] += idle;
  }
  br[Bottleneck::Queueing] += queue_seconds;

  // Phases, only when some op ran inside a PhaseScope; in order of their first op.
  if (!(phase_acc.empty() || (phase_acc.size() == 1 && phase_acc.begin()->first == kNoPhase))) {
    for (auto& [name, acc] : phase_acc) {
      PhaseStats p;
      p.name = name;
      p.steps = int64_t(acc.step_spans.size());
      for (auto& [step, span] : acc.step_spans) p.step_wall_seconds += span.second - span.first;
      p.by_name = sorted(acc.names);
      for (const OpStats& op : p.by_name) {
        p.op_calls += op.calls;
        p.seconds += op.seconds;
        p.flops += op.flops;
        p.bytes += op.bytes;
        p.by_name_class.push_back(classify_op(op, roofs));
      }
      s.phases.push_back(std::move(p));
    }
    std::stable_sort(s.phases.begin(), s.phases.end(), [&](const PhaseStats& a, const PhaseStats& b) {
      return phase_acc[a.name].first_begin < phase_acc[b.name].first_begin;
    });
  }

  // The time-weighted roof fraction of the ops in the class that wins.
  Bottleneck winner = classify_run(br, 0).bottleneck;
  double roof_time = 0, time = 0;
  for (size_t i = 0; i < s.by_shape.size(); ++i)
    if (s.by_shape_class[i] == winner) roof_time += s.by_shape[i].roof_seconds(roofs), time += s.by_shape[i].seconds;
  s.verdict = classify_run(br, time > 0 ? roof_time / time : 0);
  return s;
}

namespace {

nlohmann::json op_json(const OpStats& op, Bottleneck b, const Roofs& roofs) {
  nlohmann::json j = {{"name", op.name},
                      {"calls", op.calls},
                      {"seconds", op.seconds},
                      {"flops", op.flops},
                      {"bytes", op.bytes},
                      {"intensity", op.intensity()},
                      {"flops_per_s", op.flops_per_second()},
                      {"bytes_per_s", op.bytes_per_second()},
                      {"roof_fraction", op.roof_fraction(roofs)},
                      {"bottleneck", to_string(b)}};
  if (!op.shape.empty()) j["shape"] = op.shape;
  return j;
}

}  // namespace

nlohmann::json to_json(const ProfileSummary& s) {
  nlohmann::json ops = nlohmann::json::array(), shapes = nlohmann::json::array();
  const double span = s.breakdown.span_seconds;
  for (size_t i = 0; i < s.by_name.size(); ++i) {
    ops.push_back(op_json(s.by_name[i], s.by_name_class[i], s.roofs));
    ops.back()["share"] = span > 0 ? s.by_name[i].seconds / span : 0;
  }
  for (nlohmann::json& row : ops) row["phase"] = "all";
  for (size_t i = 0; i < s.by_shape.size(); ++i) {
    shapes.push_back(op_json(s.by_shape[i], s.by_shape_class[i], s.roofs));
    shapes.back()["phase"] = "all";
  }
  nlohmann::json phases = nlohmann::json::array(), op_phases = nlohmann::json::array();
  for (const PhaseStats& p : s.phases) {
    phases.push_back({{"name", p.name},
                      {"steps", p.steps},
                      {"op_calls", p.op_calls},
                      {"seconds", p.seconds},
                      {"share", s.breakdown.busy_seconds > 0 ? p.seconds / s.breakdown.busy_seconds : 0},
                      {"flops", p.flops},
                      {"bytes", p.bytes},
                      {"seconds_per_step", p.seconds_per_step()},
                      {"wall_seconds_per_step", p.wall_seconds_per_step()}});
    for (size_t i = 0; i < p.by_name.size(); ++i) {
      nlohmann::json row = op_json(p.by_name[i], p.by_name_class[i], s.roofs);
      row["phase"] = p.name;
      row["share"] = p.seconds > 0 ? p.by_name[i].seconds / p.seconds : 0;
      if (p.steps > 0) row["calls_per_step"] = double(p.by_name[i].calls) / double(p.steps);
      op_phases.push_back(std::move(row));
    }
  }
  nlohmann::json classes = nlohmann::json::object();
  const double total = s.breakdown.total();
  for (Bottleneck b : kAllBottlenecks)
    classes[std::string(to_string(b))] = {{"seconds", s.breakdown[b]},
                                          {"share", total > 0 ? s.breakdown[b] / total : 0}};
  return {{"hardware", s.roofs.hardware},
          {"roofs", {{"peak_flops_per_s", s.roofs.peak_flops},
                     {"memory_bytes_per_s", s.roofs.memory_bandwidth},
                     {"ridge_flops_per_byte", s.roofs.ridge()}}},
          {"timing", s.device_timed ? "device events" : "host steady clock"},
          {"span_seconds", span},
          {"setup_seconds", s.breakdown.setup_seconds},
          {"busy_seconds", s.breakdown.busy_seconds},
          {"host_wait_seconds", s.host_wait_seconds},
          {"op_calls", s.op_calls},
          {"flops", s.achieved_flops},
          {"bytes", s.achieved_bytes},
          {"ops", ops},
          {"op_shapes", shapes},
          {"breakdown", classes},
          {"verdict", {{"bottleneck", to_string(s.verdict.bottleneck)},
                       {"share", s.verdict.share},
                       {"explanation", s.verdict.explanation},
                       {"lever", lever(s.verdict.bottleneck)}}},
          {"phases", phases},
          {"op_phases", op_phases}};
}

std::string si(double value, std::string_view unit) {
  static const char* prefixes[] = {"", "k", "M", "G", "T", "P"};
  int i = 0;
  double v = std::fabs(value);
  while (v >= 1000 && i < 5) v /= 1000, ++i;
  v = std::copysign(v, value);
  return fmt::format(fmt::runtime(v >= 100 || v == 0 ? "{:.0f} {}{}" : v >= 10 ? "{:.1f} {}{}" : "{:.2f} {}{}"), v,
                     prefixes[i], unit);
}

std::string format_summary(const ProfileSummary& s, int top) {
  std::string out;
  const RunBreakdown& br = s.breakdown;
  out += fmt::format("roofs: {}: {}, {} (ridge {:.1f} FLOP/B); ops timed with {}\n", s.roofs.hardware,
                     si(s.roofs.peak_flops, "FLOP/s"), si(s.roofs.memory_bandwidth, "B/s"), s.roofs.ridge(),
                     s.device_timed ? "device events" : "the host steady clock");
  for (const PhaseStats& p : s.phases) {
    out += fmt::format("\n-- {}: {:.3f} ms of ops ({:.1f}% of op time), {} op calls", p.name, p.seconds * 1e3,
                       br.busy_seconds > 0 ? 100.0 * p.seconds / br.busy_seconds : 0, p.op_calls);
    if (p.steps > 0)
      out += fmt::format("; {} step{}, {:.3f} ms of ops per step ({:.3f} ms first op to last)", p.steps,
                         p.steps == 1 ? "" : "s",
                         p.seconds_per_step() * 1e3, p.wall_seconds_per_step() * 1e3);
    out += "\n";
    out += fmt::format("{:<20} {:>7} {:>9} {:>10} {:>6} {:>10} {:>13} {:>11} {:>6}  {}\n", "op", "calls", "per step",
                       "total ms", "share", "ms/step", "achieved", "bandwidth", "roof", "bound");
    const size_t rows = top > 0 ? std::min(p.by_name.size(), size_t(top)) : p.by_name.size();
    for (size_t i = 0; i < rows; ++i) {
      const OpStats& op = p.by_name[i];
      const double steps = double(p.steps);  // none outside a PhaseScope: no per-step figures
      out += fmt::format("{:<20} {:>7} {:>9} {:>10.3f} {:>5.1f}% {:>10} {:>13} {:>11} {:>5.0f}%  {}\n", op.name,
                         op.calls, steps > 0 ? fmt::format("{:.1f}", double(op.calls) / steps) : "-",
                         op.seconds * 1e3, p.seconds > 0 ? 100.0 * op.seconds / p.seconds : 0,
                         steps > 0 ? fmt::format("{:.4f}", op.seconds * 1e3 / steps) : "-",
                         si(op.flops_per_second(), "FLOP/s"), si(op.bytes_per_second(), "B/s"),
                         100.0 * op.roof_fraction(s.roofs), to_string(p.by_name_class[i]));
    }
    if (rows < p.by_name.size()) out += fmt::format("({} more ops; --top 0 shows all)\n", p.by_name.size() - rows);
  }
  if (!s.phases.empty()) out += "\n-- whole run\n";
  out += fmt::format("{:<16} {:>7} {:>10} {:>6} {:>10} {:>10} {:>13} {:>11} {:>6}  {}\n", "op", "calls", "total ms",
                     "share", "FLOPs", "bytes", "achieved", "bandwidth", "roof", "bound");
  const size_t rows = top > 0 ? std::min(s.by_name.size(), size_t(top)) : s.by_name.size();
  for (size_t i = 0; i < rows; ++i) {
    const OpStats& op = s.by_name[i];
    out += fmt::format("{:<16} {:>7} {:>10.3f} {:>5.1f}% {:>10} {:>10} {:>13} {:>11} {:>5.0f}%  {}\n", op.name,
                       op.calls, op.seconds * 1e3, br.span_seconds > 0 ? 100.0 * op.seconds / br.span_seconds : 0,
                       si(op.flops, ""), si(op.bytes, "B"), si(op.flops_per_second(), "FLOP/s"),
                       si(op.bytes_per_second(), "B/s"), 100.0 * op.roof_fraction(s.roofs),
                       to_string(s.by_name_class[i]));
  }
  if (rows < s.by_name.size()) out += fmt::format("({} more ops; --top 0 shows all)\n", s.by_name.size() - rows);
  const double outside = std::max(0.0, br.span_seconds - br.busy_seconds);
  out += fmt::format("{:<16} {:>7} {:>10.3f} {:>5.1f}%  ({})\n", "(between ops)", "", outside * 1e3,
                     br.span_seconds > 0 ? 100.0 * outside / br.span_seconds : 0,
                     s.device_timed ? "device idle" : "host work outside the ops");
  out += fmt::format("\nrun: {:.3f} s from the first op to the last, {} op calls, {} and {} ({} and {})", br.span_seconds,
                     s.op_calls, si(s.achieved_flops, "FLOP"), si(s.achieved_bytes, "B"),
                     si(br.span_seconds > 0 ? s.achieved_flops / br.span_seconds : 0, "FLOP/s"),
                     si(br.span_seconds > 0 ? s.achieved_bytes / br.span_seconds : 0, "B/s"));
  if (br.setup_seconds > 0) out += fmt::format("; {:.3f} ms of copies before it (setup)", br.setup_seconds * 1e3);
  out += "\ntime by class:";
  const double total = br.total();
  std::vector<Bottleneck> order(std::begin(kAllBottlenecks), std::end(kAllBottlenecks));
  std::stable_sort(order.begin(), order.end(), [&](Bottleneck a, Bottleneck b) { return br[a] > br[b]; });
  for (Bottleneck b : order)
    if (br[b] > 0) out += fmt::format(" {} {:.1f}%", to_string(b), total > 0 ? 100.0 * br[b] / total : 0);
  out += fmt::format("\nverdict: {}\nlever: {}\n", s.verdict.explanation, lever(s.verdict.bottleneck));
  return out;
}

}  // namespace roofline::perf
