#include "roofline/engine/serving/scheduler.h"

#include <gtest/gtest.h>

#include "roofline/core/error.h"
#include "unit/serving/scheduler_test_support.h"

namespace roofline::serving {
namespace {

using namespace roofline::serving::test;
using Plan = std::map<RequestId, int>;

Scheduler make(int num_blocks, int budget, bool prefix_caching = true, bool chunked = true, int max_num_seqs = 256,
               SchedulingPolicy policy = SchedulingPolicy::kFcfs) {
  return Scheduler({.max_num_seqs = max_num_seqs, .max_num_batched_tokens = budget, .enable_chunked_prefill = chunked,
                    .policy = policy},
                   {.num_blocks = num_blocks, .block_size = 4, .enable_prefix_caching = prefix_caching});
}

TEST(Scheduler, ChunkedPrefillSplitsLongPromptsUnderTheTokenBudget) {
  auto s = make(64, 16);
  s.add_request(make_request(1, 40, 3));
  s.add_request(make_request(2, 10, 3));

  Step st = step(s, 1);
  EXPECT_EQ(num_tokens_of(st.output), (Plan{{1, 16}}));
  const ScheduledRequest& first = scheduled(st.output, 1);
  EXPECT_TRUE(first.starts_table);
  EXPECT_EQ(first.new_blocks.ids, (Ids{0, 1, 2, 3}));
  EXPECT_EQ(first.num_computed_tokens, 0);
  EXPECT_FALSE(first.samples_token);
  EXPECT_EQ(st.output.total_num_tokens, 16);
  EXPECT_EQ(s.num_waiting(), 1);

  st = step(s, 2);
  EXPECT_EQ(num_tokens_of(st.output), (Plan{{1, 16}}));
  EXPECT_EQ(scheduled(st.output, 1).num_computed_tokens, 16);
  EXPECT_FALSE(scheduled(st.output, 1).starts_table);
  EXPECT_EQ(scheduled(st.output, 1).new_blocks.ids, (Ids{4, 5, 6, 7}));

  st = step(s, 3);  // the prompt's last 8 tokens, and the rest of the budget starts request 2
  EXPECT_EQ(num_tokens_of(st.output), (Plan{{1, 8}, {2, 8}}));
  EXPECT_EQ(scheduled(st.output, 1).new_blocks.ids, (Ids{8, 9}));
  EXPECT_TRUE(scheduled(st.output, 1).samples_token);
  EXPECT_TRUE(scheduled(st.output, 2).starts_table);
  EXPECT_EQ(scheduled(st.output, 2).new_blocks.ids, (Ids{10, 11}));
  EXPECT_FALSE(scheduled(st.output, 2).samples_token);

  st = step(s, 4);  // decode and the end of a prompt in one batch
  EXPECT_EQ(num_tokens_of(st.output), (Plan{{1, 1}, {2, 2}}));
  EXPECT_EQ(scheduled(st.output, 1).new_blocks.ids, (Ids{12}));  // position 40 opens block 11 of the table
  EXPECT_EQ(scheduled(st.output, 2).new_blocks.ids, (Ids{13}));
  EXPECT_EQ(table(s, 1), (Ids{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12}));
  EXPECT_EQ(table(s, 2), (Ids{10, 11, 13}));

  st = step(s, 5);
  EXPECT_EQ(num_tokens_of(st.output), (Plan{{1, 1}, {2, 1}}));
  ASSERT_EQ(st.finished.size(), 1u);
  EXPECT_EQ(st.finished[0].request_id, 1u);
  EXPECT_EQ(st.finished[0].reason, FinishReason::kLength);
  EXPECT_EQ(st.finished[0].output_token_ids, (std::vector<int32_t>{token_for(3, 1), token_for(4, 1), token_for(5, 1)}));

  st = step(s, 6);
  EXPECT_EQ(num_tokens_of(st.output), (Plan{{2, 1}}));
  ASSERT_EQ(st.finished.size(), 1u);
  EXPECT_EQ(st.finished[0].output_token_ids.size(), 3u);
  EXPECT_FALSE(s.has_unfinished_requests());
  EXPECT_EQ(s.kv_cache().num_used_blocks(), 0);
}

TEST(Scheduler, WithoutChunkedPrefillAPromptRunsWholeOrWaits) {
  auto s = make(64, 16, true, /*chunked=*/false);
  s.add_request(make_request(1, 10, 2));
  s.add_request(make_request(2, 10, 2));
  EXPECT_EQ(num_tokens_of(step(s, 1).output), (Plan{{1, 10}}));  // 10 more do not fit in the 6 left
  const Step st = step(s, 2);
  EXPECT_EQ(num_tokens_of(st.output), (Plan{{1, 1}, {2, 10}}));
  EXPECT_EQ(st.finished.size(), 1u);
  EXPECT_EQ(num_tokens_of(step(s, 3).output), (Plan{{2, 1}}));
  EXPECT_FALSE(s.has_unfinished_requests());

  EXPECT_THROW(s.add_request(make_request(3, 17, 1)), Error);  // can never fit in one step
  EXPECT_THROW(s.add_request(make_request(3, 10, 8)), Error);  // a recompute could reach 17 tokens
  EXPECT_NO_THROW(s.add_request(make_request(3, 16, 1)));
}

TEST(Scheduler, MaxNumSeqsCapsTheRunningBatch) {
  auto s = make(64, 64, true, true, /*max_num_seqs=*/2);
  for (RequestId id : {1, 2, 3}) s.add_request(make_request(id, 4, 2));
  EXPECT_EQ(num_tokens_of(step(s, 1).output), (Plan{{1, 4}, {2, 4}}));
  EXPECT_EQ(s.num_running(), 2);
  EXPECT_EQ(s.num_waiting(), 1);
  const Step st = step(s, 2);  // 1 and 2 finish after admission was decided
  EXPECT_EQ(num_tokens_of(st.output), (Plan{{1, 1}, {2, 1}}));
  EXPECT_EQ(st.finished.size(), 2u);
  EXPECT_EQ(num_tokens_of(step(s, 3).output), (Plan{{3, 4}}));
}

std::vector<RequestId> admission_order(SchedulingPolicy policy) {
  auto s = make(64, 64, true, true, /*max_num_seqs=*/1, policy);
  s.add_request(make_request(1, 4, 1, /*priority=*/5));
  s.add_request(make_request(2, 4, 1, 1));
  s.add_request(make_request(3, 4, 1, 3));
  s.add_request(make_request(4, 4, 1, 1));
  std::vector<RequestId> order;
  for (int i = 1; s.has_unfinished_requests() && i < 10; ++i) {
    for (const FinishedRequest& f : step(s, i).finished) order.push_back(f.request_id);
  }
  return order;
}

TEST(Scheduler, FcfsIgnoresPriorityAndPriorityBreaksTiesByArrival) {
  EXPECT_EQ(admission_order(SchedulingPolicy::kFcfs), (std::vector<RequestId>{1, 2, 3, 4}));
  EXPECT_EQ(admission_order(SchedulingPolicy::kPriority), (std::vector<RequestId>{2, 4, 3, 1}));
}

TEST(Scheduler, PreemptsTheLatestArrivalWhenBlocksRunOutAndRecomputesIt) {
  auto s = make(4, 64, /*prefix_caching=*/false);
  s.add_request(make_request(1, 7, 6));
  s.add_request(make_request(2, 7, 6));
  EXPECT_EQ(num_tokens_of(step(s, 1).output), (Plan{{1, 7}, {2, 7}}));
  EXPECT_EQ(table(s, 1), (Ids{0, 1}));
  EXPECT_EQ(table(s, 2), (Ids{2, 3}));
  EXPECT_EQ(num_tokens_of(step(s, 2).output), (Plan{{1, 1}, {2, 1}}));  // positions 7: no new block

  Step st = step(s, 3);  // request 1 needs a third block; request 2 makes room
  EXPECT_EQ(num_tokens_of(st.output), (Plan{{1, 1}}));
  EXPECT_EQ(st.output.preempted, (std::vector<RequestId>{2}));
  EXPECT_EQ(scheduled(st.output, 1).new_blocks.ids, (Ids{3}));
  EXPECT_EQ(table(s, 1), (Ids{0, 1, 3}));
  EXPECT_EQ(s.status(2), RequestStatus::kWaiting);
  EXPECT_TRUE(s.block_table(2).empty());
  EXPECT_EQ(s.num_computed_tokens(2), 0);
  EXPECT_EQ(s.token_ids(2).size(), 9u);  // its two outputs are kept
  EXPECT_EQ(s.num_preemptions(), 1);
  EXPECT_EQ(s.kv_cache().num_used_blocks(), 3);
  EXPECT_EQ(s.kv_cache().block_pool().clean_queue(), (Ids{2}));

  for (int i = 4; i <= 6; ++i) {  // 9 tokens need 3 blocks; only 1 is free until request 1 ends
    st = step(s, i);
    EXPECT_EQ(num_tokens_of(st.output), (Plan{{1, 1}})) << "step " << i;
  }
  ASSERT_EQ(st.finished.size(), 1u);
  EXPECT_EQ(st.finished[0].output_token_ids.size(), 6u);

  st = step(s, 7);  // recompute prompt and both outputs in one prefill
  EXPECT_EQ(num_tokens_of(st.output), (Plan{{2, 9}}));
  EXPECT_TRUE(scheduled(st.output, 2).starts_table);
  EXPECT_EQ(scheduled(st.output, 2).new_blocks.ids, (Ids{2, 3, 1}));
  EXPECT_TRUE(scheduled(st.output, 2).samples_token);
  for (int i = 8; i <= 10; ++i) st = step(s, i);
  ASSERT_EQ(st.finished.size(), 1u);
  EXPECT_EQ(st.finished[0].reason, FinishReason::kLength);
  EXPECT_EQ(st.finished[0].output_token_ids,
            (std::vector<int32_t>{token_for(1, 2), token_for(2, 2), token_for(7, 2), token_for(8, 2),
                                  token_for(9, 2), token_for(10, 2)}));
  EXPECT_EQ(s.kv_cache().num_used_blocks(), 0);
}

TEST(Scheduler, PreemptedRequestResumesFromWhatIsLeftOfItsCachedPrefix) {
  auto s = make(5, 64);
  s.add_request(make_request(1, 8, 6));
  s.add_request(make_request(2, 8, 6));
  EXPECT_EQ(num_tokens_of(step(s, 1).output), (Plan{{1, 8}, {2, 8}}));  // 1: {0 1}, 2: {2 3}, all cached

  Step st = step(s, 2);  // 1 takes the last free block; 2 finds none and preempts itself
  EXPECT_EQ(num_tokens_of(st.output), (Plan{{1, 1}}));
  EXPECT_EQ(scheduled(st.output, 1).new_blocks.ids, (Ids{4}));
  EXPECT_EQ(st.output.preempted, (std::vector<RequestId>{2}));
  const auto& pool = s.kv_cache().block_pool();
  EXPECT_EQ(pool.evictable_queue(), (Ids{3, 2}));  // freed tail first

  for (int i = 3; i <= 5; ++i) {  // 2 would hit blocks 2, 3 but needs one more: none free
    EXPECT_EQ(num_tokens_of(step(s, i).output), (Plan{{1, 1}})) << "step " << i;
  }
  st = step(s, 6);  // position 12 evicts 2's tail block; then 1 ends
  EXPECT_EQ(scheduled(st.output, 1).new_blocks.ids, (Ids{3}));
  EXPECT_EQ(pool.num_evictions(), 1);
  ASSERT_EQ(st.finished.size(), 1u);
  EXPECT_EQ(pool.clean_queue(), (Ids{3}));  // held only position 12: never cached
  EXPECT_EQ(pool.evictable_queue(), (Ids{2, 4, 1, 0}));

  st = step(s, 7);
  EXPECT_EQ(num_tokens_of(st.output), (Plan{{2, 5}}));  // 4 tokens hit, 5 run
  const ScheduledRequest& resumed = scheduled(st.output, 2);
  EXPECT_TRUE(resumed.starts_table);
  EXPECT_EQ(resumed.num_computed_tokens, 4);
  EXPECT_EQ(resumed.new_blocks.ids, (Ids{2, 3, 4}));
  EXPECT_EQ(pool.num_evictions(), 2);
  const auto& stats = s.kv_cache().prefix_cache_stats();
  EXPECT_EQ(stats.num_lookups, 3);
  EXPECT_EQ(stats.hit_tokens, 4);
  EXPECT_EQ(stats.query_tokens, 8 + 8 + 9);

  for (int i = 8; s.has_unfinished_requests() && i < 20; ++i) st = step(s, i);
  ASSERT_EQ(st.finished.size(), 1u);
  EXPECT_EQ(st.finished[0].output_token_ids.size(), 6u);
  EXPECT_EQ(st.finished[0].output_token_ids[0], token_for(1, 2));
  EXPECT_EQ(s.kv_cache().num_used_blocks(), 0);
  pool.check_consistency();
}

TEST(Scheduler, PriorityPolicyPreemptsTheLowestPriorityEvenIfItCameFirst) {
  auto s = make(4, 64, false, true, 256, SchedulingPolicy::kPriority);
  s.add_request(make_request(1, 7, 6, /*priority=*/5));
  s.add_request(make_request(2, 7, 6, /*priority=*/1));
  EXPECT_EQ(num_tokens_of(step(s, 1).output), (Plan{{1, 7}, {2, 7}}));
  EXPECT_EQ(table(s, 2), (Ids{0, 1}));  // admitted first
  EXPECT_EQ(s.running_ids(), (std::vector<RequestId>{2, 1}));
  step(s, 2);
  const Step st = step(s, 3);
  EXPECT_EQ(st.output.preempted, (std::vector<RequestId>{1}));
  EXPECT_EQ(scheduled(st.output, 2).new_blocks.ids, (Ids{3}));
  EXPECT_EQ(s.waiting_ids(), (std::vector<RequestId>{1}));
}

TEST(Scheduler, SharedPromptPrefixIsComputedOnce) {
  auto s = make(16, 64);
  Request a = make_request(1, 10, 4);
  Request b = a;
  b.id = 2;
  b.prompt_token_ids.resize(8);
  b.prompt_token_ids.insert(b.prompt_token_ids.end(), {7, 8, 9});
  s.add_request(a);
  step(s, 1);
  s.add_request(b);
  const Step st = step(s, 2);
  EXPECT_EQ(num_tokens_of(st.output), (Plan{{1, 1}, {2, 3}}));
  const ScheduledRequest& shared = scheduled(st.output, 2);
  EXPECT_EQ(shared.num_computed_tokens, 8);
  EXPECT_EQ(shared.new_blocks.ids, (Ids{0, 1, 3}));
  EXPECT_EQ(table(s, 1), (Ids{0, 1, 2}));
  EXPECT_EQ(s.kv_cache().block_pool().ref_count(0), 2);
  EXPECT_EQ(s.kv_cache().block_pool().ref_count(1), 2);
  EXPECT_DOUBLE_EQ(s.kv_cache().prefix_cache_stats().hit_ratio(), 8.0 / 21.0);
}

TEST(Scheduler, AbortFreesBlocksAtOnce) {
  auto s = make(16, 64, /*prefix_caching=*/false);
  s.add_request(make_request(1, 10, 5));
  step(s, 1);
  s.add_request(make_request(2, 4, 5));
  EXPECT_EQ(s.kv_cache().num_used_blocks(), 3);
  EXPECT_TRUE(s.abort(1));  // running
  EXPECT_EQ(s.kv_cache().num_used_blocks(), 0);
  EXPECT_EQ(s.status(1), RequestStatus::kUnknown);
  EXPECT_TRUE(s.abort(2));  // waiting
  EXPECT_EQ(s.num_waiting(), 0);
  EXPECT_FALSE(s.abort(2));
  EXPECT_FALSE(s.has_unfinished_requests());

  // Aborted while its step runs: the executor's token for it is dropped.
  s.add_request(make_request(3, 4, 5));
  const SchedulerOutput out = s.schedule();
  EXPECT_TRUE(s.abort(3));
  const std::vector<SampledToken> sampled = {{3, 42, false}};
  EXPECT_TRUE(s.update_from_output(out, sampled).empty());
  EXPECT_EQ(s.kv_cache().num_used_blocks(), 0);
}

TEST(Scheduler, StopFlagFinishesWithTheStoppingToken) {
  auto s = make(16, 64);
  s.add_request(make_request(1, 4, 10));
  step(s, 1);
  const Step st = step(s, 2, /*stop=*/{1});
  ASSERT_EQ(st.finished.size(), 1u);
  EXPECT_EQ(st.finished[0].reason, FinishReason::kStop);
  EXPECT_EQ(st.finished[0].output_token_ids, (std::vector<int32_t>{token_for(1, 1), token_for(2, 1)}));
}

TEST(Scheduler, BadOutputIsRejectedWithoutChangingState) {
  auto s = make(16, 4);
  s.add_request(make_request(1, 4, 3));
  s.add_request(make_request(2, 6, 3));
  SchedulerOutput out = s.schedule();
  ASSERT_EQ(num_tokens_of(out), (Plan{{1, 4}}));
  const SampledToken t1{1, 5, false}, t2{2, 6, false};
  EXPECT_THROW(s.update_from_output(out, {}), Error);  // missing
  const std::vector<SampledToken> doubled = {t1, t1};
  EXPECT_THROW(s.update_from_output(out, doubled), Error);
  const std::vector<SampledToken> one = {t1};
  EXPECT_TRUE(s.update_from_output(out, one).empty());
  EXPECT_EQ(s.token_ids(1).size(), 5u);

  out = s.schedule();  // 1 decodes, 2 gets a 3-token chunk of its 6
  ASSERT_EQ(num_tokens_of(out), (Plan{{1, 1}, {2, 3}}));
  const std::vector<SampledToken> early = {{1, 7, false}, t2};  // 2 is mid-prompt
  EXPECT_THROW(s.update_from_output(out, early), Error);
  EXPECT_EQ(s.token_ids(1).size(), 5u);
  const std::vector<SampledToken> right = {{1, 7, false}};
  EXPECT_TRUE(s.update_from_output(out, right).empty());
}

Scheduler make_static(int num_blocks, int budget, int max_num_seqs) {
  return Scheduler({.max_num_seqs = max_num_seqs, .max_num_batched_tokens = budget, .batching = Batching::kStatic},
                   {.num_blocks = num_blocks, .block_size = 4, .enable_prefix_caching = true});
}

TEST(Scheduler, StaticBatchingRunsTheQueueFrontUntilItDrains) {
  auto s = make_static(64, 64, /*max_num_seqs=*/2);
  s.add_request(make_request(1, 4, 2));
  s.add_request(make_request(2, 4, 5));
  s.add_request(make_request(3, 4, 1));
  EXPECT_EQ(num_tokens_of(step(s, 1).output), (Plan{{1, 4}, {2, 4}}));
  s.add_request(make_request(4, 4, 1));  // arrives while the batch runs
  Step st = step(s, 2);
  EXPECT_EQ(num_tokens_of(st.output), (Plan{{1, 1}, {2, 1}}));
  ASSERT_EQ(st.finished.size(), 1u);
  EXPECT_EQ(st.finished[0].request_id, 1u);
  // A seat is free, but request 3 waits for the whole batch: that is what static batching costs.
  EXPECT_EQ(num_tokens_of(step(s, 3).output), (Plan{{2, 1}}));
  EXPECT_EQ(num_tokens_of(step(s, 4).output), (Plan{{2, 1}}));
  st = step(s, 5);
  EXPECT_EQ(num_tokens_of(st.output), (Plan{{2, 1}}));
  ASSERT_EQ(st.finished.size(), 1u);
  EXPECT_EQ(s.num_waiting(), 2);
  st = step(s, 6);  // the next batch: 3 and 4 together
  EXPECT_EQ(num_tokens_of(st.output), (Plan{{3, 4}, {4, 4}}));
  EXPECT_EQ(st.finished.size(), 2u);
  EXPECT_FALSE(s.has_unfinished_requests());
  EXPECT_EQ(s.kv_cache().num_used_blocks(), 0);
  EXPECT_EQ(s.kv_occupancy().held_slots, 0);
}

TEST(Scheduler, StaticBatchingReservesEachMembersWholeKv) {
  auto s = make_static(8, 64, 4);  // 32 slots; each request may need 4 + 12 - 1 = 15 tokens: 4 blocks
  for (RequestId id = 1; id <= 3; ++id) s.add_request(make_request(id, 4, 12));
  EXPECT_EQ(num_tokens_of(step(s, 1).output), (Plan{{1, 4}, {2, 4}}));  // 3 would exceed the reservation
  const KvOccupancy o = s.kv_occupancy();
  EXPECT_EQ(o.held_slots, 32);            // 2 blocks in use + 6 reserved
  EXPECT_EQ(o.wasted_slots, 32 - 8);  // 4 prompt tokens each fill one block; the other 6 blocks are reserved
  s.abort(2);
  EXPECT_EQ(s.kv_occupancy().held_slots, 16);  // 1 block in use + 3 reserved for request 1
  EXPECT_EQ(num_tokens_of(step(s, 2).output), (Plan{{1, 1}}));  // 3 still waits for request 1
}

TEST(Scheduler, KvWasteIsTheUnfilledTailUnderContinuousBatching) {
  auto s = make(64, 64);
  s.add_request(make_request(1, 5, 3));
  s.add_request(make_request(2, 8, 3));
  step(s, 1);
  const KvOccupancy o = s.kv_occupancy();
  EXPECT_EQ(o.held_slots, 4 * 4);   // 2 blocks each
  EXPECT_EQ(o.wasted_slots, 3 + 0);  // request 1 fills 5 of 8 slots, request 2 all 8
  EXPECT_NEAR(o.waste_ratio(), 3.0 / 16.0, 1e-12);
}

TEST(Scheduler, RejectsRequestsThatCanNeverRun) {
  auto s = make(4, 64);  // 16 tokens of KV
  s.add_request(make_request(1, 4, 1));
  EXPECT_THROW(s.add_request(make_request(1, 4, 1)), Error);
  EXPECT_THROW(s.add_request({.id = 2, .prompt_token_ids = {}, .max_tokens = 1}), Error);
  EXPECT_THROW(s.add_request(make_request(2, 4, 0)), Error);
  EXPECT_THROW(s.add_request(make_request(2, 10, 8)), Error);
  EXPECT_NO_THROW(s.add_request(make_request(2, 10, 7)));
  EXPECT_THROW(make(4, 0), Error);
  EXPECT_THROW(make(4, 64, true, true, 0), Error);
}

}  // namespace
}  // namespace roofline::serving
