// OpRecorder (host and device clocks), the Chrome/Perfetto trace it writes, and the NVML sampler's
// behaviour without a driver.
#include <gtest/gtest.h>

#include "roofline/perf/nvml_sampler.h"
#include "roofline/perf/op_recorder.h"

namespace roofline::perf {
namespace {

// A device clock whose marks are 1 ms apart on the device, whatever the host does.
struct FakeClock final : DeviceClock {
  size_t marks = 0;
  int resolves = 0;
  size_t mark() override { return marks++; }
  std::vector<double> resolve() override {
    ++resolves;
    std::vector<double> t(marks);
    for (size_t i = 0; i < marks; ++i) t[i] = double(i) * 1e-3;
    return t;
  }
};

OpCall call(const char* name, const OpWork& work, double begin, double end, OpCategory c = OpCategory::Compute) {
  return OpCall{name, c, &work, begin, end};
}

TEST(OpRecorder, HostListenerRecordsCallsWithTheirWork) {
  OpRecorder rec;
  OpListener& l = rec.listener();
  EXPECT_FALSE(l.times_on_device());
  EXPECT_FALSE(rec.device_timed());
  OpWork w{100, 200, "M=1"};
  const double t0 = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  l.op_begin(OpCategory::Compute);
  l.op_end(call("matmul", w, t0, t0 + 0.5));
  const std::vector<OpEvent> events = rec.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].name, "matmul");
  EXPECT_EQ(events[0].shape, "M=1");
  EXPECT_DOUBLE_EQ(events[0].flops, 100);
  EXPECT_DOUBLE_EQ(events[0].bytes, 200);
  EXPECT_NEAR(events[0].seconds(), 0.5, 1e-9);
  EXPECT_GE(events[0].begin, 0);  // on the recorder's clock
  EXPECT_LT(events[0].begin, 10);
}

TEST(OpRecorder, EventsAndTraceCarryThePhase) {
  OpRecorder rec;
  OpListener& l = rec.listener();
  OpWork w{1, 2, ""};
  const double t0 = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  l.op_end(OpCall{"matmul", OpCategory::Compute, &w, t0, t0 + 1e-3, PhaseTag{"decode", 7}});
  l.op_end(call("add", w, t0 + 1e-3, t0 + 2e-3));
  const std::vector<OpEvent> events = rec.events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].phase, "decode");
  EXPECT_EQ(events[0].step, 7);
  EXPECT_EQ(events[1].phase, "");
  const nlohmann::json trace = chrome_trace(events, {}, "t", false);
  int with_phase = 0;
  for (const nlohmann::json& e : trace["traceEvents"])
    if (e["ph"] == "X" && e["args"].contains("phase")) {
      EXPECT_EQ(e["args"]["phase"], "decode");
      EXPECT_EQ(e["args"]["step"], 7);
      ++with_phase;
    }
  EXPECT_EQ(with_phase, 1);
}

TEST(OpRecorder, DeviceClockTimesOpsAndSyncStaysOnTheHost) {
  OpRecorder rec;
  auto clock = std::make_unique<FakeClock>();
  FakeClock* fake = clock.get();
  OpListener& l = rec.listener(std::move(clock));
  EXPECT_TRUE(l.times_on_device());
  EXPECT_TRUE(rec.device_timed());
  OpWork w{1, 1, ""}, none;
  const double h = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  for (int i = 0; i < 2; ++i) {
    l.op_begin(OpCategory::Compute);
    l.op_end(call("op", w, h, h + 1e-6));
  }
  l.op_begin(OpCategory::Sync);
  l.op_end(call("synchronize", none, h, h + 0.25, OpCategory::Sync));
  EXPECT_EQ(fake->marks, 4u);  // begin and end of each op; none for the sync
  l.backend_closing();
  EXPECT_EQ(fake->resolves, 1);
  std::vector<OpEvent> events = rec.events();
  ASSERT_EQ(events.size(), 3u);
  int ops = 0;
  for (const OpEvent& e : events) {
    if (e.category == OpCategory::Sync) {
      EXPECT_NEAR(e.seconds(), 0.25, 1e-9);
    } else {
      EXPECT_NEAR(e.seconds(), 1e-3, 1e-9);  // device time, not the 1 us host span
      ++ops;
    }
  }
  EXPECT_EQ(ops, 2);
  rec.resolve();  // nothing new: no second device wait
  EXPECT_EQ(fake->resolves, 1);
}

TEST(OpRecorder, CountersAreNamedTracks) {
  OpRecorder rec;
  rec.add_counter("gpu_util", "%", 0.1, 50);
  rec.add_counter("gpu_util", "%", 0.2, 70);
  rec.add_counter("power", "W", 0.1, 300);
  const std::vector<CounterTrack> c = rec.counters();
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].name, "gpu_util");
  EXPECT_DOUBLE_EQ(c[0].mean(), 60);
  EXPECT_DOUBLE_EQ(c[0].max(), 70);
}

TEST(ChromeTrace, IsValidTraceEventJsonWithOpsAndCounters) {
  OpEvent e;
  e.name = "matmul";
  e.shape = "M=1 N=2 K=3 bf16";
  e.begin = e.host_begin = 0.001;
  e.end = e.host_end = 0.003;
  e.flops = 12, e.bytes = 34;
  CounterTrack gpu{"gpu_util", "%", {{0.0, 10}, {0.1, 90}}};
  const nlohmann::json trace = chrome_trace({e}, {gpu}, "roofline generate", false);
  // Round trip through text: what a file holds must parse.
  const nlohmann::json j = nlohmann::json::parse(trace.dump());
  ASSERT_TRUE(j.contains("traceEvents"));
  ASSERT_TRUE(j["traceEvents"].is_array());
  int x = 0, c = 0, m = 0;
  for (const auto& ev : j["traceEvents"]) {
    ASSERT_TRUE(ev.contains("ph") && ev.contains("pid") && ev.contains("name"));
    const std::string ph = ev["ph"];
    if (ph == "X") {
      ++x;
      EXPECT_EQ(ev["name"], "matmul");
      EXPECT_DOUBLE_EQ(ev["ts"].get<double>(), 1000);  // microseconds
      EXPECT_DOUBLE_EQ(ev["dur"].get<double>(), 2000);
      EXPECT_DOUBLE_EQ(ev["args"]["flops"].get<double>(), 12);
      EXPECT_DOUBLE_EQ(ev["args"]["bytes"].get<double>(), 34);
      EXPECT_EQ(ev["args"]["shape"], "M=1 N=2 K=3 bf16");
      EXPECT_TRUE(ev.contains("tid"));
    } else if (ph == "C") {
      ++c;
      EXPECT_EQ(ev["name"], "gpu_util (%)");
      EXPECT_TRUE(ev["args"]["value"].is_number());
    } else {
      EXPECT_EQ(ph, "M");
      ++m;
    }
  }
  EXPECT_EQ(x, 1);
  EXPECT_EQ(c, 2);
  EXPECT_GE(m, 2);  // process and thread names
}

TEST(ChromeTrace, DeviceTimedOpsGetAHostEnqueueTrack) {
  OpEvent e;
  e.name = "matmul";
  e.host_begin = 0.0, e.host_end = 0.00001;
  e.begin = 0.0005, e.end = 0.0015;
  const nlohmann::json j = chrome_trace({e}, {}, "t", true);
  int x = 0;
  for (const auto& ev : j["traceEvents"])
    if (ev["ph"] == "X") ++x;
  EXPECT_EQ(x, 2);
}

TEST(NvmlSampler, WithoutADriverItSaysWhyAndSamplesNothing) {
  OpRecorder rec;
  NvmlSampler sampler(rec, "", std::chrono::milliseconds(10));
  if (sampler.available()) {  // a machine with an NVIDIA driver: it samples
    sampler.stop();
    EXPECT_FALSE(rec.counters().empty());
  } else {
    EXPECT_FALSE(sampler.error().empty());
    sampler.stop();
    EXPECT_TRUE(rec.counters().empty());
  }
}

}  // namespace
}  // namespace roofline::perf
