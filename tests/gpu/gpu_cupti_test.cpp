// The CUPTI recorder behind `roofline profile --kernels` on a real GPU: eager launches, a memcpy, memsets and
// five replays of a captured CUDA graph of known kernels come back as records with their names, counts,
// graph ids and non-zero device times, and aggregate into the kernel table and graph replays.
#include <gtest/gtest.h>

#include <cstdio>
#include <vector>

#include "cupti_probe_kernels.h"
#include "gpu_test_util.h"

#ifdef ROOFLINE_HAVE_CUPTI
#include "roofline/perf/cuda/cupti_recorder.h"
#include "roofline/perf/kernel_profile.h"

namespace roofline::test {
namespace {

class GpuCupti : public GpuTest {};

#define CHECK_CUDA(expr) ASSERT_EQ((expr), cudaSuccess) << #expr

const perf::KernelStats* row(const perf::KernelSummary& s, const std::string& name) {
  for (const perf::KernelStats& k : s.rows)
    if (k.name == name) return &k;
  return nullptr;
}

TEST_F(GpuCupti, RecordsEagerWorkAndGraphReplaysOfKnownKernels) {
  constexpr int n = 1 << 20;
  constexpr int replays = 5;
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  float *x = nullptr, *y = nullptr;
  CHECK_CUDA(cudaMalloc(reinterpret_cast<void**>(&x), n * sizeof(float)));
  CHECK_CUDA(cudaMalloc(reinterpret_cast<void**>(&y), n * sizeof(float)));
  const std::vector<float> ones(n, 1.0f);
  CHECK_CUDA(cudaDeviceSynchronize());

  perf::CuptiRecorder recorder;
  // Eager: one scale, one memcpy, one memset (a kernel first: copies before the first kernel are setup).
  launch_cupti_probe_scale(x, n, 2.0f, stream);
  CHECK_CUDA(cudaGetLastError());
  CHECK_CUDA(cudaMemcpyAsync(y, ones.data(), n * sizeof(float), cudaMemcpyHostToDevice, stream));
  CHECK_CUDA(cudaMemsetAsync(x, 0, n * sizeof(float), stream));
  // A graph of memset, scale, add, add, replayed five times.
  cudaGraph_t graph;
  CHECK_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  CHECK_CUDA(cudaMemsetAsync(x, 0, n * sizeof(float), stream));
  launch_cupti_probe_scale(x, n, 3.0f, stream);
  launch_cupti_probe_add(x, y, n, stream);
  launch_cupti_probe_add(x, y, n, stream);
  CHECK_CUDA(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec;
  CHECK_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  for (int i = 0; i < replays; ++i) CHECK_CUDA(cudaGraphLaunch(exec, stream));
  CHECK_CUDA(cudaStreamSynchronize(stream));
  const perf::KernelTrace trace = recorder.stop();
  EXPECT_EQ(recorder.stop().records.size(), 0u);  // stop is idempotent

  float x0 = 0;
  CHECK_CUDA(cudaMemcpy(&x0, x, sizeof(float), cudaMemcpyDeviceToHost));
  EXPECT_EQ(x0, 3.0f);  // (0 * 3 + 1) + 1 + 1: the graph ran
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaFree(x);
  cudaFree(y);
  cudaStreamDestroy(stream);

  EXPECT_EQ(trace.dropped, 0u);
  for (const perf::KernelRecord& r : trace.records) EXPECT_GT(r.end_ns, r.start_ns) << trace.names[r.name];
  const perf::KernelSummary s = perf::summarize_kernels(trace);
  EXPECT_EQ(s.setup_records, 0);
  std::string table = perf::format_kernel_summary(s, 0);
  const perf::KernelStats* scale = row(s, "cupti_probe_scale");
  const perf::KernelStats* add = row(s, "cupti_probe_add");
  const perf::KernelStats* memset = row(s, "[memset]");
  const perf::KernelStats* memcpy = row(s, "[memcpy HtoD]");
  ASSERT_TRUE(scale && add && memset && memcpy) << table;
  EXPECT_EQ(scale->calls, 1 + replays) << table;
  EXPECT_EQ(scale->graph_calls, replays);
  EXPECT_EQ(add->calls, 2 * replays);
  EXPECT_EQ(add->graph_calls, 2 * replays);
  EXPECT_EQ(memset->calls, 1 + replays) << table;
  EXPECT_EQ(memset->graph_calls, replays);
  EXPECT_EQ(memcpy->calls, 1);
  EXPECT_EQ(memcpy->bytes, n * sizeof(float));
  for (const perf::KernelStats* k : {scale, add, memset, memcpy}) EXPECT_GT(k->min_seconds, 0) << k->name;
  EXPECT_NE(scale->demangled.find("roofline::test::"), std::string::npos) << scale->demangled;
  EXPECT_EQ(s.rows.size(), 4u) << table;  // nothing else ran on the device in the window

  ASSERT_EQ(s.graphs.size(), 1u) << table;
  EXPECT_EQ(s.graphs[0].launches, replays);
  EXPECT_DOUBLE_EQ(s.graphs[0].nodes_per_launch, 4.0);
  EXPECT_GT(s.graphs[0].mean_busy(), 0);
  EXPECT_GE(s.graphs[0].mean_span(), s.graphs[0].mean_busy());
  ASSERT_EQ(s.graphs[0].kernels.size(), 3u) << table;  // memset, scale, add
  for (const perf::KernelStats& k : s.graphs[0].kernels)
    EXPECT_EQ(k.calls, k.name == "cupti_probe_add" ? 2 * replays : replays) << k.name;
  EXPECT_GT(s.busy_seconds, 0);
  EXPECT_GE(s.span_seconds, s.busy_seconds);
  std::printf("%s", table.c_str());
}

TEST_F(GpuCupti, OneRecorderAtATime) {
  perf::CuptiRecorder first;
  EXPECT_THROW(perf::CuptiRecorder second, Error);
  first.stop();
  perf::CuptiRecorder again;  // after the first stopped
  EXPECT_FALSE(again.library().empty());
}

}  // namespace
}  // namespace roofline::test
#endif
