#include "roofline/engine/serving/kv_cache_manager.h"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "roofline/core/error.h"

namespace roofline::serving {
namespace {

using Ids = std::vector<BlockId>;

// `count` consecutive token ids starting at `first`.
std::vector<int32_t> tokens(int count, int32_t first = 0) {
  std::vector<int32_t> t(static_cast<size_t>(count));
  std::iota(t.begin(), t.end(), first);
  return t;
}

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Ids table(const KvCacheManager& kv, RequestId id) {
  const auto t = kv.block_table(id);
  return Ids(t.begin(), t.end());
}

// Admits `prompt` as `id` the way the scheduler does (prefix lookup, then slots for the rest), runs it
// whole and publishes its full blocks. Returns the new blocks.
Ids run_prompt(KvCacheManager& kv, RequestId id, const std::vector<int32_t>& prompt) {
  const PrefixHit hit = kv.get_computed_blocks(prompt);
  auto blocks = kv.allocate_slots(id, hit.num_tokens, int(prompt.size()) - hit.num_tokens, hit);
  EXPECT_TRUE(blocks.has_value());
  kv.cache_full_blocks(id, prompt, int(prompt.size()));
  return blocks ? blocks->ids : Ids{};
}

KvCacheManager make(int num_blocks, int block_size = 4, bool prefix_caching = true) {
  return KvCacheManager({.num_blocks = num_blocks, .block_size = block_size, .enable_prefix_caching = prefix_caching});
}

TEST(KvCacheManager, AllocatesInOrderAndGrowsAtBlockBoundaries) {
  auto kv = make(10);
  EXPECT_EQ(kv.allocate_slots(1, 0, 5)->ids, (Ids{0, 1}));
  EXPECT_EQ(kv.allocate_slots(2, 0, 4)->ids, (Ids{2}));
  for (int computed = 5; computed < 8; ++computed) EXPECT_TRUE(kv.allocate_slots(1, computed, 1)->empty());
  EXPECT_EQ(kv.allocate_slots(1, 8, 1)->ids, (Ids{3}));  // position 8 opens the third block
  EXPECT_EQ(kv.allocate_slots(2, 4, 1)->ids, (Ids{4}));
  EXPECT_EQ(table(kv, 1), (Ids{0, 1, 3}));
  EXPECT_EQ(table(kv, 2), (Ids{2, 4}));
  EXPECT_EQ(kv.num_used_blocks(), 5);
  EXPECT_DOUBLE_EQ(kv.usage(), 0.5);
}

TEST(KvCacheManager, FreedBlocksAreReusedAfterTheNeverUsedOnes) {
  auto kv = make(10);
  kv.allocate_slots(1, 0, 12);  // 0 1 2
  kv.allocate_slots(2, 0, 4);   // 3
  kv.free(1);                   // released last to first: 2 1 0
  EXPECT_TRUE(kv.block_table(1).empty());
  EXPECT_EQ(kv.num_used_blocks(), 1);
  EXPECT_EQ(kv.allocate_slots(3, 0, 32)->ids, (Ids{4, 5, 6, 7, 8, 9, 2, 1}));
  EXPECT_EQ(kv.num_free_blocks(), 1);
  kv.block_pool().check_consistency();
}

TEST(KvCacheManager, FailedAllocationChangesNothing) {
  auto kv = make(4);
  kv.allocate_slots(1, 0, 12);
  EXPECT_FALSE(kv.allocate_slots(2, 0, 8).has_value());
  EXPECT_TRUE(kv.block_table(2).empty());
  EXPECT_EQ(kv.num_requests(), 1);
  EXPECT_FALSE(kv.allocate_slots(1, 12, 5).has_value());  // would need 2 more
  EXPECT_EQ(table(kv, 1), (Ids{0, 1, 2}));
  EXPECT_EQ(kv.allocate_slots(2, 0, 4)->ids, (Ids{3}));
}

TEST(KvCacheManager, SharedPrefixReusesFullBlocks) {
  auto kv = make(10);
  const auto a = tokens(10);  // blocks [0..3] [4..7] [8 9]
  EXPECT_EQ(run_prompt(kv, 1, a), (Ids{0, 1, 2}));
  const auto b = concat(tokens(8), {100, 101, 102});
  const PrefixHit hit = kv.get_computed_blocks(b);
  EXPECT_EQ(hit.blocks.ids, (Ids{0, 1}));
  EXPECT_EQ(hit.num_tokens, 8);
  EXPECT_EQ(kv.allocate_slots(2, 8, 3, hit)->ids, (Ids{3}));
  EXPECT_EQ(table(kv, 2), (Ids{0, 1, 3}));
  const auto& pool = kv.block_pool();
  EXPECT_EQ(pool.ref_count(0), 2);
  EXPECT_EQ(pool.ref_count(1), 2);
  EXPECT_EQ(pool.ref_count(2), 1);
  EXPECT_EQ(pool.ref_count(3), 1);
  EXPECT_EQ(kv.num_used_blocks(), 4);
  const auto& stats = kv.prefix_cache_stats();
  EXPECT_EQ(stats.num_lookups, 2);
  EXPECT_EQ(stats.query_tokens, 21);
  EXPECT_EQ(stats.hit_tokens, 8);
  EXPECT_DOUBLE_EQ(stats.hit_ratio(), 8.0 / 21.0);

  kv.free(1);  // block 0 and 1 are still held by request 2
  EXPECT_EQ(pool.ref_count(0), 1);
  EXPECT_EQ(kv.num_used_blocks(), 3);
  kv.free(2);
  EXPECT_EQ(kv.num_used_blocks(), 0);
  pool.check_consistency();
}

TEST(KvCacheManager, ABlockHitsOnlyAfterTheSamePrefix) {
  auto kv = make(10);
  run_prompt(kv, 1, concat(tokens(4, 0), tokens(5, 10)));  // blocks [0..3] [10..13] [14]
  EXPECT_TRUE(kv.get_computed_blocks(concat(tokens(4, 100), tokens(5, 10))).blocks.empty());
  EXPECT_EQ(kv.get_computed_blocks(concat(tokens(4, 0), tokens(5, 10))).blocks.ids, (Ids{0, 1}));
}

TEST(KvCacheManager, PartialLastBlockIsNeverShared) {
  auto kv = make(10);
  const auto a = tokens(10);
  run_prompt(kv, 1, a);
  EXPECT_FALSE(kv.block_pool().is_cached(2));  // holds 2 of 4 tokens
  EXPECT_EQ(kv.get_computed_blocks(concat(a, {50})).blocks.ids, (Ids{0, 1}));
  EXPECT_EQ(kv.get_computed_blocks(a).blocks.ids, (Ids{0, 1}));
}

TEST(KvCacheManager, LastTokenIsAlwaysComputed) {
  auto kv = make(10);
  const auto a = tokens(8);  // exactly two full blocks
  run_prompt(kv, 1, a);
  const PrefixHit hit = kv.get_computed_blocks(a);
  EXPECT_EQ(hit.blocks.ids, (Ids{0}));  // block 1 holds the last token
  EXPECT_EQ(hit.num_tokens, 4);
  EXPECT_EQ(kv.allocate_slots(2, 4, 4, hit)->ids, (Ids{2}));
  kv.cache_full_blocks(2, a, 8);  // block 2 repeats block 1: the cache keeps block 1
  EXPECT_FALSE(kv.block_pool().is_cached(2));
  kv.free(2);
  EXPECT_EQ(kv.block_pool().clean_queue().back(), 2);
  EXPECT_EQ(kv.block_pool().ref_count(0), 1);
}

TEST(KvCacheManager, FreedFullBlocksStayCachedAndTheTailIsEvictedFirst) {
  auto kv = make(6);
  const auto a = tokens(12);
  EXPECT_EQ(run_prompt(kv, 1, a), (Ids{0, 1, 2}));
  kv.free(1);
  const auto& pool = kv.block_pool();
  EXPECT_EQ(pool.evictable_queue(), (Ids{2, 1, 0}));
  EXPECT_EQ(pool.clean_queue(), (Ids{3, 4, 5}));
  EXPECT_EQ(kv.num_used_blocks(), 0);
  EXPECT_EQ(pool.num_cached_blocks(), 3);

  EXPECT_EQ(run_prompt(kv, 2, tokens(16, 1000)), (Ids{3, 4, 5, 2}));  // evicts a's tail block
  EXPECT_EQ(pool.num_evictions(), 1);
  const PrefixHit hit = kv.get_computed_blocks(concat(a, {7}));
  EXPECT_EQ(hit.blocks.ids, (Ids{0, 1}));
  EXPECT_EQ(hit.num_tokens, 8);
  pool.check_consistency();
}

TEST(KvCacheManager, LeastRecentlyFreedRequestIsEvictedFirst) {
  auto kv = make(4);
  run_prompt(kv, 1, tokens(4, 0));    // block 0, full
  run_prompt(kv, 2, tokens(4, 100));  // block 1, full
  kv.free(2);
  kv.free(1);
  EXPECT_EQ(kv.block_pool().evictable_queue(), (Ids{1, 0}));
  EXPECT_EQ(kv.allocate_slots(3, 0, 12)->ids, (Ids{2, 3, 1}));
  EXPECT_TRUE(kv.get_computed_blocks(tokens(5, 100)).blocks.empty());
  EXPECT_EQ(kv.get_computed_blocks(tokens(5, 0)).blocks.ids, (Ids{0}));
}

TEST(KvCacheManager, HitsOnUnusedCachedBlocksCountAgainstFreeSpace) {
  auto kv = make(3);
  const auto a = tokens(9);
  EXPECT_EQ(run_prompt(kv, 1, a), (Ids{0, 1, 2}));
  kv.free(1);  // 2 (partial) -> clean; 1, 0 -> evictable
  const auto& pool = kv.block_pool();
  EXPECT_EQ(pool.clean_queue(), (Ids{2}));
  EXPECT_EQ(pool.evictable_queue(), (Ids{1, 0}));
  // 13 tokens need 4 blocks: 2 hits + 2 new, but taking the hits leaves 1 free block.
  const auto b = concat(tokens(8), tokens(5, 500));
  const PrefixHit hit = kv.get_computed_blocks(b);
  ASSERT_EQ(hit.blocks.ids, (Ids{0, 1}));
  EXPECT_FALSE(kv.allocate_slots(2, 8, 5, hit).has_value());
  EXPECT_EQ(pool.ref_count(0), 0);
  EXPECT_EQ(pool.evictable_queue(), (Ids{1, 0}));
  EXPECT_EQ(kv.prefix_cache_stats().num_lookups, 1);  // the failed attempt is not counted
  // 9 tokens need 3 blocks: 2 hits + 1 new fit.
  const auto c = concat(tokens(8), {600});
  const PrefixHit hit_c = kv.get_computed_blocks(c);
  EXPECT_EQ(kv.allocate_slots(3, 8, 1, hit_c)->ids, (Ids{2}));
  EXPECT_EQ(table(kv, 3), (Ids{0, 1, 2}));
  EXPECT_EQ(kv.num_free_blocks(), 0);
  EXPECT_EQ(kv.prefix_cache_stats().hit_tokens, 8);
  pool.check_consistency();
}

TEST(KvCacheManager, WithoutPrefixCachingNothingIsShared) {
  auto kv = make(6, 4, /*prefix_caching=*/false);
  const auto a = tokens(9);
  run_prompt(kv, 1, a);
  EXPECT_EQ(kv.block_pool().num_cached_blocks(), 0);
  EXPECT_TRUE(kv.get_computed_blocks(a).blocks.empty());
  kv.free(1);
  EXPECT_EQ(kv.block_pool().clean_queue(), (Ids{3, 4, 5, 2, 1, 0}));
  EXPECT_EQ(kv.prefix_cache_stats().hit_tokens, 0);
}

TEST(KvCacheManager, PoolSizeFromMemory) {
  // A Llama-8B-shaped KV: 2 (k, v) * 32 layers * 8 kv heads * 128 dims * 2 bytes = 128 KiB per token.
  const size_t per_token = 2 * 32 * 8 * 128 * 2;
  EXPECT_EQ(kv_blocks_for_memory(size_t(1) << 30, per_token, 16), 512);
  EXPECT_EQ(kv_blocks_for_memory(per_token * 16 - 1, per_token, 16), 0);
  EXPECT_THROW(kv_blocks_for_memory(1 << 20, 0, 16), Error);
}

TEST(KvCacheManager, MisuseIsANamedError) {
  EXPECT_THROW(make(0), Error);
  EXPECT_THROW(make(4, 0), Error);
  auto kv = make(4);
  run_prompt(kv, 1, tokens(8));
  kv.allocate_slots(2, 0, 1);
  const PrefixHit hit = kv.get_computed_blocks(tokens(9));
  EXPECT_THROW(kv.allocate_slots(2, 4, 1, hit), Error);  // a hit cannot join an existing table
  EXPECT_THROW(kv.allocate_slots(3, 12, 1), Error);      // computed tokens without blocks
  EXPECT_THROW(kv.allocate_slots(3, 0, -1), Error);
}

}  // namespace
}  // namespace roofline::serving
