#include "roofline/perf/kernel_profile.h"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <unordered_map>

#include <fmt/format.h>

namespace roofline::perf {

const char* to_string(KernelKind kind) {
  switch (kind) {
    case KernelKind::Kernel: return "kernel";
    case KernelKind::Memcpy: return "memcpy";
    case KernelKind::Memset: return "memset";
  }
  return "?";
}

std::string demangle(const std::string& name) {
  if (name.rfind("_Z", 0) != 0) return name;
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status), std::free);
  return status == 0 && out ? std::string(out.get()) : name;
}

namespace {

bool is_identifier_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// Drops every "qualifier::" (identifiers and "(anonymous namespace)") so only the last name of each
// qualified name stays, inside template arguments too.
std::string drop_qualifiers(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    constexpr std::string_view kAnonymous = "(anonymous namespace)::";
    if (s.substr(i, kAnonymous.size()) == kAnonymous) {
      i += kAnonymous.size();
      continue;
    }
    if (is_identifier_char(s[i])) {
      size_t j = i;
      while (j < s.size() && is_identifier_char(s[j])) ++j;
      if (s.substr(j, 2) == "::") {
        i = j + 2;  // a qualifier: skip it and its "::"
        continue;
      }
      out.append(s.substr(i, j - i));
      i = j;
      continue;
    }
    out += s[i++];
  }
  return out;
}

}  // namespace

std::string shorten_kernel_name(std::string_view name) {
  if (name.empty() || name.front() == '[') return std::string(name);  // "[memcpy HtoD]"
  // The parameter list starts at the first '(' outside template arguments and outside "(anonymous
  // namespace)"; the return type ends at the last space outside template arguments before it.
  int angle = 0;
  size_t params = name.size(), name_begin = 0;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (c == '<') ++angle;
    if (c == '>' && angle > 0) --angle;
    if (angle != 0) continue;
    if (c == '(') {
      if (name.substr(i, 21) == "(anonymous namespace)") {
        i += 20;
        continue;
      }
      params = i;
      break;
    }
    if (c == ' ') name_begin = i + 1;
  }
  std::string shortened = drop_qualifiers(name.substr(name_begin, params - name_begin));
  return shortened.empty() ? std::string(name) : shortened;
}

namespace {

struct GapSizeClass {
  const char* label;
  double below_seconds;
};
constexpr GapSizeClass kGapSizes[] = {{"< 2 us", 2e-6},       {"2-5 us", 5e-6},     {"5-10 us", 10e-6},
                                      {"10-50 us", 50e-6},    {"50-200 us", 200e-6}, {"0.2-1 ms", 1e-3},
                                      {"1-10 ms", 10e-3},     {">= 10 ms", 1e300}};
// Gaps this long are the host away from the GPU (loading, tokenizing, a sampler or the command's own work):
// counted by size, but left out of the kernel pairs, which are about the gaps between launches.
constexpr double kPairGapLimitSeconds = 1e-3;

constexpr const char* kInsideReplay = "inside a graph replay";
constexpr const char* kBetweenReplays = "between graph replays";
constexpr const char* kEager = "between eager launches";
constexpr const char* kGraphEager = "between a graph replay and eager work";

double seconds(uint64_t ns) { return double(ns) * 1e-9; }

}  // namespace

KernelSummary summarize_kernels(const KernelTrace& trace, size_t top_pairs) {
  KernelSummary s;
  s.dropped = trace.dropped;
  std::map<uint32_t, uint64_t> first_kernel;  // per device
  for (const KernelRecord& r : trace.records)
    if (r.kind == KernelKind::Kernel) {
      auto [it, inserted] = first_kernel.emplace(r.device, r.start_ns);
      if (!inserted) it->second = std::min(it->second, r.start_ns);
    }
  std::vector<const KernelRecord*> counted;
  counted.reserve(trace.records.size());
  for (const KernelRecord& r : trace.records) {
    auto it = first_kernel.find(r.device);
    if (r.kind != KernelKind::Kernel && it != first_kernel.end() && r.end_ns <= it->second) {
      ++s.setup_records;
      s.setup_seconds += double(r.end_ns - r.start_ns) * 1e-9;
    } else {
      counted.push_back(&r);
    }
  }
  s.records = int64_t(counted.size());
  std::vector<std::string> demangled(trace.names.size()), short_names(trace.names.size());
  for (size_t i = 0; i < trace.names.size(); ++i) {
    demangled[i] = demangle(trace.names[i]);
    short_names[i] = shorten_kernel_name(demangled[i]);
  }
  auto short_name = [&](const KernelRecord& r) -> const std::string& {
    static const std::string unknown = "?";
    return r.name < short_names.size() ? short_names[r.name] : unknown;
  };

  // Rows by shortened name.
  std::unordered_map<std::string, size_t> row_of;
  for (const KernelRecord* counted_record : counted) {
    const KernelRecord& r = *counted_record;
    const std::string& name = short_name(r);
    auto [it, inserted] = row_of.emplace(name, s.rows.size());
    if (inserted) {
      KernelStats row;
      row.name = name;
      row.demangled = r.name < demangled.size() ? demangled[r.name] : name;
      row.kind = r.kind;
      s.rows.push_back(std::move(row));
    }
    KernelStats& row = s.rows[it->second];
    const double t = seconds(r.end_ns > r.start_ns ? r.end_ns - r.start_ns : 0);
    row.min_seconds = row.calls == 0 ? t : std::min(row.min_seconds, t);
    row.max_seconds = std::max(row.max_seconds, t);
    ++row.calls;
    if (r.graph != 0) ++row.graph_calls;
    row.seconds += t;
    row.bytes += r.bytes;
    if (r.graph == 0) {
      ++s.eager_calls;
      s.eager_busy_seconds += t;
    }
  }

  // Each device's timeline: busy where some activity runs, a gap wherever none does between the first
  // start and the last end.
  for (const GapSizeClass& c : kGapSizes) s.gap_sizes.push_back({c.label, 0, 0});
  for (const char* c : {kInsideReplay, kBetweenReplays, kEager, kGraphEager}) s.gap_contexts.push_back({c, 0, 0});
  std::map<std::string, GapClass> pairs;
  std::map<uint32_t, std::vector<const KernelRecord*>> by_device;
  for (const KernelRecord* r : counted) by_device[r->device].push_back(r);
  s.devices = int(by_device.size());
  for (auto& [device, records] : by_device) {
    std::sort(records.begin(), records.end(), [](const KernelRecord* a, const KernelRecord* b) {
      return a->start_ns != b->start_ns ? a->start_ns < b->start_ns : a->end_ns < b->end_ns;
    });
    const KernelRecord* last = records.front();  // the activity that ends last so far
    uint64_t busy_end = last->end_ns, busy_ns = 0, span_begin = last->start_ns;
    busy_ns += last->end_ns > last->start_ns ? last->end_ns - last->start_ns : 0;
    s.rows[row_of.at(short_name(*last))].added_seconds += seconds(busy_ns);
    for (size_t i = 1; i < records.size(); ++i) {
      const KernelRecord* r = records[i];
      if (r->start_ns > busy_end) {
        const double gap = seconds(r->start_ns - busy_end);
        ++s.gaps;
        for (size_t c = 0; c < std::size(kGapSizes); ++c)
          if (gap < kGapSizes[c].below_seconds) {
            ++s.gap_sizes[c].count;
            s.gap_sizes[c].seconds += gap;
            break;
          }
        const size_t context = last->graph != 0 && r->graph != 0
                                   ? (last->graph == r->graph && last->correlation == r->correlation ? 0 : 1)
                                   : (last->graph == 0 && r->graph == 0 ? 2 : 3);
        ++s.gap_contexts[context].count;
        s.gap_contexts[context].seconds += gap;
        if (gap < kPairGapLimitSeconds) {
          GapClass& pair = pairs[short_name(*last) + " -> " + short_name(*r)];
          ++pair.count;
          pair.seconds += gap;
        }
      }
      if (r->end_ns > busy_end) {
        const uint64_t added = r->end_ns - std::max(r->start_ns, busy_end);
        busy_ns += added;
        s.rows[row_of.at(short_name(*r))].added_seconds += seconds(added);
        busy_end = r->end_ns;
        last = r;
      }
    }
    s.busy_seconds += seconds(busy_ns);
    s.span_seconds += seconds(busy_end - span_begin);
  }
  s.idle_seconds = std::max(0.0, s.span_seconds - s.busy_seconds);
  for (KernelStats& row : s.rows) row.share = s.busy_seconds > 0 ? row.seconds / s.busy_seconds : 0;
  std::stable_sort(s.rows.begin(), s.rows.end(),
                   [](const KernelStats& a, const KernelStats& b) { return a.seconds > b.seconds; });
  for (auto& [label, pair] : pairs) {
    pair.label = label;
    s.gap_pairs.push_back(pair);
  }
  std::stable_sort(s.gap_pairs.begin(), s.gap_pairs.end(),
                   [](const GapClass& a, const GapClass& b) { return a.seconds > b.seconds; });
  if (top_pairs > 0 && s.gap_pairs.size() > top_pairs) s.gap_pairs.resize(top_pairs);

  // Graph replays: the nodes of one cudaGraphLaunch share its correlation id.
  std::map<std::pair<uint32_t, uint32_t>, std::vector<const KernelRecord*>> launches;
  for (const KernelRecord* r : counted)
    if (r->graph != 0) launches[{r->graph, r->correlation}].push_back(r);
  std::map<uint32_t, GraphStats> graphs;
  std::map<uint32_t, std::unordered_map<std::string, size_t>> graph_kernel_rows;
  for (auto& [key, nodes] : launches) {
    std::sort(nodes.begin(), nodes.end(),
              [](const KernelRecord* a, const KernelRecord* b) { return a->start_ns < b->start_ns; });
    uint64_t end = nodes.front()->start_ns, busy = 0;
    std::vector<uint64_t> added(nodes.size(), 0);
    for (size_t i = 0; i < nodes.size(); ++i) {
      const KernelRecord* n = nodes[i];
      if (n->end_ns > end) {
        added[i] = n->end_ns - std::max(n->start_ns, end);
        busy += added[i];
        end = n->end_ns;
      }
    }
    GraphStats& g = graphs[key.first];
    std::unordered_map<std::string, size_t>& kernel_row = graph_kernel_rows[key.first];
    for (size_t i = 0; i < nodes.size(); ++i) {
      const KernelRecord* n = nodes[i];
      const std::string& name = short_name(*n);
      auto [it, inserted] = kernel_row.emplace(name, g.kernels.size());
      if (inserted) {
        KernelStats row;
        row.name = name;
        row.demangled = n->name < demangled.size() ? demangled[n->name] : name;
        row.kind = n->kind;
        g.kernels.push_back(std::move(row));
      }
      KernelStats& row = g.kernels[it->second];
      const double t = seconds(n->end_ns > n->start_ns ? n->end_ns - n->start_ns : 0);
      row.min_seconds = row.calls == 0 ? t : std::min(row.min_seconds, t);
      row.max_seconds = std::max(row.max_seconds, t);
      ++row.calls;
      ++row.graph_calls;
      row.seconds += t;
      row.added_seconds += seconds(added[i]);
      row.bytes += n->bytes;
    }
    g.graph = key.first;
    ++g.launches;
    g.nodes_per_launch += double(nodes.size());
    g.span_seconds += seconds(end - nodes.front()->start_ns);
    g.busy_seconds += seconds(busy);
  }
  for (auto& [id, g] : graphs) {
    g.nodes_per_launch /= double(g.launches);
    for (KernelStats& k : g.kernels) k.share = g.span_seconds > 0 ? k.seconds / g.span_seconds : 0;
    std::stable_sort(g.kernels.begin(), g.kernels.end(),
                     [](const KernelStats& a, const KernelStats& b) { return a.seconds > b.seconds; });
    s.graphs.push_back(std::move(g));
  }
  std::stable_sort(s.graphs.begin(), s.graphs.end(),
                   [](const GraphStats& a, const GraphStats& b) { return a.span_seconds > b.span_seconds; });
  return s;
}

namespace {

std::string clip(const std::string& s, size_t width) {
  return s.size() <= width ? s : s.substr(0, width - 3) + "...";
}

double percent(double part, double whole) { return whole > 0 ? 100.0 * part / whole : 0; }

}  // namespace

std::string format_kernel_summary(const KernelSummary& s, int top) {
  std::string out;
  out += fmt::format("device activities (CUPTI): {} records on {} device(s){}{}\n", s.records, s.devices,
                     s.setup_records > 0 ? fmt::format(" (and {} copies before the first kernel, {:.3f} ms: setup, "
                                                       "left out)", s.setup_records, s.setup_seconds * 1e3)
                                         : "",
                     s.dropped > 0 ? fmt::format(", {} DROPPED (buffers full: times are low)", s.dropped) : "");
  constexpr size_t kNameWidth = 56;
  out += fmt::format("{:<56} {:>8} {:>8} {:>10} {:>9} {:>9} {:>9} {:>6}\n", "kernel", "calls", "in graph", "total ms",
                     "mean us", "added us", "max us", "share");
  const size_t rows = top > 0 ? std::min(s.rows.size(), size_t(top)) : s.rows.size();
  for (size_t i = 0; i < rows; ++i) {
    const KernelStats& k = s.rows[i];
    out += fmt::format("{:<56} {:>8} {:>8} {:>10.3f} {:>9.2f} {:>9.2f} {:>9.2f} {:>5.1f}%\n", clip(k.name, kNameWidth),
                       k.calls, k.graph_calls, k.seconds * 1e3, k.mean_seconds() * 1e6, k.mean_added_seconds() * 1e6,
                       k.max_seconds * 1e6, 100.0 * k.share);
  }
  if (rows < s.rows.size()) {
    double rest = 0;
    int64_t calls = 0;
    for (size_t i = rows; i < s.rows.size(); ++i) rest += s.rows[i].seconds, calls += s.rows[i].calls;
    out += fmt::format("{:<56} {:>8} {:>8} {:>10.3f} {:>9} {:>9} {:>9} {:>5.1f}%\n",
                       fmt::format("({} more kernels; --top 0 shows all)", s.rows.size() - rows), calls, "",
                       rest * 1e3, "", "", "", percent(rest, s.busy_seconds));
  }
  out += "(added us: what a call adds to the busy time, after everything that started before it ended; with PDL a "
         "kernel's own time includes its wait for the one before)\n";
  out += fmt::format("\nGPU busy {:.3f} ms of a {:.3f} ms span ({:.1f}%), idle {:.3f} ms in {} gaps", s.busy_seconds * 1e3,
                     s.span_seconds * 1e3, percent(s.busy_seconds, s.span_seconds), s.idle_seconds * 1e3, s.gaps);
  out += fmt::format("; eager (not graph-launched): {} calls, {:.3f} ms\n", s.eager_calls, s.eager_busy_seconds * 1e3);
  out += "idle by gap size:";
  for (const GapClass& c : s.gap_sizes)
    if (c.count > 0) out += fmt::format("  {}: {} gaps {:.3f} ms", c.label, c.count, c.seconds * 1e3);
  out += "\nidle by where:";
  for (const GapClass& c : s.gap_contexts)
    if (c.count > 0)
      out += fmt::format("  {}: {} gaps {:.3f} ms (mean {:.2f} us)", c.label, c.count, c.seconds * 1e3,
                         c.seconds * 1e6 / double(c.count));
  out += "\n";
  if (!s.gap_pairs.empty()) {
    out += fmt::format("\n{:<96} {:>8} {:>10} {:>9}\n", "largest gap classes (under 1 ms): kernel before -> after",
                       "gaps", "total ms", "mean us");
    for (const GapClass& c : s.gap_pairs)
      out += fmt::format("{:<96} {:>8} {:>10.3f} {:>9.2f}\n", clip(c.label, 96), c.count, c.seconds * 1e3,
                         c.seconds * 1e6 / double(c.count));
  }
  if (!s.graphs.empty()) {
    out += fmt::format("\n{:<10} {:>9} {:>12} {:>13} {:>13} {:>12}\n", "graph", "launches", "nodes/launch",
                       "mean span us", "mean busy us", "idle inside");
    for (const GraphStats& g : s.graphs)
      out += fmt::format("{:<10} {:>9} {:>12.1f} {:>13.2f} {:>13.2f} {:>11.1f}%\n", g.graph, g.launches,
                         g.nodes_per_launch, g.mean_span() * 1e6, g.mean_busy() * 1e6,
                         percent(g.span_seconds - g.busy_seconds, g.span_seconds));
  }
  for (size_t i = 0; i < std::min<size_t>(2, s.graphs.size()); ++i) {
    const GraphStats& g = s.graphs[i];
    out += fmt::format("\nper replay of graph {} ({} launches, {:.2f} us span, {:.2f} us busy):\n", g.graph, g.launches,
                       g.mean_span() * 1e6, g.mean_busy() * 1e6);
    out += fmt::format("{:<56} {:>8} {:>10} {:>9} {:>9} {:>7}\n", "kernel", "/replay", "us/replay", "mean us",
                       "added us", "share");
    const size_t n = top > 0 ? std::min(g.kernels.size(), size_t(top)) : g.kernels.size();
    const double launches = double(g.launches);
    for (size_t k = 0; k < n; ++k) {
      const KernelStats& row = g.kernels[k];
      out += fmt::format("{:<56} {:>8.1f} {:>10.2f} {:>9.2f} {:>9.2f} {:>6.1f}%\n", clip(row.name, kNameWidth),
                         double(row.calls) / launches, row.seconds * 1e6 / launches, row.mean_seconds() * 1e6,
                         row.mean_added_seconds() * 1e6, 100.0 * row.share);
    }
    double rest = 0;
    for (size_t k = n; k < g.kernels.size(); ++k) rest += g.kernels[k].seconds;
    if (n < g.kernels.size())
      out += fmt::format("{:<56} {:>8} {:>10.2f} {:>9} {:>9} {:>6.1f}%\n",
                         fmt::format("({} more kernels)", g.kernels.size() - n), "", rest * 1e6 / launches, "", "",
                         percent(rest, g.span_seconds));
    out += fmt::format("{:<56} {:>8} {:>10.2f} {:>9} {:>9} {:>6.1f}%\n", "(idle inside the replay)", "",
                       (g.span_seconds - g.busy_seconds) * 1e6 / launches, "", "",
                       percent(g.span_seconds - g.busy_seconds, g.span_seconds));
  }
  return out;
}

nlohmann::json to_json(const KernelSummary& s) {
  auto classes = [](const std::vector<GapClass>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (const GapClass& c : v) a.push_back({{"label", c.label}, {"count", c.count}, {"seconds", c.seconds}});
    return a;
  };
  auto kernel_rows = [](const std::vector<KernelStats>& rows) {
    nlohmann::json a = nlohmann::json::array();
    for (const KernelStats& k : rows)
      a.push_back({{"name", k.name},
                   {"demangled", k.demangled},
                   {"kind", to_string(k.kind)},
                   {"calls", k.calls},
                   {"graph_calls", k.graph_calls},
                   {"seconds", k.seconds},
                   {"mean_us", k.mean_seconds() * 1e6},
                   {"added_seconds", k.added_seconds},
                   {"mean_added_us", k.mean_added_seconds() * 1e6},
                   {"min_us", k.min_seconds * 1e6},
                   {"max_us", k.max_seconds * 1e6},
                   {"bytes", k.bytes},
                   {"share", k.share}});
    return a;
  };
  nlohmann::json graphs = nlohmann::json::array();
  for (const GraphStats& g : s.graphs)
    graphs.push_back({{"graph", g.graph},
                      {"kernels", kernel_rows(g.kernels)},
                      {"launches", g.launches},
                      {"nodes_per_launch", g.nodes_per_launch},
                      {"span_seconds", g.span_seconds},
                      {"busy_seconds", g.busy_seconds},
                      {"mean_span_us", g.mean_span() * 1e6},
                      {"mean_busy_us", g.mean_busy() * 1e6}});
  return {{"records", s.records},
          {"setup_records", s.setup_records},
          {"setup_seconds", s.setup_seconds},
          {"dropped", s.dropped},
          {"devices", s.devices},
          {"span_seconds", s.span_seconds},
          {"busy_seconds", s.busy_seconds},
          {"idle_seconds", s.idle_seconds},
          {"gaps", s.gaps},
          {"kernels", kernel_rows(s.rows)},
          {"gap_sizes", classes(s.gap_sizes)},
          {"gap_contexts", classes(s.gap_contexts)},
          {"gap_pairs", classes(s.gap_pairs)},
          {"graphs", graphs},
          {"eager", {{"calls", s.eager_calls}, {"busy_seconds", s.eager_busy_seconds}}}};
}

nlohmann::json kernel_chrome_trace(const KernelTrace& trace, const std::vector<CounterTrack>& counters,
                                   const std::string& title) {
  constexpr int kPid = 1;
  nlohmann::json events = nlohmann::json::array();
  events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", kPid}, {"args", {{"name", title}}}});
  auto us = [&](uint64_t ns) {
    return (trace.origin_s + double(int64_t(ns - trace.origin_ns)) * 1e-9) * 1e6;
  };
  std::map<std::pair<uint32_t, uint32_t>, int> tids;  // (device, stream) -> track
  auto track = [&](uint32_t device, uint32_t stream, const std::string& label) {
    auto [it, inserted] = tids.emplace(std::pair{device, stream}, int(tids.size()) + 1);
    if (inserted) {
      events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", kPid}, {"tid", it->second}, {"args", {{"name", label}}}});
      events.push_back({{"name", "thread_sort_index"}, {"ph", "M"}, {"pid", kPid}, {"tid", it->second},
                        {"args", {{"sort_index", it->second}}}});
    }
    return it->second;
  };
  std::vector<std::string> short_names;
  short_names.reserve(trace.names.size());
  for (const std::string& n : trace.names) short_names.push_back(shorten_kernel_name(demangle(n)));
  std::map<std::tuple<uint32_t, uint32_t, uint32_t>, std::pair<uint64_t, uint64_t>> replays;  // span per launch
  for (const KernelRecord& r : trace.records) {
    const int tid = track(r.device, r.stream, fmt::format("GPU {} stream {}", r.device, r.stream));
    nlohmann::json args = {{"correlation", r.correlation}};
    if (r.graph != 0) args["graph"] = r.graph;
    if (r.kind == KernelKind::Kernel) {
      args["blocks"] = r.blocks;
      args["threads_per_block"] = r.threads_per_block;
    } else {
      args["bytes"] = r.bytes;
    }
    events.push_back({{"name", r.name < short_names.size() ? short_names[r.name] : "?"},
                      {"cat", to_string(r.kind)},
                      {"ph", "X"},
                      {"ts", us(r.start_ns)},
                      {"dur", double(r.end_ns > r.start_ns ? r.end_ns - r.start_ns : 0) * 1e-3},
                      {"pid", kPid},
                      {"tid", tid},
                      {"args", args}});
    if (r.graph != 0) {
      auto [it, inserted] = replays.emplace(std::tuple{r.device, r.graph, r.correlation}, std::pair{r.start_ns, r.end_ns});
      if (!inserted) {
        it->second.first = std::min(it->second.first, r.start_ns);
        it->second.second = std::max(it->second.second, r.end_ns);
      }
    }
  }
  for (const auto& [key, span] : replays) {
    const auto [device, graph, correlation] = key;
    const int tid = track(device, 0xffffffffu, fmt::format("GPU {} graph replays", device));
    events.push_back({{"name", fmt::format("graph {}", graph)},
                      {"cat", "graph"},
                      {"ph", "X"},
                      {"ts", us(span.first)},
                      {"dur", double(span.second - span.first) * 1e-3},
                      {"pid", kPid},
                      {"tid", tid},
                      {"args", {{"graph", graph}, {"correlation", correlation}}}});
  }
  for (const CounterTrack& c : counters) {
    const std::string name = c.unit.empty() ? c.name : c.name + " (" + c.unit + ")";
    for (const CounterSample& sample : c.samples)
      events.push_back({{"name", name}, {"ph", "C"}, {"ts", sample.t * 1e6}, {"pid", kPid}, {"args", {{"value", sample.value}}}});
  }
  return {{"traceEvents", events}, {"displayTimeUnit", "ms"}};
}

}  // namespace roofline::perf
