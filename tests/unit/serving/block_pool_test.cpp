#include "roofline/engine/serving/block_pool.h"

#include <gtest/gtest.h>

#include <vector>

#include "roofline/core/error.h"

namespace roofline::serving {
namespace {

using Ids = std::vector<BlockId>;

Ids allocate(BlockPool& pool, int n) {
  Ids ids;
  pool.allocate(n, ids);
  return ids;
}

TEST(BlockPool, FreshPoolAllocatesInIdOrder) {
  BlockPool pool(8, 4);
  EXPECT_EQ(allocate(pool, 3), (Ids{0, 1, 2}));
  EXPECT_EQ(allocate(pool, 2), (Ids{3, 4}));
  EXPECT_EQ(pool.num_free_blocks(), 3);
  EXPECT_EQ(pool.num_used_blocks(), 5);
  EXPECT_EQ(pool.ref_count(4), 1);
  EXPECT_EQ(pool.ref_count(5), 0);
  pool.check_consistency();
}

TEST(BlockPool, ReleasedBlocksQueueBehindTheFreeOnes) {
  BlockPool pool(8, 4);
  allocate(pool, 4);
  pool.release(1);
  pool.release(0);
  EXPECT_EQ(pool.clean_queue(), (Ids{4, 5, 6, 7, 1, 0}));
  EXPECT_EQ(allocate(pool, 6), (Ids{4, 5, 6, 7, 1, 0}));
  pool.check_consistency();
}

TEST(BlockPool, SharedBlockIsFreeOnlyAfterTheLastRelease) {
  BlockPool pool(4, 4);
  allocate(pool, 1);
  pool.touch(0);
  EXPECT_EQ(pool.ref_count(0), 2);
  pool.release(0);
  EXPECT_EQ(pool.ref_count(0), 1);
  EXPECT_EQ(pool.num_free_blocks(), 3);
  pool.release(0);
  EXPECT_EQ(pool.num_free_blocks(), 4);
  EXPECT_EQ(pool.clean_queue(), (Ids{1, 2, 3, 0}));
  pool.check_consistency();
}

TEST(BlockPool, CleanBlocksGoFirstThenCachedOnesInLruOrder) {
  BlockPool pool(4, 2);
  allocate(pool, 4);
  const std::vector<int32_t> t0 = {1, 2}, t1 = {3, 4}, t2 = {5, 6};
  const BlockHash h0 = hash_block_tokens(kRootBlockHash, t0);
  const BlockHash h1 = hash_block_tokens(h0, t1);
  const BlockHash h2 = hash_block_tokens(h1, t2);
  EXPECT_TRUE(pool.cache(0, h0, kRootBlockHash, t0));
  EXPECT_TRUE(pool.cache(1, h1, h0, t1));
  EXPECT_TRUE(pool.cache(2, h2, h1, t2));
  for (BlockId id : {2, 0, 1, 3}) pool.release(id);  // 3 is not cached
  EXPECT_EQ(pool.clean_queue(), (Ids{3}));
  EXPECT_EQ(pool.evictable_queue(), (Ids{2, 0, 1}));
  EXPECT_EQ(pool.num_free_blocks(), 4);
  EXPECT_EQ(pool.num_cached_blocks(), 3);

  EXPECT_EQ(allocate(pool, 1), (Ids{3}));  // clean first: nothing evicted
  EXPECT_EQ(pool.num_evictions(), 0);
  EXPECT_EQ(allocate(pool, 2), (Ids{2, 0}));  // least recently released first
  EXPECT_EQ(pool.num_evictions(), 2);
  EXPECT_FALSE(pool.is_cached(2));
  EXPECT_FALSE(pool.is_cached(0));
  EXPECT_EQ(pool.find_cached(h2, h1, t2), kNoBlock);
  EXPECT_EQ(pool.find_cached(h1, h0, t1), 1);
  EXPECT_EQ(pool.num_cached_blocks(), 1);
  pool.check_consistency();
}

TEST(BlockPool, TouchingACachedFreeBlockTakesItOutOfTheLru) {
  BlockPool pool(3, 2);
  allocate(pool, 2);
  const std::vector<int32_t> a = {1, 2}, b = {3, 4};
  pool.cache(0, 10, kRootBlockHash, a);
  pool.cache(1, 11, kRootBlockHash, b);
  pool.release(0);
  pool.release(1);
  EXPECT_EQ(pool.evictable_queue(), (Ids{0, 1}));
  pool.touch(0);  // a prefix hit
  EXPECT_EQ(pool.evictable_queue(), (Ids{1}));
  EXPECT_EQ(pool.ref_count(0), 1);
  pool.release(0);  // now the most recently used
  EXPECT_EQ(pool.evictable_queue(), (Ids{1, 0}));
  EXPECT_EQ(allocate(pool, 2), (Ids{2, 1}));
  EXPECT_TRUE(pool.is_cached(0));
  pool.check_consistency();
}

TEST(BlockPool, HitMustMatchTokensAndParentNotJustTheHash) {
  BlockPool pool(2, 2);
  allocate(pool, 1);
  const std::vector<int32_t> tokens = {7, 8}, other = {7, 9};
  ASSERT_TRUE(pool.cache(0, 42, kRootBlockHash, tokens));
  EXPECT_EQ(pool.find_cached(42, kRootBlockHash, tokens), 0);
  EXPECT_EQ(pool.find_cached(42, kRootBlockHash, other), kNoBlock);  // a forged 64-bit collision
  EXPECT_EQ(pool.find_cached(42, 1234, tokens), kNoBlock);
  EXPECT_EQ(pool.find_cached(43, kRootBlockHash, tokens), kNoBlock);
}

TEST(BlockPool, SecondBlockWithTheSameHashStaysUncached) {
  BlockPool pool(2, 2);
  allocate(pool, 2);
  const std::vector<int32_t> tokens = {7, 8};
  EXPECT_TRUE(pool.cache(0, 42, kRootBlockHash, tokens));
  EXPECT_FALSE(pool.cache(1, 42, kRootBlockHash, tokens));
  EXPECT_TRUE(pool.cache(0, 42, kRootBlockHash, tokens));  // already there
  pool.release(1);
  pool.release(0);
  EXPECT_EQ(pool.clean_queue(), (Ids{1}));
  EXPECT_EQ(pool.evictable_queue(), (Ids{0}));
  pool.check_consistency();
}

TEST(BlockPool, HashDependsOnEveryTokenTheirOrderAndTheParent) {
  const std::vector<int32_t> a = {1, 2, 3, 4}, b = {1, 2, 3, 5}, c = {2, 1, 3, 4};
  const BlockHash ha = hash_block_tokens(kRootBlockHash, a);
  EXPECT_EQ(ha, hash_block_tokens(kRootBlockHash, a));
  EXPECT_NE(ha, hash_block_tokens(kRootBlockHash, b));
  EXPECT_NE(ha, hash_block_tokens(kRootBlockHash, c));
  EXPECT_NE(ha, hash_block_tokens(ha, a));
  EXPECT_NE(hash_block_tokens(kRootBlockHash, std::vector<int32_t>{0}),
            hash_block_tokens(kRootBlockHash, std::vector<int32_t>{0, 0}));
}

TEST(BlockPool, MisuseIsANamedError) {
  BlockPool pool(2, 2);
  std::vector<BlockId> ids;
  EXPECT_THROW(pool.allocate(3, ids), Error);
  EXPECT_TRUE(ids.empty());
  EXPECT_THROW(pool.release(0), Error);  // not held
  EXPECT_THROW(pool.cache(0, 1, kRootBlockHash, std::vector<int32_t>{1, 2}), Error);  // not held
  pool.allocate(1, ids);
  EXPECT_THROW(pool.cache(0, 1, kRootBlockHash, std::vector<int32_t>{1}), Error);  // not full
  EXPECT_THROW(pool.ref_count(2), Error);
  EXPECT_THROW(BlockPool(0, 16), Error);
  EXPECT_THROW(BlockPool(4, 0), Error);
}

}  // namespace
}  // namespace roofline::serving
