// FLOPs and bytes of backend ops from their tensor shapes (timed_backend.h op_work), and TimedBackend's
// per-call listener on the CPU backend.
#include <gtest/gtest.h>

#include <vector>

#include "roofline/backend/timed_backend.h"

namespace roofline {
namespace {

Tensor f32(Shape shape) { return Tensor::zeros(DType::F32, std::move(shape)); }
Tensor bf16(Shape shape) { return Tensor::zeros(DType::BF16, std::move(shape)); }

TEST(OpWork, MatmulCountsTwoFlopsPerMultiplyAddAndEveryOperandOnce) {
  Tensor x = f32({4, 64}), w = bf16({32, 64}), out = f32({4, 32}), bias = f32({32});
  OpWork r = op_work::matmul(out, x, w, nullptr);
  EXPECT_DOUBLE_EQ(r.flops, 2.0 * 4 * 32 * 64);
  EXPECT_DOUBLE_EQ(r.bytes, 4 * 64 * 4 + 32 * 64 * 2 + 4 * 32 * 4);
  EXPECT_EQ(r.shape, "M=4 N=32 K=64 bf16");
  OpWork with_bias = op_work::matmul(out, x, w, &bias);
  EXPECT_DOUBLE_EQ(with_bias.flops, r.flops + 4 * 32);
  EXPECT_DOUBLE_EQ(with_bias.bytes, r.bytes + 32 * 4);
}

TEST(OpWork, MatmulManyReadsTheSharedInputOnce) {
  Tensor x = f32({2, 16}), wq = bf16({16, 16}), wk = bf16({8, 16}), q = f32({2, 16}), k = f32({2, 8});
  const MatmulTarget targets[] = {{&q, &wq, nullptr}, {&k, &wk, nullptr}};
  OpWork r = op_work::matmul_many(x, targets);
  EXPECT_DOUBLE_EQ(r.flops, 2.0 * 2 * 16 * 16 + 2.0 * 2 * 8 * 16);
  EXPECT_DOUBLE_EQ(r.bytes, 2 * 16 * 4 + (16 * 16 * 2 + 2 * 16 * 4) + (8 * 16 * 2 + 2 * 8 * 4));
  EXPECT_EQ(r.shape, "M=2 N=24 K=16 bf16 x2");
}

TEST(OpWork, CausalAttentionCountsEachQueryAgainstItsPrefix) {
  // 3 new queries at positions 5, 6, 7: 6 + 7 + 8 = 21 (query, key) pairs per head.
  Tensor q = f32({3, 4, 8}), out = f32({3, 4, 8}), k = f32({16, 2, 8});
  AttentionParams p;
  p.start_pos = 5;
  OpWork r = op_work::attention(out, q, k, p);
  EXPECT_DOUBLE_EQ(r.flops, 4.0 * 21 * (4 * 8 + 5));
  // q and out, plus keys and values of positions 0..7 (2 kv heads x 8 dims x 4 bytes each).
  EXPECT_DOUBLE_EQ(r.bytes, 2.0 * 3 * 4 * 8 * 4 + 2.0 * 8 * (2 * 8 * 4));
  EXPECT_EQ(r.shape, "T=3 ctx<=8");
  p.sliding_window = 2;  // each query sees at most 2 keys
  EXPECT_DOUBLE_EQ(op_work::attention(out, q, k, p).flops, 4.0 * 6 * (4 * 8 + 5));
}

TEST(OpWork, PagedAttentionReadsLengthsFromHostTensors) {
  Tensor q = f32({3, 2, 4}), out = f32({3, 2, 4}), pool = f32({4, 16, 1, 4});
  Tensor query_start = Tensor::zeros(DType::I32, {3}), context_len = Tensor::zeros(DType::I32, {2});
  query_start.ptr<int32_t>()[1] = 2, query_start.ptr<int32_t>()[2] = 3;  // seq 0: 2 rows, seq 1: 1 row
  context_len.ptr<int32_t>()[0] = 2, context_len.ptr<int32_t>()[1] = 10;
  PagedAttentionBatch b;
  b.num_seqs = 2;
  b.max_query_len = 2;
  b.max_context_len = 10;
  b.query_start = &query_start;
  b.context_len = &context_len;
  OpWork r = op_work::paged_attention(out, q, pool, b);
  // seq 0: positions 0, 1 -> 1 + 2 pairs; seq 1: position 9 -> 10 pairs.
  EXPECT_DOUBLE_EQ(r.flops, 2.0 * 13 * (4 * 4 + 5));
  EXPECT_DOUBLE_EQ(r.bytes, 2.0 * 3 * 2 * 4 * 4 + 2.0 * 12 * (1 * 4 * 4));
}

TEST(OpWork, ElementwiseAndNorms) {
  Tensor x = f32({2, 10}), out = f32({2, 10}), w = bf16({10});
  EXPECT_DOUBLE_EQ(op_work::elementwise(out, 2, 5.0).flops, 100);
  EXPECT_DOUBLE_EQ(op_work::elementwise(out, 2, 5.0).bytes, 3 * 80);
  OpWork n = op_work::row_norm(out, x, op_work::bytes_of(w), 4.0);
  EXPECT_DOUBLE_EQ(n.flops, 80);
  EXPECT_DOUBLE_EQ(n.bytes, 80 + 80 + 20);
  Tensor h = f32({3, 2, 8});
  OpWork r = op_work::rope(h, 8, nullptr);
  EXPECT_DOUBLE_EQ(r.flops, 3.0 * 3 * 2 * 8);  // 6 FLOPs per rotated pair, 4 pairs per head
  EXPECT_EQ(op_work::context_bucket(1), 1);
  EXPECT_EQ(op_work::context_bucket(17), 32);
}

struct Collect final : OpListener {
  std::vector<std::string> names;
  std::vector<OpCategory> categories;
  std::vector<double> flops;
  int begins = 0;
  bool closed = false;
  void op_begin(OpCategory) override { ++begins; }
  void op_end(const OpCall& call) override {
    names.push_back(call.name);
    categories.push_back(call.category);
    flops.push_back(call.work ? call.work->flops : -1);
    EXPECT_LE(call.host_begin, call.host_end);
  }
  void backend_closing() override { closed = true; }
};

TEST(TimedBackend, ListenerGetsEveryCallWithItsWorkAndTotalsStillAddUp) {
  Collect listener;
  {
    TimedBackend timed(make_cpu_backend(1), &listener);
    Tensor x = f32({2, 8}), w = f32({4, 8}), out = f32({2, 4});
    timed.matmul(out, x, w, nullptr);
    timed.add(out, out);
    timed.synchronize();
    Tensor up = timed.upload(x, DType::F32);
    EXPECT_EQ(timed.timings().at("matmul").calls, 1);
    EXPECT_EQ(timed.timings().at("add").calls, 1);
    EXPECT_EQ(timed.timings().count("synchronize"), 0u);  // a host wait, not an op
    EXPECT_EQ(timed.timings().at("upload").calls, 1);
    EXPECT_EQ(timed.name(), "cpu+timed");
  }
  EXPECT_TRUE(listener.closed);
  ASSERT_EQ(listener.names.size(), 4u);
  EXPECT_EQ(listener.names[0], "matmul");
  EXPECT_DOUBLE_EQ(listener.flops[0], 2.0 * 2 * 4 * 8);
  EXPECT_EQ(listener.categories[2], OpCategory::Sync);
  EXPECT_EQ(listener.categories[3], OpCategory::Copy);
  EXPECT_EQ(listener.begins, 4);
}

TEST(TimedBackend, WithoutAListenerItOnlyTotals) {
  auto cpu = make_cpu_backend(1);
  TimedBackend timed(*cpu);
  Tensor x = f32({1, 4}), w = f32({2, 4}), out = f32({1, 2});
  timed.matmul(out, x, w, nullptr);
  timed.matmul(out, x, w, nullptr);
  EXPECT_EQ(timed.timings().at("matmul").calls, 2);
  EXPECT_GE(timed.timings().at("matmul").seconds, 0);
  timed.reset();
  EXPECT_TRUE(timed.timings().empty());
}

TEST(TimedBackend, PhaseScopesSplitTheTimingsByPhase) {
  auto cpu = make_cpu_backend(1);
  TimedBackend timed(*cpu);
  Tensor x = f32({1, 4}), w = f32({2, 4}), out = f32({1, 2});
  timed.matmul(out, x, w, nullptr);
  EXPECT_STREQ(current_phase().name, "");
  {
    const PhaseScope prefill("prefill");
    const int64_t step = current_phase().step;
    timed.matmul(out, x, w, nullptr);
    {
      const PhaseScope same("prefill");  // nested in the same phase: the same step
      EXPECT_EQ(current_phase().step, step);
      const PhaseScope decode("decode");  // another phase: a new step until it closes
      EXPECT_STREQ(current_phase().name, "decode");
      EXPECT_NE(current_phase().step, step);
      timed.matmul(out, x, w, nullptr);
      timed.matmul(out, x, w, nullptr);
    }
    EXPECT_STREQ(current_phase().name, "prefill");
    EXPECT_EQ(current_phase().step, step);
  }
  EXPECT_STREQ(current_phase().name, "");
  EXPECT_EQ(current_phase().step, -1);
  EXPECT_EQ(timed.timings().at("matmul").calls, 4);
  EXPECT_EQ(timed.phase_timings().at("").at("matmul").calls, 1);
  EXPECT_EQ(timed.phase_timings().at("prefill").at("matmul").calls, 1);
  EXPECT_EQ(timed.phase_timings().at("decode").at("matmul").calls, 2);
  timed.reset();
  EXPECT_TRUE(timed.phase_timings().empty());
}

}  // namespace
}  // namespace roofline
