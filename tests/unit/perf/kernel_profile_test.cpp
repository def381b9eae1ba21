// The kernel view of `roofline profile --kernels` from synthetic device records: name demangling and
// shortening, the per-kernel table, busy and idle time, the gap classes, graph replays, JSON and trace.
#include <gtest/gtest.h>

#include "roofline/perf/kernel_profile.h"

namespace roofline::perf {
namespace {

TEST(KernelNames, DemanglesOnlyMangledNames) {
  EXPECT_EQ(demangle("_ZN8roofline4cuda12empty_kernelEv"), "roofline::cuda::empty_kernel()");
  EXPECT_EQ(demangle("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64"),
            "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64");
  EXPECT_EQ(demangle("_Znot a mangled name"), "_Znot a mangled name");
}

TEST(KernelNames, ShortensToTheLastNameWithTemplateArguments) {
  EXPECT_EQ(shorten_kernel_name("void roofline::cuda::(anonymous namespace)::rms_norm<__nv_bfloat16, 4>("
                                "__nv_bfloat16 const*, float const*, int)"),
            "rms_norm<__nv_bfloat16, 4>");
  EXPECT_EQ(shorten_kernel_name("roofline::cuda::(anonymous namespace)::empty_kernel()"), "empty_kernel");
  EXPECT_EQ(shorten_kernel_name("void roofline::cuda::decode<(roofline::KvFormat)1, true>(int)"),
            "decode<(KvFormat)1, true>");
  EXPECT_EQ(shorten_kernel_name("void k<cute::tuple<cute::C<1>, int>, 64>(cute::tuple<int>)"),
            "k<tuple<C<1>, int>, 64>");
  EXPECT_EQ(shorten_kernel_name("nvjet_tst_128x64_64x8_1x2_h_bz_coopA_NNT"), "nvjet_tst_128x64_64x8_1x2_h_bz_coopA_NNT");
  EXPECT_EQ(shorten_kernel_name("[memcpy HtoD]"), "[memcpy HtoD]");
  EXPECT_EQ(shorten_kernel_name(demangle("_Z1av")), "a");
}

KernelRecord rec(uint32_t name, uint64_t start_ns, uint64_t end_ns, uint32_t graph, uint32_t correlation,
                 uint32_t stream = 1, KernelKind kind = KernelKind::Kernel) {
  KernelRecord r;
  r.name = name;
  r.start_ns = start_ns;
  r.end_ns = end_ns;
  r.graph = graph;
  r.correlation = correlation;
  r.stream = stream;
  r.kind = kind;
  if (kind != KernelKind::Kernel) r.bytes = 4096;
  return r;
}

// Two replays of graph 7 (a then b), an eager a right after, a kernel on another stream inside the second
// replay, and a memset 1.93 ms later. Records are handed over out of order.
KernelTrace synthetic_trace() {
  KernelTrace t;
  t.names = {"_Z1av", "_Z1bv", "[memset]"};
  t.records = {
      rec(2, 2'000'000, 2'001'000, 0, 300, 1, KernelKind::Memset),
      rec(0, 0, 10'000, 7, 100),         // replay 1
      rec(1, 12'000, 20'000, 7, 100),    //   2 us gap inside the replay
      rec(0, 50'000, 60'000, 7, 101),    // replay 2, 30 us after replay 1
      rec(1, 61'000, 70'000, 7, 101),    //   1 us gap inside
      rec(1, 65'000, 68'000, 0, 150, 2), // another stream, under replay 2's b: no busy time of its own
      rec(0, 70'000, 71'000, 0, 200),    // eager, starts as b ends: no gap
  };
  t.origin_ns = 0;
  t.origin_s = 1.0;
  return t;
}

TEST(KernelSummary, RowsBusyIdleAndGaps) {
  const KernelSummary s = summarize_kernels(synthetic_trace());
  EXPECT_EQ(s.records, 7);
  EXPECT_EQ(s.devices, 1);
  EXPECT_NEAR(s.span_seconds, 2001e-6, 1e-12);
  EXPECT_NEAR(s.busy_seconds, 39e-6, 1e-12);  // 10 + 8 + 10 + 9 + 1 (eager a) + 1 (memset)
  EXPECT_NEAR(s.idle_seconds, 1962e-6, 1e-12);
  EXPECT_EQ(s.gaps, 4);

  ASSERT_EQ(s.rows.size(), 3u);
  EXPECT_EQ(s.rows[0].name, "a");
  EXPECT_EQ(s.rows[0].demangled, "a()");
  EXPECT_EQ(s.rows[0].calls, 3);
  EXPECT_EQ(s.rows[0].graph_calls, 2);
  EXPECT_NEAR(s.rows[0].seconds, 21e-6, 1e-12);
  EXPECT_NEAR(s.rows[0].min_seconds, 1e-6, 1e-12);
  EXPECT_NEAR(s.rows[0].max_seconds, 10e-6, 1e-12);
  EXPECT_NEAR(s.rows[0].share, 21.0 / 39.0, 1e-9);
  EXPECT_EQ(s.rows[1].name, "b");
  EXPECT_EQ(s.rows[1].calls, 3);
  EXPECT_NEAR(s.rows[1].seconds, 20e-6, 1e-12);
  EXPECT_EQ(s.rows[2].name, "[memset]");
  EXPECT_EQ(s.rows[2].kind, KernelKind::Memset);
  EXPECT_EQ(s.rows[2].bytes, 4096u);
  EXPECT_EQ(s.eager_calls, 3);
  EXPECT_NEAR(s.eager_busy_seconds, 5e-6, 1e-12);

  auto size_class = [&](const std::string& label) {
    for (const GapClass& c : s.gap_sizes)
      if (c.label == label) return c;
    ADD_FAILURE() << label;
    return GapClass{};
  };
  EXPECT_EQ(size_class("< 2 us").count, 1);
  EXPECT_EQ(size_class("2-5 us").count, 1);
  EXPECT_EQ(size_class("10-50 us").count, 1);
  EXPECT_NEAR(size_class("10-50 us").seconds, 30e-6, 1e-12);
  EXPECT_EQ(size_class("1-10 ms").count, 1);
  EXPECT_EQ(size_class(">= 10 ms").count, 0);

  ASSERT_EQ(s.gap_contexts.size(), 4u);
  EXPECT_EQ(s.gap_contexts[0].label, "inside a graph replay");
  EXPECT_EQ(s.gap_contexts[0].count, 2);
  EXPECT_NEAR(s.gap_contexts[0].seconds, 3e-6, 1e-12);
  EXPECT_EQ(s.gap_contexts[1].label, "between graph replays");
  EXPECT_EQ(s.gap_contexts[1].count, 1);
  EXPECT_EQ(s.gap_contexts[2].label, "between eager launches");
  EXPECT_EQ(s.gap_contexts[2].count, 1);  // eager a -> memset
  EXPECT_EQ(s.gap_contexts[3].count, 0);

  ASSERT_EQ(s.gap_pairs.size(), 2u);  // the 1.93 ms gap is a host pause, not a pair
  EXPECT_EQ(s.gap_pairs[0].label, "b -> a");
  EXPECT_NEAR(s.gap_pairs[0].seconds, 30e-6, 1e-12);
  EXPECT_EQ(s.gap_pairs[1].label, "a -> b");
  EXPECT_EQ(s.gap_pairs[1].count, 2);

  ASSERT_EQ(s.graphs.size(), 1u);
  EXPECT_EQ(s.graphs[0].graph, 7u);
  EXPECT_EQ(s.graphs[0].launches, 2);
  EXPECT_DOUBLE_EQ(s.graphs[0].nodes_per_launch, 2.0);
  EXPECT_NEAR(s.graphs[0].mean_span(), 20e-6, 1e-12);
  EXPECT_NEAR(s.graphs[0].mean_busy(), 18.5e-6, 1e-12);
  ASSERT_EQ(s.graphs[0].kernels.size(), 2u);  // the eager a and the other stream's b are not the graph's
  EXPECT_EQ(s.graphs[0].kernels[0].name, "a");
  EXPECT_EQ(s.graphs[0].kernels[0].calls, 2);
  EXPECT_NEAR(s.graphs[0].kernels[0].seconds, 20e-6, 1e-12);
  EXPECT_NEAR(s.graphs[0].kernels[0].share, 0.5, 1e-9);  // of the summed 40 us span
  EXPECT_EQ(s.graphs[0].kernels[1].name, "b");
  EXPECT_NEAR(s.graphs[0].kernels[1].seconds, 17e-6, 1e-12);

  // Added time: the b on the other stream ran under the graph's b and adds nothing; the rows' added times
  // sum to the busy time.
  EXPECT_NEAR(s.rows[0].added_seconds, 21e-6, 1e-12);
  EXPECT_NEAR(s.rows[1].added_seconds, 17e-6, 1e-12);
  EXPECT_NEAR(s.rows[2].added_seconds, 1e-6, 1e-12);
  EXPECT_NEAR(s.rows[1].mean_added_seconds(), 17e-6 / 3, 1e-12);
  EXPECT_NEAR(s.graphs[0].kernels[1].added_seconds, 17e-6, 1e-12);
}

// Programmatic dependent launch: each kernel of the replay starts while the one before drains and waits for
// it, so its own duration holds that wait. The added time is what it costs the replay.
TEST(KernelSummary, AddedTimeLeavesOutTheWaitForThePreviousKernel) {
  KernelTrace t;
  t.names = {"_Z4normv", "_Z4gemvv", "_Z7combinev"};
  t.records = {
      rec(0, 0, 4'000, 3, 10),        // norm 4 us
      rec(1, 1'000, 30'000, 3, 10),   // gemv starts 3 us early: 29 us own, 26 us added
      rec(2, 25'000, 32'000, 3, 10),  // combine starts 5 us early: 7 us own, 2 us added
      rec(0, 40'000, 44'000, 3, 11),  // the next replay, the same again
      rec(1, 41'000, 70'000, 3, 11),
      rec(2, 65'000, 72'000, 3, 11),
  };
  const KernelSummary s = summarize_kernels(t);
  EXPECT_NEAR(s.busy_seconds, 64e-6, 1e-12);
  ASSERT_EQ(s.rows.size(), 3u);
  EXPECT_EQ(s.rows[0].name, "gemv");
  EXPECT_NEAR(s.rows[0].seconds, 58e-6, 1e-12);
  EXPECT_NEAR(s.rows[0].added_seconds, 52e-6, 1e-12);
  EXPECT_EQ(s.rows[1].name, "combine");
  EXPECT_NEAR(s.rows[1].mean_seconds(), 7e-6, 1e-12);
  EXPECT_NEAR(s.rows[1].mean_added_seconds(), 2e-6, 1e-12);
  EXPECT_EQ(s.rows[2].name, "norm");
  EXPECT_NEAR(s.rows[2].added_seconds, 8e-6, 1e-12);
  ASSERT_EQ(s.graphs.size(), 1u);
  double added = 0;
  for (const KernelStats& k : s.graphs[0].kernels) added += k.added_seconds;
  EXPECT_NEAR(added, s.graphs[0].busy_seconds, 1e-12);
  EXPECT_NEAR(s.graphs[0].kernels[0].mean_added_seconds(), 26e-6, 1e-12);
  const std::string table = format_kernel_summary(s, 0);
  EXPECT_NE(table.find("added us"), std::string::npos) << table;
  const nlohmann::json j = to_json(s);
  EXPECT_NEAR(j["kernels"][0]["mean_added_us"].get<double>(), 26.0, 1e-9);
}

TEST(KernelSummary, EmptyAndDevicesApart) {
  const KernelSummary empty = summarize_kernels(KernelTrace{});
  EXPECT_EQ(empty.records, 0);
  EXPECT_EQ(empty.busy_seconds, 0);
  EXPECT_FALSE(format_kernel_summary(empty, 10).empty());

  KernelTrace t;
  t.names = {"k"};
  t.records = {rec(0, 0, 1000, 0, 1), rec(0, 0, 1000, 0, 2)};
  t.records[1].device = 1;  // the same time on another GPU: busy on both, no overlap between them
  const KernelSummary s = summarize_kernels(t);
  EXPECT_EQ(s.devices, 2);
  EXPECT_NEAR(s.busy_seconds, 2e-6, 1e-15);
  EXPECT_EQ(s.gaps, 0);
}

TEST(KernelSummary, CopiesBeforeTheFirstKernelAreSetup) {
  KernelTrace t;
  t.names = {"k", "[memcpy HtoD]"};
  t.records = {rec(1, 0, 1000, 0, 1, 1, KernelKind::Memcpy), rec(0, 5000, 6000, 0, 2),
               rec(1, 7000, 8000, 0, 3, 1, KernelKind::Memcpy)};
  const KernelSummary s = summarize_kernels(t);
  EXPECT_EQ(s.setup_records, 1);
  EXPECT_NEAR(s.setup_seconds, 1e-6, 1e-15);
  EXPECT_EQ(s.records, 2);
  EXPECT_NEAR(s.span_seconds, 3e-6, 1e-15);  // from the kernel on
  EXPECT_NEAR(s.busy_seconds, 2e-6, 1e-15);
  ASSERT_EQ(s.rows.size(), 2u);
  EXPECT_EQ(s.rows[1].calls, 1);  // the later copy counts
  EXPECT_NE(format_kernel_summary(s, 5).find("1 copies before the first kernel"), std::string::npos);

  KernelTrace copies_only;  // no kernel at all: nothing is setup
  copies_only.names = {"[memset]"};
  copies_only.records = {rec(0, 0, 1000, 0, 1, 1, KernelKind::Memset)};
  EXPECT_EQ(summarize_kernels(copies_only).setup_records, 0);
  EXPECT_EQ(summarize_kernels(copies_only).records, 1);
}

TEST(KernelSummary, TableTopPairsAndDrops) {
  KernelTrace t = synthetic_trace();
  t.dropped = 5;
  const KernelSummary s = summarize_kernels(t, 1);
  EXPECT_EQ(s.gap_pairs.size(), 1u);
  const std::string table = format_kernel_summary(s, 2);
  EXPECT_NE(table.find("5 DROPPED"), std::string::npos) << table;
  EXPECT_NE(table.find("(1 more kernels"), std::string::npos) << table;
  EXPECT_NE(table.find("GPU busy 0.039 ms of a 2.001 ms span"), std::string::npos) << table;
  EXPECT_NE(table.find("inside a graph replay: 2 gaps"), std::string::npos) << table;
  EXPECT_NE(table.find("b -> a"), std::string::npos) << table;
  EXPECT_NE(table.find("nodes/launch"), std::string::npos) << table;
  EXPECT_NE(table.find("per replay of graph 7 (2 launches, 20.00 us span, 18.50 us busy)"), std::string::npos) << table;
  EXPECT_NE(table.find("(idle inside the replay)"), std::string::npos) << table;
}

TEST(KernelSummary, JsonShape) {
  const nlohmann::json j = to_json(summarize_kernels(synthetic_trace()));
  for (const char* key : {"records", "setup_records", "setup_seconds", "dropped", "devices", "span_seconds", "busy_seconds", "idle_seconds", "gaps",
                          "kernels", "gap_sizes", "gap_contexts", "gap_pairs", "graphs", "eager"})
    EXPECT_TRUE(j.contains(key)) << key;
  ASSERT_EQ(j["kernels"].size(), 3u);
  const nlohmann::json& a = j["kernels"][0];
  EXPECT_EQ(a["name"], "a");
  EXPECT_EQ(a["kind"], "kernel");
  EXPECT_EQ(a["calls"], 3);
  EXPECT_EQ(a["graph_calls"], 2);
  EXPECT_NEAR(a["mean_us"].get<double>(), 7.0, 1e-9);
  EXPECT_NEAR(a["share"].get<double>(), 21.0 / 39.0, 1e-9);
  EXPECT_EQ(j["kernels"][2]["kind"], "memset");
  EXPECT_EQ(j["graphs"][0]["launches"], 2);
  EXPECT_EQ(j["graphs"][0]["kernels"][0]["name"], "a");
  EXPECT_NEAR(j["graphs"][0]["mean_span_us"].get<double>(), 20.0, 1e-9);
  EXPECT_EQ(j["eager"]["calls"], 3);
}

TEST(KernelSummary, ChromeTraceHasKernelsReplaysAndCounters) {
  CounterTrack util{"gpu_util", "%", {{1.0, 50}, {1.5, 90}}};
  const nlohmann::json trace = kernel_chrome_trace(synthetic_trace(), {util}, "roofline bench");
  int kernels = 0, replays = 0, counters = 0;
  double first_ts = 1e300;
  for (const nlohmann::json& e : trace["traceEvents"]) {
    if (e["ph"] == "X" && e["cat"] == "graph") ++replays;
    else if (e["ph"] == "X") {
      ++kernels;
      first_ts = std::min(first_ts, e["ts"].get<double>());
      EXPECT_GE(e["dur"].get<double>(), 0.0);
    }
    if (e["ph"] == "C") ++counters;
  }
  EXPECT_EQ(kernels, 7);
  EXPECT_EQ(replays, 2);
  EXPECT_EQ(counters, 2);
  EXPECT_DOUBLE_EQ(first_ts, 1e6);  // record time 0 is profile time 1 s
}

}  // namespace
}  // namespace roofline::perf
