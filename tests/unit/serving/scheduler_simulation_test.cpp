// A randomized engine loop over a tiny KV pool: hundreds of requests of random lengths sharing random
// prompt prefixes, random aborts (between steps and during a step), random stops. A fake executor keeps a
// shadow of the device KV cache so a request that reads a block another request wrote, or one that lost
// its blocks to preemption, would see the wrong "KV". Every step checks the bookkeeping invariants.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <iterator>
#include <map>
#include <ostream>
#include <random>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "roofline/engine/serving/scheduler.h"

namespace roofline::serving {
namespace {

struct SimulationParams {
  uint64_t seed = 1;
  SchedulingPolicy policy = SchedulingPolicy::kFcfs;
  bool chunked_prefill = true;
  bool prefix_caching = true;
};

// What a position's KV depends on in a real model: its token and every token before it.
std::vector<uint64_t> kv_fingerprints(std::span<const int32_t> tokens) {
  std::vector<uint64_t> fp(tokens.size());
  uint64_t h = 0x9E3779B97F4A7C15ULL;
  for (size_t i = 0; i < tokens.size(); ++i) {
    h = (h ^ uint64_t(uint32_t(tokens[i]))) * 0x100000001B3ULL;
    h ^= h >> 29;
    fp[i] = h;
  }
  return fp;
}

class Simulation {
 public:
  static constexpr int kNumRequests = 300;
  static constexpr int kBlockSize = 4;
  static constexpr int kNumBlocks = 24;  // 96 tokens of KV for up to 8 running requests: preemption is common
  static constexpr int kBudget = 32;
  static constexpr int kMaxNumSeqs = 8;

  explicit Simulation(const SimulationParams& p)
      : rng_(p.seed),
        chunked_(p.chunked_prefill),
        scheduler_({.max_num_seqs = kMaxNumSeqs, .max_num_batched_tokens = kBudget,
                    .enable_chunked_prefill = p.chunked_prefill, .policy = p.policy},
                   {.num_blocks = kNumBlocks, .block_size = kBlockSize, .enable_prefix_caching = p.prefix_caching}),
        shadow_kv_(size_t(kNumBlocks * kBlockSize), 0) {
    for (auto& prefix : system_prompts_) prefix = random_tokens(uniform(4, 20));
    for (auto& doc : documents_) doc = random_tokens(3 * kBlockSize);
  }

  void run() {
    for (; num_steps_ < 20000; ++num_steps_) {
      arrive();
      if (chance(2)) abort_one();
      if (next_id_ == kNumRequests && !scheduler_.has_unfinished_requests()) return check_end();
      const SchedulerOutput out = scheduler_.schedule();
      check_plan(out);
      execute(out);
      if (chance(3)) abort_one();  // the client goes away while the step runs
      const auto sampled = sample(out);
      for (const FinishedRequest& f : scheduler_.update_from_output(out, sampled)) finish(f);
      check_invariants();
      if (::testing::Test::HasFailure()) return;
    }
    FAIL() << "the simulation did not drain: " << scheduler_.num_running() << " running, "
           << scheduler_.num_waiting() << " waiting";
  }

  int64_t num_preemptions() const { return scheduler_.num_preemptions(); }
  double hit_ratio() const { return scheduler_.kv_cache().prefix_cache_stats().hit_ratio(); }
  int num_finished() const { return num_finished_; }
  int num_aborted() const { return num_aborted_; }
  int num_steps() const { return num_steps_; }
  int64_t num_evictions() const { return scheduler_.kv_cache().block_pool().num_evictions(); }

 private:
  struct Tracked {
    Request request;
    std::vector<int32_t> outputs;  // what the executor sampled for it
    bool live = true;
    bool stop_sent = false;
  };

  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool chance(int percent) { return uniform(0, 99) < percent; }
  std::vector<int32_t> random_tokens(int n) {
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (auto& x : t) x = uniform(0, 50);
    return t;
  }

  void arrive() {
    for (int n = uniform(0, 2); n > 0 && next_id_ < kNumRequests; --n) {
      Request r{.id = RequestId(next_id_++), .priority = uniform(0, 3)};
      if (chance(25)) {
        // Same blocks after a different first block: a cache keyed on a block's tokens alone, without
        // the chain before it, would hand out KV computed after another prefix.
        r.prompt_token_ids = random_tokens(kBlockSize);
        const auto& doc = documents_[size_t(uniform(0, 1))];
        r.prompt_token_ids.insert(r.prompt_token_ids.end(), doc.begin(), doc.end());
      } else if (chance(60)) {
        r.prompt_token_ids = system_prompts_[size_t(uniform(0, 2))];
      }
      const auto suffix = random_tokens(uniform(1, 24));
      r.prompt_token_ids.insert(r.prompt_token_ids.end(), suffix.begin(), suffix.end());
      r.max_tokens = uniform(1, 20);
      if (!chunked_) {  // without chunking a request must fit one step's budget
        r.prompt_token_ids.resize(std::min<size_t>(r.prompt_token_ids.size(), kBudget - 8));
        r.max_tokens = std::min(r.max_tokens, kBudget - int(r.prompt_token_ids.size()) + 1);
      }
      scheduler_.add_request(r);
      tracked_[r.id] = {.request = r};
      live_.insert(r.id);
    }
  }

  void abort_one() {
    if (live_.empty()) return;
    auto it = live_.begin();
    std::advance(it, uniform(0, int(live_.size()) - 1));
    const RequestId id = *it;
    ASSERT_TRUE(scheduler_.abort(id));
    EXPECT_TRUE(scheduler_.block_table(id).empty());
    tracked_[id].live = false;
    live_.erase(it);
    executor_tables_.erase(id);
    ++num_aborted_;
  }

  void check_plan(const SchedulerOutput& out) {
    EXPECT_LE(out.total_num_tokens, kBudget);
    EXPECT_LE(int(out.scheduled.size()), kMaxNumSeqs);
    int total = 0;
    for (const ScheduledRequest& s : out.scheduled) {
      total += s.num_tokens;
      EXPECT_GE(s.num_tokens, 1);
      const int num_tokens = int(scheduler_.token_ids(s.request_id).size());
      EXPECT_LE(s.num_computed_tokens + s.num_tokens, num_tokens);
      EXPECT_EQ(s.samples_token, s.num_computed_tokens + s.num_tokens == num_tokens);
      if (!chunked_) {
        EXPECT_TRUE(s.samples_token) << "a prompt was split without chunked prefill";
      }
    }
    EXPECT_EQ(total, out.total_num_tokens);
    for (RequestId id : out.preempted) {
      EXPECT_EQ(scheduler_.status(id), RequestStatus::kWaiting);
      executor_tables_.erase(id);
    }
  }

  // The fake executor: mirror the block tables from the plan, check the KV it reads, write the KV it makes.
  void execute(const SchedulerOutput& out) {
    const BlockPool& pool = scheduler_.kv_cache().block_pool();
    for (const ScheduledRequest& s : out.scheduled) {
      auto& mirror = executor_tables_[s.request_id];
      if (s.starts_table) mirror.clear();
      mirror.insert(mirror.end(), s.new_blocks.ids.begin(), s.new_blocks.ids.end());
      const auto table = scheduler_.block_table(s.request_id);
      ASSERT_TRUE(std::ranges::equal(mirror, table)) << "request " << s.request_id;
      const auto fp = kv_fingerprints(scheduler_.token_ids(s.request_id));
      auto slot = [&](int pos) {
        return size_t(table[size_t(pos / kBlockSize)]) * kBlockSize + size_t(pos % kBlockSize);
      };
      for (int pos = 0; pos < s.num_computed_tokens; ++pos) {
        ASSERT_EQ(shadow_kv_[slot(pos)], fp[size_t(pos)]) << "request " << s.request_id << " reads bad KV at " << pos;
      }
      for (int pos = s.num_computed_tokens; pos < s.num_computed_tokens + s.num_tokens; ++pos) {
        ASSERT_EQ(pool.ref_count(table[size_t(pos / kBlockSize)]), 1) << "a shared block is written";
        shadow_kv_[slot(pos)] = fp[size_t(pos)];
      }
    }
  }

  std::vector<SampledToken> sample(const SchedulerOutput& out) {
    std::vector<SampledToken> sampled;
    for (const ScheduledRequest& s : out.scheduled) {
      if (!s.samples_token) continue;
      const SampledToken t{s.request_id, uniform(0, 50), chance(3)};
      sampled.push_back(t);
      Tracked& r = tracked_[s.request_id];
      if (!r.live) continue;  // aborted during the step
      r.outputs.push_back(t.token_id);
      r.stop_sent = t.stop;
    }
    return sampled;
  }

  void finish(const FinishedRequest& f) {
    Tracked& r = tracked_[f.request_id];
    ASSERT_TRUE(r.live) << "request " << f.request_id << " finished twice or after an abort";
    EXPECT_EQ(f.output_token_ids, r.outputs);
    if (f.reason == FinishReason::kLength) {
      EXPECT_EQ(int(f.output_token_ids.size()), r.request.max_tokens);
      EXPECT_FALSE(r.stop_sent);
    } else {
      EXPECT_TRUE(r.stop_sent);
      EXPECT_LE(int(f.output_token_ids.size()), r.request.max_tokens);
    }
    r.live = false;
    live_.erase(f.request_id);
    executor_tables_.erase(f.request_id);
    ++num_finished_;
  }

  void check_invariants() {
    const KvCacheManager& kv = scheduler_.kv_cache();
    const BlockPool& pool = kv.block_pool();
    pool.check_consistency();  // free xor referenced, queues match cache state
    std::vector<int> holders(size_t(kNumBlocks), 0);
    for (RequestId id : live_) {
      const auto table = scheduler_.block_table(id);
      for (BlockId b : table) ++holders[size_t(b)];
      const int computed = scheduler_.num_computed_tokens(id);
      switch (scheduler_.status(id)) {
        case RequestStatus::kRunning:
          EXPECT_EQ(int(table.size()), (computed + kBlockSize - 1) / kBlockSize) << "request " << id;
          break;
        case RequestStatus::kWaiting:
          EXPECT_TRUE(table.empty());
          EXPECT_EQ(computed, 0);
          break;
        case RequestStatus::kUnknown:
          ADD_FAILURE() << "request " << id << " was lost";
      }
      const Tracked& r = tracked_[id];
      auto expected = r.request.prompt_token_ids;
      expected.insert(expected.end(), r.outputs.begin(), r.outputs.end());
      EXPECT_TRUE(std::ranges::equal(scheduler_.token_ids(id), expected)) << "request " << id << " tokens";
    }
    int used = 0;
    for (BlockId b = 0; b < kNumBlocks; ++b) {
      EXPECT_EQ(pool.ref_count(b), holders[size_t(b)]) << "block " << b;
      used += holders[size_t(b)] > 0;
    }
    EXPECT_EQ(kv.num_used_blocks(), used);
    EXPECT_EQ(scheduler_.num_running() + scheduler_.num_waiting(), int(live_.size()));
    EXPECT_EQ(kv.num_requests(), scheduler_.num_running());
    EXPECT_LE(scheduler_.num_running(), kMaxNumSeqs);
  }

  void check_end() {
    EXPECT_TRUE(live_.empty());
    EXPECT_EQ(num_finished_ + num_aborted_, kNumRequests);
    for (const auto& [id, r] : tracked_) EXPECT_FALSE(r.live) << "request " << id;
    const KvCacheManager& kv = scheduler_.kv_cache();
    EXPECT_EQ(kv.num_used_blocks(), 0);
    EXPECT_EQ(kv.num_free_blocks(), kNumBlocks);
    EXPECT_EQ(kv.num_requests(), 0);
    kv.block_pool().check_consistency();
  }

  std::mt19937_64 rng_;
  bool chunked_;
  Scheduler scheduler_;
  std::array<std::vector<int32_t>, 3> system_prompts_;
  std::array<std::vector<int32_t>, 2> documents_;
  std::vector<uint64_t> shadow_kv_;  // [num_blocks * block_size]: the fingerprint each slot holds
  std::map<RequestId, Tracked> tracked_;
  std::set<RequestId> live_;
  std::map<RequestId, std::vector<BlockId>> executor_tables_;
  int next_id_ = 0;
  int num_steps_ = 0;
  int num_finished_ = 0, num_aborted_ = 0;
};

void PrintTo(const SimulationParams& p, std::ostream* os) {
  *os << "seed " << p.seed << (p.policy == SchedulingPolicy::kFcfs ? " fcfs" : " priority")
      << (p.chunked_prefill ? " chunked" : " whole") << (p.prefix_caching ? " prefix" : " noprefix");
}

class SchedulerSimulation : public ::testing::TestWithParam<SimulationParams> {};

TEST_P(SchedulerSimulation, NoRequestLostNoBlockLeakedNoKvCorrupted) {
  Simulation sim(GetParam());
  sim.run();
  EXPECT_GT(sim.num_preemptions(), 0) << "the pool is meant to be tight enough to preempt";
  EXPECT_GT(sim.num_finished(), 0);
  EXPECT_GT(sim.num_aborted(), 0);
  if (GetParam().prefix_caching) {
    EXPECT_GT(sim.hit_ratio(), 0.0);
  }
  RecordProperty("preemptions", int(sim.num_preemptions()));
  RecordProperty("finished", sim.num_finished());
  RecordProperty("aborted", sim.num_aborted());
  RecordProperty("steps", sim.num_steps());
  RecordProperty("evictions", int(sim.num_evictions()));
  RecordProperty("prefix_hit_ratio", std::to_string(sim.hit_ratio()));
}

std::vector<SimulationParams> all_params() {
  std::vector<SimulationParams> params;
  for (uint64_t seed : {1, 2, 3, 4}) {
    for (auto policy : {SchedulingPolicy::kFcfs, SchedulingPolicy::kPriority}) {
      params.push_back({seed, policy, true, true});
    }
    params.push_back({seed, SchedulingPolicy::kFcfs, false, true});
    params.push_back({seed, SchedulingPolicy::kPriority, true, false});
  }
  return params;
}

INSTANTIATE_TEST_SUITE_P(Seeds, SchedulerSimulation, ::testing::ValuesIn(all_params()),
                         [](const auto& info) {
                           const SimulationParams& p = info.param;
                           return "seed" + std::to_string(p.seed) +
                                  (p.policy == SchedulingPolicy::kFcfs ? "_fcfs" : "_priority") +
                                  (p.chunked_prefill ? "_chunked" : "_whole") +
                                  (p.prefix_caching ? "_prefix" : "_noprefix");
                         });

}  // namespace
}  // namespace roofline::serving
