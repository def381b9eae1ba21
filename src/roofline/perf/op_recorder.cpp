#include "roofline/perf/op_recorder.h"

#include <algorithm>
#include <chrono>

namespace roofline::perf {

namespace {
double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

// One backend's listener: its events, and its device timestamps until they are resolved.
class OpRecorder::Channel final : public OpListener {
 public:
  Channel(double origin, int index, std::unique_ptr<DeviceClock> clock)
      : origin_(origin), index_(index), clock_(std::move(clock)) {}

  bool times_on_device() const override { return clock_ != nullptr; }
  void op_begin(OpCategory category) override {
    if (!clock_ || category == OpCategory::Sync) return;
    const double host = steady_seconds() - origin_;
    begin_mark_ = clock_->mark();
    if (begin_mark_ == 0) first_mark_host_ = host;
  }
  void op_end(const OpCall& call) override {
    OpEvent e;
    e.name = call.name;
    e.category = call.category;
    e.host_begin = call.host_begin - origin_;
    e.host_end = call.host_end - origin_;
    e.begin = e.host_begin;
    e.end = e.host_end;
    e.stream = index_;
    e.phase = call.phase.name;
    e.step = call.phase.step;
    if (call.work) {
      e.flops = call.work->flops;
      e.bytes = call.work->bytes;
      e.shape = call.work->shape;
    }
    size_t end_mark = kNoMark, begin_mark = kNoMark;
    if (clock_ && call.category != OpCategory::Sync) {
      end_mark = clock_->mark();
      begin_mark = begin_mark_;
    }
    events_.push_back(std::move(e));
    marks_.emplace_back(begin_mark, end_mark);
  }
  void backend_closing() override { resolve(); }

  void resolve() {
    if (!clock_ || resolved_ == events_.size()) return;
    const std::vector<double> t = clock_->resolve();
    for (size_t i = resolved_; i < events_.size(); ++i) {
      auto [b, e] = marks_[i];
      if (b == kNoMark || e == kNoMark || e >= t.size()) continue;
      events_[i].begin = first_mark_host_ + t[b];
      events_[i].end = first_mark_host_ + t[e];
    }
    resolved_ = events_.size();
  }
  const std::vector<OpEvent>& events() const { return events_; }

 private:
  static constexpr size_t kNoMark = size_t(-1);
  double origin_;
  int index_;
  std::unique_ptr<DeviceClock> clock_;
  size_t begin_mark_ = kNoMark;
  double first_mark_host_ = 0;  // profile time of mark 0's enqueue
  std::vector<OpEvent> events_;
  std::vector<std::pair<size_t, size_t>> marks_;  // per event: its device marks, or kNoMark
  size_t resolved_ = 0;                           // events_[0 .. resolved_) hold their final times
};

OpRecorder::OpRecorder() : origin_(steady_seconds()) {}
OpRecorder::~OpRecorder() = default;

OpListener& OpRecorder::listener(std::unique_ptr<DeviceClock> clock) {
  channels_.push_back(std::make_unique<Channel>(origin_, int(channels_.size()), std::move(clock)));
  return *channels_.back();
}

bool OpRecorder::device_timed() const {
  for (const auto& c : channels_)
    if (c->times_on_device()) return true;
  return false;
}

void OpRecorder::resolve() {
  for (auto& c : channels_) c->resolve();
}

std::vector<OpEvent> OpRecorder::events() const {
  std::vector<OpEvent> all;
  for (const auto& c : channels_) all.insert(all.end(), c->events().begin(), c->events().end());
  std::stable_sort(all.begin(), all.end(), [](const OpEvent& a, const OpEvent& b) { return a.begin < b.begin; });
  return all;
}

double OpRecorder::now() const { return steady_seconds() - origin_; }

void OpRecorder::add_counter(const std::string& name, const std::string& unit, double t, double value) {
  std::lock_guard<std::mutex> lock(counters_mutex_);
  auto it = std::find_if(counters_.begin(), counters_.end(), [&](const CounterTrack& c) { return c.name == name; });
  if (it == counters_.end()) {
    counters_.push_back(CounterTrack{name, unit, {}});
    it = counters_.end() - 1;
  }
  it->samples.push_back({t, value});
}

std::vector<CounterTrack> OpRecorder::counters() const {
  std::lock_guard<std::mutex> lock(counters_mutex_);
  return counters_;
}

nlohmann::json chrome_trace(const std::vector<OpEvent>& events, const std::vector<CounterTrack>& counters,
                            const std::string& title, bool device_timed) {
  constexpr int kPid = 1;
  nlohmann::json trace = nlohmann::json::array();
  auto us = [](double seconds) { return seconds * 1e6; };
  trace.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", kPid}, {"args", {{"name", title}}}});
  // Thread ids: 1 + stream for ops; 1000 + stream for host spans of device-timed streams.
  std::vector<int> named;
  auto name_thread = [&](int tid, const std::string& name) {
    if (std::find(named.begin(), named.end(), tid) != named.end()) return;
    named.push_back(tid);
    trace.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", kPid}, {"tid", tid}, {"args", {{"name", name}}}});
    trace.push_back(
        {{"name", "thread_sort_index"}, {"ph", "M"}, {"pid", kPid}, {"tid", tid}, {"args", {{"sort_index", tid}}}});
  };
  auto category = [](OpCategory c) {
    switch (c) {
      case OpCategory::Compute: return "compute";
      case OpCategory::Copy: return "copy";
      case OpCategory::Collective: return "collective";
      case OpCategory::Sync: return "sync";
    }
    return "?";
  };
  for (const OpEvent& e : events) {
    const bool on_device = device_timed && e.category != OpCategory::Sync &&
                           (e.begin != e.host_begin || e.end != e.host_end);
    const int tid = e.category == OpCategory::Sync ? 1000 + e.stream : 1 + e.stream;
    name_thread(tid, e.category == OpCategory::Sync ? "host" : on_device ? "device ops" : "ops");
    nlohmann::json args = {{"flops", e.flops}, {"bytes", e.bytes}};
    if (!e.shape.empty()) args["shape"] = e.shape;
    if (!e.phase.empty()) args["phase"] = e.phase, args["step"] = e.step;
    trace.push_back({{"name", e.name},
                     {"cat", category(e.category)},
                     {"ph", "X"},
                     {"ts", us(e.begin)},
                     {"dur", us(std::max(0.0, e.end - e.begin))},
                     {"pid", kPid},
                     {"tid", tid},
                     {"args", args}});
    if (on_device) {  // the host's enqueue span beside it
      name_thread(1000 + e.stream, "host");
      trace.push_back({{"name", e.name},
                       {"cat", "enqueue"},
                       {"ph", "X"},
                       {"ts", us(e.host_begin)},
                       {"dur", us(std::max(0.0, e.host_end - e.host_begin))},
                       {"pid", kPid},
                       {"tid", 1000 + e.stream}});
    }
  }
  for (const CounterTrack& c : counters) {
    const std::string name = c.unit.empty() ? c.name : c.name + " (" + c.unit + ")";
    for (const CounterSample& s : c.samples)
      trace.push_back({{"name", name}, {"ph", "C"}, {"ts", us(s.t)}, {"pid", kPid}, {"args", {{"value", s.value}}}});
  }
  return {{"traceEvents", trace}, {"displayTimeUnit", "ms"}};
}

}  // namespace roofline::perf
