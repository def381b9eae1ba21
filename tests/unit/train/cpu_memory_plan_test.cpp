// The CPU trainer's memory plan (train/cpu_memory_plan.h) against what the CPU trainer allocates:
//  - the buffers TrainModel reports, name by name and category by category, on the tiny GPT-2, Llama and Qwen3
//    fixtures, with and without checkpointing, AdamW and SGD;
//  - every block the model and the optimizer allocate through operator new, counted by a replaced operator new
//    (tracked_heap.h) over the construction and two steps: each planned buffer is one block of its size, and what
//    is left is bookkeeping (blocks under 1 KiB), so a buffer added without the plan fails here;
//  - GPT-2 124M at batch 4 x 256 (the estimate's example) worked out by hand.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "roofline/core/thread_pool.h"
#include "roofline/model/presets.h"
#include "roofline/train/cpu_memory_plan.h"
#include "roofline/train/model.h"
#include "roofline/train/ops/cross_entropy.h"
#include "roofline/train/optimizer.h"
#include "roofline/train/params.h"
#include "tracked_heap.h"
#include "train_test_util.h"

namespace roofline::train {
namespace {

using testing::fixture_dir;
using testing::HeapWindow;
using C = DeviceMemoryCategory;

// M = 256 rows: every buffer the plan sizes by M (the smallest: M floats) is at least 1 KiB, above any
// bookkeeping block (LayerActs itself, the arrays of vectors).
constexpr int64_t kB = 4, kT = 64;
constexpr size_t kBookkeepingBlock = 1024;

struct Case {
  const char* fixture;
  bool checkpoint;
  OptimizerKind optimizer;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const char* fixture : {"gpt2", "llama", "qwen3"})
    for (bool checkpoint : {false, true})
      for (OptimizerKind optimizer : {OptimizerKind::AdamW, OptimizerKind::SGD})
        out.push_back({fixture, checkpoint, optimizer});
  return out;
}

std::string describe(const Case& c) {
  return fmt::format("{}{}, {}", c.fixture, c.checkpoint ? " checkpointed" : "",
                     c.optimizer == OptimizerKind::AdamW ? "adamw" : "sgd");
}

std::vector<int32_t> windows(const ModelSpec& spec) {
  std::vector<int32_t> w(size_t(kB * (kT + 1)));
  for (size_t i = 0; i < w.size(); ++i) w[i] = int32_t((i * 7 + 3) % size_t(spec.vocab_size));
  return w;
}

OptimizerConfig optimizer_config(OptimizerKind kind) {
  OptimizerConfig c;
  c.kind = kind;
  c.weight_decay = 0.1;
  return c;
}

std::map<std::string, size_t> bytes_by_name(const std::vector<DeviceBuffer>& buffers) {
  std::map<std::string, size_t> out;
  for (const DeviceBuffer& b : buffers) out[b.name] += b.bytes();
  return out;
}

size_t bytes_of(const std::vector<DeviceBuffer>& buffers, C category) {
  size_t total = 0;
  for (const DeviceBuffer& b : buffers)
    if (b.category == category) total += b.bytes();
  return total;
}

size_t bytes_of(const std::vector<DeviceBuffer>& buffers) {
  size_t total = 0;
  for (const DeviceBuffer& b : buffers) total += b.bytes();
  return total;
}

TEST(CpuTrainPlan, ModelHoldsThePlannedBuffers) {
  ThreadPool pool(2);
  for (const Case& c : cases()) {
    SCOPED_TRACE(describe(c));
    const ModelSpec spec = load_model_spec(fixture_dir(c.fixture));
    TrainModel model(spec, pool, c.checkpoint);
    // Before the first batch: the parameters and their gradients.
    const CpuTrainPlan empty = plan_cpu_training(spec, 0, 0, c.checkpoint, c.optimizer, pool.size());
    EXPECT_EQ(bytes_by_name(model.buffers()), bytes_by_name(empty.model_buffers()));
    EXPECT_EQ(bytes_of(model.buffers()), empty.bytes(C::Weights) + empty.bytes(C::Gradients));

    init_params(spec, model.layout(), model.params().data(), 7);
    const std::vector<int32_t> w = windows(spec);
    model.forward_backward(w.data(), kB, kT, 1.0f / float(kB * kT));
    const CpuTrainPlan plan = plan_cpu_training(spec, kB, kT, c.checkpoint, c.optimizer, pool.size());
    const std::vector<DeviceBuffer> held = model.buffers();
    EXPECT_EQ(bytes_by_name(held), bytes_by_name(plan.model_buffers()));
    // Category by category against the whole plan: the model's own, then the optimizer's state; the workspace adds
    // the threads' scratch, the largest transient and the batches, which no object of the model holds.
    EXPECT_EQ(bytes_of(held, C::Weights), plan.bytes(C::Weights));
    EXPECT_EQ(bytes_of(held, C::Gradients), plan.bytes(C::Gradients));
    EXPECT_EQ(bytes_of(held, C::Activations), plan.bytes(C::Activations));
    EXPECT_EQ(bytes_of(held, C::Optimizer), 0u);
    EXPECT_EQ(bytes_of(held, C::Workspace) + bytes_of(plan.thread_buffers()) + plan.largest_transient().bytes() +
                  bytes_of(plan.batch_buffers()),
              plan.bytes(C::Workspace));
    EXPECT_EQ(model.activation_bytes(), plan.bytes(C::Activations));
    const Optimizer optimizer(optimizer_config(c.optimizer), model.layout());
    EXPECT_EQ(optimizer.state_bytes(), plan.bytes(C::Optimizer));
  }
}

// What each norm keeps and the backward's buffers, named, on GPT-2 (LayerNorm), Llama (RMSNorm, no q/k norm) and
// Qwen3 (RMSNorm with q/k norms): LayerNorm keeps each row's mean and rstd, RMSNorm its rstd alone; the backward
// holds dres, d_hidden, d_ffn_a, d_ffn_b, d_attn, dq, dk and dv and nothing more (Qwen3's q/k norm backward
// writes into d_attn and dq once they are dead).
TEST(CpuTrainPlan, ModelKeepsOnlyWhatItsNormsAndBackwardUse) {
  ThreadPool pool(2);
  for (const char* fixture : {"gpt2", "llama", "qwen3"}) {
    SCOPED_TRACE(fixture);
    const ModelSpec spec = load_model_spec(fixture_dir(fixture));
    TrainModel model(spec, pool, /*checkpoint_activations=*/false);
    init_params(spec, model.layout(), model.params().data(), 7);
    const std::vector<int32_t> w = windows(spec);
    model.forward_backward(w.data(), kB, kT, 1.0f / float(kB * kT));
    std::map<std::string, size_t> held = bytes_by_name(model.buffers());
    const size_t M = size_t(kB * kT), L = size_t(spec.num_layers), f32 = 4;
    if (spec.norm == NormKind::LayerNorm) {
      EXPECT_EQ(held["ln1, ln2 mean and rstd (f32)"], 4 * L * M * f32);
      EXPECT_EQ(held["final norm mean and rstd (f32)"], 2 * M * f32);
    } else {
      EXPECT_EQ(held["ln1, ln2 rstd (f32)"], 2 * L * M * f32);
      EXPECT_EQ(held["final norm rstd (f32)"], M * f32);
    }
    EXPECT_EQ(held.count(spec.norm == NormKind::LayerNorm ? "ln1, ln2 rstd (f32)" : "ln1, ln2 mean and rstd (f32)"),
              0u);
    const size_t H = size_t(spec.hidden_size), F = size_t(spec.intermediate_size), QD = size_t(spec.q_dim()),
                 KD = size_t(spec.kv_dim());
    size_t backward = 0;
    for (const char* name : {"dres, d_hidden (f32)", "d_ffn_a, d_ffn_b (f32)", "d_attn, dq (f32)", "dk, dv (f32)"})
      backward += held[name];
    EXPECT_EQ(backward, 2 * M * (H + F + QD + KD) * f32);
    const size_t rope = spec.position == PositionKind::Rotary ? 2 * size_t(kT) * size_t(spec.head_dim / 2) * f32 : 0;
    const size_t logits = size_t(lm_head_chunk_rows(int64_t(M), spec.vocab_size)) * size_t(spec.vocab_size) * f32;
    EXPECT_EQ(bytes_of(model.buffers(), C::Workspace), backward + 2 * M * 4 + rope + logits);
  }
}

struct HeapCounts {
  size_t bookkeeping = 0;   // a ModelSpec copy and a ParamLayout: what the model's constructor keeps besides buffers
  size_t construction = 0;  // TrainModel's constructor
  size_t after_first_step = 0, after_second_step = 0, peak_of_second_step = 0;
  std::vector<size_t> blocks;  // alive after two steps, allocated since the construction
};

// The model and an optimizer on one fresh thread (its thread_local scratch starts empty) with a pool of one.
HeapCounts count_heap(const ModelSpec& spec, bool checkpoint, OptimizerKind kind) {
  HeapCounts r;
  std::thread([&] {
    ThreadPool pool(1);
    const std::vector<int32_t> w = windows(spec);
    HeapWindow window;
    {
      const ModelSpec copy = spec;
      const ParamLayout layout = ParamLayout::build(spec);
      r.bookkeeping = window.live_bytes();
    }
    window.restart();
    TrainModel model(spec, pool, checkpoint);
    r.construction = window.live_bytes();
    init_params(spec, model.layout(), model.params().data(), 7);
    window.restart();
    Optimizer optimizer(optimizer_config(kind), model.layout());
    auto step = [&] {
      model.zero_grads();
      model.forward_backward(w.data(), kB, kT, 1.0f / float(kB * kT));
      const double norm = global_grad_norm(pool, model.grads());
      clip_grads(pool, model.grads(), norm, 1.0);
      optimizer.update(pool, model.params(), model.grads(), 1e-3);
    };
    step();
    r.after_first_step = window.live_bytes();
    window.reset_peak();
    step();
    r.after_second_step = window.live_bytes();
    r.peak_of_second_step = window.peak_bytes();
    r.blocks = window.live_blocks();
  }).join();
  return r;
}

TEST(CpuTrainPlan, EveryBlockTheModelAllocatesIsPlanned) {
  gemm_packing();  // the GEMM picks its ISA once per process: not inside a window
  for (const Case& c : cases()) {
    SCOPED_TRACE(describe(c));
    const ModelSpec spec = load_model_spec(fixture_dir(c.fixture));
    const CpuTrainPlan plan = plan_cpu_training(spec, kB, kT, c.checkpoint, c.optimizer, /*threads=*/1);
    const HeapCounts heap = count_heap(spec, c.checkpoint, c.optimizer);

    EXPECT_EQ(heap.construction - heap.bookkeeping, plan.bytes(C::Weights) + plan.bytes(C::Gradients));
    EXPECT_EQ(heap.after_second_step, heap.after_first_step);  // the first step allocated everything

    // Each planned buffer (other than the parameters and gradients above) is `count` blocks of its size.
    std::vector<DeviceBuffer> planned = plan.optimizer_buffers();
    for (const auto& part : {plan.model_buffers(), plan.thread_buffers()})
      for (const DeviceBuffer& b : part)
        if (b.category != C::Weights && b.category != C::Gradients) planned.push_back(b);
    std::vector<size_t> unplanned = heap.blocks;
    for (const DeviceBuffer& b : planned)
      for (size_t i = 0; i < b.count; ++i) {
        const auto it = std::find(unplanned.begin(), unplanned.end(), b.elements * b.element_bytes);
        if (it == unplanned.end()) {
          ADD_FAILURE() << "no block of " << b.elements * b.element_bytes << " bytes for " << b.name;
          break;
        }
        unplanned.erase(it);
      }
    size_t bookkeeping = 0;
    for (size_t block : unplanned) {
      EXPECT_LT(block, kBookkeepingBlock) << "a block of " << block << " bytes the plan does not know";
      bookkeeping += block;
    }
    EXPECT_LT(bookkeeping, 4 * kBookkeepingBlock);

    // Within a step, short-lived blocks come and go one op at a time: the peak is the largest of them (plus the
    // few bytes of std::function's heap captures).
    const size_t transient = plan.largest_transient().bytes();
    EXPECT_GE(heap.peak_of_second_step, heap.after_second_step + transient);
    EXPECT_LT(heap.peak_of_second_step, heap.after_second_step + transient + kBookkeepingBlock);
  }
}

// GPT-2 124M (H 768, 12 layers of 12 heads of 64, GELU F 3072, vocab 50257, learned positions, LayerNorm, biases
// everywhere): 124,439,808 parameters, at batch 4 x 256 (M = 1024 rows).
constexpr size_t kParams = 124'439'808;
constexpr size_t kH = 768, kF = 3072, kL = 12, kHeads = 12, kV = 50257, kT256 = 256, kM = 1024;
// f32 per token of one layer's saved set: ln1, ln2 out (2H), four norm statistics, q and attention out (2 QD),
// k and v (2 KD), lse per head, x_mid (H), fc and gelu(fc) (2F).
constexpr size_t kLayerFloatsPerToken = 2 * kH + 4 + 2 * kH + 2 * kH + kHeads + kH + 2 * kF;
static_assert(kLayerFloatsPerToken == 11'536);
// The residual stream at the 13 layer boundaries and the final norm (out + mean, rstd).
constexpr size_t kBoundaryFloatsPerToken = (kL + 1) * kH + kH + 2;
static_assert(kBoundaryFloatsPerToken == 10'754);
// The backward's buffers per token: dres, d_hidden (2H), d_ffn_a, d_ffn_b (2F), d_attn, dq (2 QD), dk, dv (2 KD),
// token ids (inputs, targets: 2 x i32).
constexpr size_t kBackwardBytesPerToken = 4 * (2 * kH + 2 * kF + 2 * kH + 2 * kH) + 2 * 4;
static_assert(kBackwardBytesPerToken == 43'016);
// One chunk of logits: 32 MiB / (50257 x 4) = 166 rows.
constexpr size_t kLogitsChunkBytes = 166 * kV * 4;
// The largest short-lived block: the bias gradients' partials, 16 chunks x F floats (above LayerNorm's 17 x 2H
// and the 1024 rows' f64 losses).
constexpr size_t kLargestTransient = 16 * kF * 4;
// The batch trained and the loader's two prefetched ones: 3 x [4, 257] i32.
constexpr size_t kBatches = 3 * 4 * 257 * 4;

size_t per_thread_bytes(size_t threads) {
  // One tile of 64 query rows against the 256 keys; forward: one per thread, backward: P and dP.
  const size_t scores = 64 * kT256 * 4;
  const GemmPacking packing = gemm_packing();
  return std::min<size_t>(threads, 4 * kHeads) * 3 * scores + threads * (packing.a_floats + packing.b_floats) * 4;
}

TEST(CpuTrainPlan, Gpt2At4x256ByHand) {
  const ModelSpec spec = preset_spec("gpt2-124m");
  for (const size_t threads : {size_t(1), size_t(8), size_t(64)}) {
    SCOPED_TRACE(threads);
    const CpuTrainPlan p = plan_cpu_training(spec, 4, 256, false, OptimizerKind::AdamW, int(threads));
    EXPECT_EQ(p.params, kParams);
    EXPECT_EQ(p.ce_rows, 166);
    EXPECT_EQ(p.largest_transient().bytes(), kLargestTransient);
    EXPECT_EQ(p.bytes(C::Weights), 4 * kParams);     // f32, no bf16 copy
    EXPECT_EQ(p.bytes(C::Gradients), 4 * kParams);   // f32
    EXPECT_EQ(p.bytes(C::Optimizer), 12 * kParams);  // f32 decay mask, m, v
    EXPECT_EQ(p.bytes(C::Activations), kM * 4 * (kL * kLayerFloatsPerToken + kBoundaryFloatsPerToken));
    EXPECT_EQ(p.bytes(C::Activations), 611'065'856u);
    EXPECT_EQ(p.bytes(C::Workspace), kM * kBackwardBytesPerToken + kLogitsChunkBytes + per_thread_bytes(threads) +
                                         kLargestTransient + kBatches);
    EXPECT_EQ(p.total_bytes(), 20 * kParams + p.bytes(C::Activations) + p.bytes(C::Workspace));
  }
  // One thread: 44,048,384 backward buffers + 33,370,648 logits + 196,608 attention score tiles + the GEMM's panels
  // + 196,608 + 12,336.
  const CpuTrainPlan one = plan_cpu_training(spec, 4, 256, false, OptimizerKind::AdamW, 1);
  const GemmPacking packing = gemm_packing();
  EXPECT_EQ(one.bytes(C::Workspace), 77'824'584u + (packing.a_floats + packing.b_floats) * 4);

  // Checkpointing keeps one layer's set; SGD keeps only the decay mask.
  const CpuTrainPlan ckpt = plan_cpu_training(spec, 4, 256, true, OptimizerKind::SGD, 1);
  EXPECT_EQ(ckpt.bytes(C::Activations), kM * 4 * (kLayerFloatsPerToken + kBoundaryFloatsPerToken));
  EXPECT_EQ(ckpt.bytes(C::Activations), 91'299'840u);
  EXPECT_EQ(ckpt.bytes(C::Optimizer), 4 * kParams);
  EXPECT_EQ(ckpt.bytes(C::Workspace), one.bytes(C::Workspace));
}

TEST(CpuTrainPlan, ThreadsHoldScoresOnlyForTasksTheyCanRun) {
  // Llama-style GQA: the backward's tasks are (sequence, KV head), fewer than the forward's (sequence, head).
  const ModelSpec spec = load_model_spec(fixture_dir("llama"));  // 4 heads, 2 KV heads
  const CpuTrainPlan p = plan_cpu_training(spec, 1, 64, false, OptimizerKind::AdamW, 16);
  const std::vector<DeviceBuffer> threads = p.thread_buffers();
  ASSERT_EQ(threads.size(), 4u);
  EXPECT_EQ(threads[0].count, 4u);   // forward scores: 1 x 4 heads
  EXPECT_EQ(threads[1].count, 4u);   // backward P and dP: 1 x 2 KV heads, two each
  EXPECT_EQ(threads[2].count, 16u);  // GEMM panels: any thread
  EXPECT_EQ(threads[0].elements, 64u * 64u);
  // Longer sequences: a tile of 64 query rows against all the keys, not [T, T].
  const CpuTrainPlan long_seq = plan_cpu_training(spec, 1, 1000, false, OptimizerKind::AdamW, 16);
  EXPECT_EQ(long_seq.thread_buffers()[0].elements, 64u * 1000u);
  EXPECT_EQ(long_seq.thread_buffers()[1].elements, 64u * 1000u);
  // Before the first batch only the parameters, gradients, optimizer state and the gradient norm's partials count.
  const CpuTrainPlan none = plan_cpu_training(spec, 0, 0, false, OptimizerKind::AdamW, 16);
  EXPECT_EQ(none.total_bytes(), 20 * none.params + size_t(kGradNormChunks) * 8);
}

}  // namespace
}  // namespace roofline::train
