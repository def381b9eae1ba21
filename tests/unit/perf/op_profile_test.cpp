// Bottleneck classes of ops and runs, the time accounting of summarize(), and the profile's JSON and table.
#include <gtest/gtest.h>

#include "perf_test_util.h"
#include "roofline/perf/op_profile.h"

namespace roofline::perf {
namespace {

// 100 GFLOP/s and 10 GB/s: ridge at 10 FLOP/byte.
Roofs roofs() {
  Roofs r;
  r.hardware = "test";
  r.peak_flops = 100e9;
  r.memory_bandwidth = 10e9;
  return r;
}

OpStats op(const char* name, double seconds, double flops, double bytes, int64_t calls = 1,
           OpCategory category = OpCategory::Compute) {
  OpStats s;
  s.name = name;
  s.category = category;
  s.calls = calls;
  s.seconds = seconds;
  s.flops = flops;
  s.bytes = bytes;
  return s;
}

OpEvent event(const char* name, double begin, double end, double flops, double bytes,
              OpCategory category = OpCategory::Compute) {
  OpEvent e;
  e.name = name;
  e.category = category;
  e.begin = e.host_begin = begin;
  e.end = e.host_end = end;
  e.flops = flops;
  e.bytes = bytes;
  return e;
}

TEST(Bottleneck, OpsAreClassedByIntensityAgainstTheRidge) {
  const Roofs r = roofs();
  EXPECT_DOUBLE_EQ(r.ridge(), 10);
  // 1 FLOP/byte, 1 ms for 10 MB: at the bandwidth roof.
  const OpStats decode_matmul = op("matmul", 1e-3, 10e6, 10e6);
  EXPECT_EQ(classify_op(decode_matmul, r), Bottleneck::Memory);
  EXPECT_NEAR(decode_matmul.roof_fraction(r), 1.0, 1e-12);
  EXPECT_NEAR(decode_matmul.bytes_per_second(), 10e9, 1);
  // 100 FLOP/byte: compute-bound, at half the compute roof.
  const OpStats prefill_matmul = op("matmul", 2e-3, 100e6, 1e6);
  EXPECT_EQ(classify_op(prefill_matmul, r), Bottleneck::Compute);
  EXPECT_NEAR(prefill_matmul.roof_fraction(r), 0.5, 1e-12);
  // Exactly at the ridge counts as compute.
  EXPECT_EQ(classify_op(op("x", 1, 10, 1), r), Bottleneck::Compute);
}

TEST(Bottleneck, TinyCallsFarFromTheRoofAreOverhead) {
  const Roofs r = roofs();
  // 1000 calls of 2 us each moving 1 kB: the roof says 0.1 us per call.
  EXPECT_EQ(classify_op(op("add", 2e-3, 250e3, 1e6, 1000), r), Bottleneck::Overhead);
  // The same tiny calls at the roof are not overhead.
  EXPECT_EQ(classify_op(op("add", 0.1e-3, 250e3, 1e6, 1000), r), Bottleneck::Memory);
  // Long calls far from the roof are a slow kernel, not overhead.
  EXPECT_EQ(classify_op(op("add", 1.0, 250e3, 1e6, 10), r), Bottleneck::Memory);
}

TEST(Bottleneck, CopiesAndCollectivesHaveTheirOwnClass) {
  EXPECT_EQ(classify_op(op("upload", 1, 0, 1e9, 1, OpCategory::Copy), roofs()), Bottleneck::HostDeviceCopy);
  EXPECT_EQ(classify_op(op("all_reduce", 1, 0, 1e9, 1, OpCategory::Collective), roofs()), Bottleneck::Collective);
}

TEST(Bottleneck, UnknownRoofsFallBackToTheDefaultRidge) {
  Roofs none;
  EXPECT_FALSE(none.known());
  EXPECT_EQ(classify_op(op("m", 1, 100, 1), none), Bottleneck::Compute);
  EXPECT_EQ(classify_op(op("m", 1e-9, 1, 1, 100), none), Bottleneck::Memory);  // never overhead without roofs
}

TEST(Bottleneck, RunVerdictIsTheLargestClassWithItsLever) {
  RunBreakdown b;
  b[Bottleneck::Memory] = 6;
  b[Bottleneck::HostPipeline] = 3;
  b[Bottleneck::Compute] = 1;
  Verdict v = classify_run(b, 0.4);
  EXPECT_EQ(v.bottleneck, Bottleneck::Memory);
  EXPECT_NEAR(v.share, 0.6, 1e-12);
  EXPECT_HAS(v.explanation, "60%");
  EXPECT_HAS(v.explanation, "2.5x");  // 40% of the roof: kernels can still gain 2.5x
  EXPECT_HAS(classify_run(b, 0.9).explanation, "near the limit");
  b[Bottleneck::Queueing] = 20;
  EXPECT_EQ(classify_run(b, 0).bottleneck, Bottleneck::Queueing);
  for (Bottleneck c : kAllBottlenecks) {
    EXPECT_FALSE(lever(c).empty());
    EXPECT_FALSE(describe(c).empty());
    EXPECT_NE(to_string(c), "?");
  }
}

TEST(Summarize, HostTimedGapsAreHostPipelineAndSetupCopiesAreLeftOut) {
  std::vector<OpEvent> events = {
      event("upload", 0.0, 1.0, 0, 1e9, OpCategory::Copy),  // before the first compute op: setup
      event("matmul", 2.0, 2.6, 6e9, 0.6e9),                 // 10 FLOP/B, at ridge: compute
      event("add", 3.0, 3.2, 1e6, 2e9),                      // memory
      event("matmul", 3.2, 3.4, 2e9, 0.2e9),
  };
  const ProfileSummary s = summarize(events, roofs(), /*device_timed=*/false);
  EXPECT_DOUBLE_EQ(s.breakdown.span_seconds, 1.4);
  EXPECT_DOUBLE_EQ(s.breakdown.setup_seconds, 1.0);
  EXPECT_NEAR(s.breakdown.busy_seconds, 1.0, 1e-12);
  EXPECT_EQ(s.op_calls, 3);
  EXPECT_NEAR(s.breakdown[Bottleneck::Compute], 0.8, 1e-12);
  EXPECT_NEAR(s.breakdown[Bottleneck::Memory], 0.2, 1e-12);
  EXPECT_NEAR(s.breakdown[Bottleneck::HostPipeline], 0.4, 1e-12);  // the gaps between ops
  EXPECT_EQ(s.verdict.bottleneck, Bottleneck::Compute);
  ASSERT_EQ(s.by_name.size(), 2u);
  EXPECT_EQ(s.by_name[0].name, "matmul");
  EXPECT_EQ(s.by_name[0].calls, 2);
  EXPECT_NEAR(s.by_name[0].seconds, 0.8, 1e-12);
  EXPECT_EQ(s.by_name_class[0], Bottleneck::Compute);
}

TEST(Summarize, DeviceGapsSplitIntoHostPipelineAndLaunchGaps) {
  // Device ops at [0, 0.5] and [3, 3.5]: 2.5 s of device idle between them.
  std::vector<OpEvent> events = {event("matmul", 0, 0.5, 1e6, 1e9), event("matmul", 3, 3.5, 1e6, 1e9)};
  // The host enqueued them in [0, 0.1] and [2.9, 3.0]: it spent the gap outside any op (host pipeline).
  events[0].host_end = 0.1;
  events[1].host_begin = 2.9, events[1].host_end = 3.0;
  const ProfileSummary s = summarize(events, roofs(), /*device_timed=*/true);
  EXPECT_NEAR(s.breakdown[Bottleneck::HostPipeline], 2.5, 1e-12);
  EXPECT_NEAR(s.breakdown[Bottleneck::Overhead], 0.0, 1e-12);
  EXPECT_EQ(s.verdict.bottleneck, Bottleneck::HostPipeline);
  // The host spent the whole span enqueueing: the gap is launch overhead.
  events[0].host_end = 1.0;
  events[1].host_begin = 1.0, events[1].host_end = 3.5;
  const ProfileSummary t = summarize(events, roofs(), true);
  EXPECT_NEAR(t.breakdown[Bottleneck::HostPipeline], 0.0, 1e-12);
  EXPECT_NEAR(t.breakdown[Bottleneck::Overhead], 2.5, 1e-12);
  EXPECT_EQ(t.verdict.bottleneck, Bottleneck::Overhead);
}

TEST(Summarize, CopiesInsideTheRunAndQueueing) {
  std::vector<OpEvent> events = {event("matmul", 0, 1, 1e6, 1e9),
                                 event("copy_from_host", 1, 4, 0, 1e6, OpCategory::Copy)};
  const ProfileSummary s = summarize(events, roofs(), false);
  EXPECT_EQ(s.verdict.bottleneck, Bottleneck::HostDeviceCopy);
  EXPECT_EQ(summarize(events, roofs(), false, /*queue_seconds=*/10).verdict.bottleneck, Bottleneck::Queueing);
}

TEST(Summarize, JsonAndTableCarryTheNumbers) {
  std::vector<OpEvent> events = {event("matmul", 0, 1e-3, 10e6, 10e6), event("rms_norm", 1e-3, 1.5e-3, 1e3, 1e6)};
  events[0].shape = "M=1 N=8 K=8 bf16";
  const ProfileSummary s = summarize(events, roofs(), false);
  const nlohmann::json j = to_json(s);
  for (const char* key : {"hardware", "roofs", "span_seconds", "ops", "op_shapes", "breakdown", "verdict"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["ops"][0]["name"], "matmul");
  EXPECT_EQ(j["ops"][0]["bottleneck"], "memory");
  EXPECT_NEAR(j["ops"][0]["roof_fraction"].get<double>(), 1.0, 1e-9);
  EXPECT_EQ(j["op_shapes"][0]["shape"], "M=1 N=8 K=8 bf16");
  EXPECT_EQ(j["verdict"]["bottleneck"], "memory");
  EXPECT_FALSE(j["verdict"]["lever"].get<std::string>().empty());
  for (Bottleneck b : kAllBottlenecks) EXPECT_TRUE(j["breakdown"].contains(std::string(to_string(b))));
  const std::string table = format_summary(s, 1);
  EXPECT_HAS(table, "matmul");
  EXPECT_HAS(table, "10.0 GB/s");
  EXPECT_HAS(table, "1 more ops");
  EXPECT_HAS(table, "verdict: memory-bound");
  EXPECT_HAS(table, "lever: ");
}

TEST(Summarize, PhasesSplitTheOpsAndAddUpToTheRun) {
  auto in = [](OpEvent e, const char* phase, int64_t step) {
    e.phase = phase;
    e.step = step;
    return e;
  };
  // One prefill step of two ops, two decode steps of two ops, and a copy outside any phase.
  const std::vector<OpEvent> events = {
      in(event("matmul", 0, 4e-3, 400e6, 4e6), "prefill", 0), in(event("attention", 4e-3, 6e-3, 10e6, 1e6), "prefill", 0),
      event("download", 6e-3, 6.1e-3, 0, 1e3, OpCategory::Copy),
      in(event("matmul", 7e-3, 8e-3, 2e6, 10e6), "decode", 1), in(event("attention", 8.5e-3, 9e-3, 1e6, 2e6), "decode", 1),
      in(event("matmul", 10e-3, 11e-3, 2e6, 10e6), "decode", 2), in(event("attention", 11e-3, 11.5e-3, 1e6, 2e6), "decode", 2)};
  const ProfileSummary s = summarize(events, roofs(), false);
  ASSERT_EQ(s.phases.size(), 3u);
  EXPECT_EQ(s.phases[0].name, "prefill");
  EXPECT_EQ(s.phases[1].name, kNoPhase);
  EXPECT_EQ(s.phases[2].name, "decode");
  const PhaseStats& decode = s.phases[2];
  EXPECT_EQ(decode.steps, 2);
  EXPECT_EQ(decode.op_calls, 4);
  EXPECT_NEAR(decode.seconds, 3e-3, 1e-12);
  EXPECT_NEAR(decode.seconds_per_step(), 1.5e-3, 1e-12);
  EXPECT_NEAR(decode.wall_seconds_per_step(), 1.75e-3, 1e-12);  // 7 to 9 ms and 10 to 11.5 ms
  EXPECT_EQ(decode.by_name[0].name, "matmul");
  EXPECT_EQ(decode.by_name[0].calls, 2);
  EXPECT_EQ(s.phases[1].steps, 0);
  int64_t calls = 0;
  double seconds = 0;
  for (const PhaseStats& p : s.phases) calls += p.op_calls, seconds += p.seconds;
  EXPECT_EQ(calls, s.op_calls);
  EXPECT_NEAR(seconds, s.breakdown.busy_seconds, 1e-12);

  const nlohmann::json j = to_json(s);
  ASSERT_EQ(j["phases"].size(), 3u);
  EXPECT_EQ(j["phases"][2]["name"], "decode");
  EXPECT_EQ(j["phases"][2]["steps"], 2);
  EXPECT_EQ(j["ops"][0]["phase"], "all");
  EXPECT_EQ(j["op_shapes"][0]["phase"], "all");
  int64_t row_calls = 0;
  for (const nlohmann::json& row : j["op_phases"]) {
    EXPECT_TRUE(row.contains("phase") && row.contains("name") && row.contains("seconds"));
    row_calls += row["calls"].get<int64_t>();
  }
  EXPECT_EQ(row_calls, s.op_calls);
  const std::string table = format_summary(s, 0);
  EXPECT_HAS(table, "-- prefill: ");
  EXPECT_HAS(table, "1 step, ");
  EXPECT_HAS(table, "-- decode: ");
  EXPECT_HAS(table, "2 steps, 1.500 ms of ops per step (1.750 ms first op to last)");
  EXPECT_HAS(table, "-- other: ");
  EXPECT_HAS(table, "-- whole run");
  EXPECT_HAS(table, "verdict: ");
}

TEST(Summarize, WithoutPhasesThereAreNoPhaseSections) {
  const ProfileSummary s = summarize({event("matmul", 0, 1e-3, 10e6, 10e6)}, roofs(), false);
  EXPECT_TRUE(s.phases.empty());
  EXPECT_EQ(format_summary(s, 0).find("-- "), std::string::npos);
  EXPECT_TRUE(to_json(s)["phases"].empty());
}

TEST(Summarize, NoEventsIsAnEmptyRun) {
  const ProfileSummary s = summarize({}, roofs(), false);
  EXPECT_EQ(s.op_calls, 0);
  EXPECT_EQ(s.breakdown.span_seconds, 0);
  EXPECT_NO_THROW(to_json(s).dump());
}

TEST(Si, PrefixesRatesAndSizes) {
  EXPECT_EQ(si(12.3e9, "FLOP/s"), "12.3 GFLOP/s");
  EXPECT_EQ(si(1.2e12, "FLOP/s"), "1.20 TFLOP/s");
  EXPECT_EQ(si(850e6, "B/s"), "850 MB/s");
  EXPECT_EQ(si(0, "B"), "0 B");
}

}  // namespace
}  // namespace roofline::perf
