// A fixed pool of KV-cache blocks (ids 0..N-1) with reference counts, two free queues and the prefix cache.
//
// Free blocks (ref_count 0) wait in one of two FIFO queues, so the order of ids is deterministic:
//   clean      blocks holding nothing worth keeping; allocation takes from its front first.
//   evictable  blocks still in the prefix cache; only when no clean block is left does allocation take the
//              front one (least recently released) and drop it from the cache: LRU eviction.
// A released block goes to the back of the queue its state picks. (vLLM v1 keeps one queue for both; two
// keep cached prefixes alive longer at the same cost.)
//
// Invariants (check_consistency() verifies all of them):
//  - every block is either referenced (ref_count > 0) or in exactly one free queue, never both;
//  - a block in the prefix cache is full and its KV computed; with ref_count 0 it is in `evictable`,
//    an uncached block with ref_count 0 is in `clean`;
//  - the cache maps each hash to at most one block, and that block records the same hash.
// Only KvCacheManager calls the mutating methods (it owns the pool); everyone else sees it const.
#pragma once
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "roofline/engine/serving/kv_blocks.h"

namespace roofline::serving {

// The parent hash of a sequence's first block.
inline constexpr BlockHash kRootBlockHash = 0x6a09e667f3bcc908ULL;

// Hash of a full block: its token ids and, through `parent` (the previous block's hash, or kRootBlockHash),
// every token before it. xxHash64's 4-byte step per token id, seeded by the parent, then its avalanche.
// 64 bits can collide; the pool therefore also stores each cached block's tokens and parent hash and a hit
// must match both. What is left is a collision between two different parent chains (~2^-64 per pair).
BlockHash hash_block_tokens(BlockHash parent, std::span<const int32_t> tokens);

class BlockPool {
 public:
  BlockPool(int num_blocks, int block_size);

  int num_blocks() const { return int(ref_count_.size()); }
  int block_size() const { return block_size_; }
  int num_free_blocks() const { return clean_.size + evictable_.size; }  // clean + evictable
  int num_used_blocks() const { return num_blocks() - num_free_blocks(); }  // ref_count > 0
  int num_cached_blocks() const { return int(cache_.size()); }
  int64_t num_evictions() const { return num_evictions_; }

  int ref_count(BlockId id) const;
  bool is_cached(BlockId id) const;
  BlockHash block_hash(BlockId id) const;  // valid only while is_cached(id)

  // Appends `n` blocks to `out`, each now at ref_count 1: clean blocks first, oldest released first, then
  // evictable ones in LRU order (leaving the prefix cache). Throws if n > num_free_blocks().
  void allocate(int n, std::vector<BlockId>& out);
  // One more holder; a free block leaves its queue (a prefix-cache hit on an unused block).
  void touch(BlockId id);
  // One holder fewer; at 0 the block goes to the back of `evictable` if cached, else of `clean`.
  void release(BlockId id);

  // The cached block for (hash, parent, tokens), or kNoBlock. A block stored under `hash` with other
  // tokens or another parent (a hash collision) is a miss.
  BlockId find_cached(BlockHash hash, BlockHash parent, std::span<const int32_t> tokens) const;
  // Enters a held, full block whose KV is computed into the prefix cache. False when another block already
  // holds `hash` (two requests computed the same block): this one stays uncached and is reused as clean.
  bool cache(BlockId id, BlockHash hash, BlockHash parent, std::span<const int32_t> tokens);

  // The free queues front to back (tests and debugging).
  std::vector<BlockId> clean_queue() const;
  std::vector<BlockId> evictable_queue() const;
  // Throws roofline::Error naming the first broken invariant.
  void check_consistency() const;

 private:
  enum class Place : uint8_t { kInUse, kClean, kEvictable };
  struct Queue {  // intrusive doubly linked list over prev_/next_: O(1) removal on a cache hit
    BlockId head = kNoBlock, tail = kNoBlock;
    int size = 0;
  };
  Queue& queue_of(Place place) { return place == Place::kClean ? clean_ : evictable_; }
  void push_back(Place place, BlockId id);
  void unlink(BlockId id);
  BlockId pop_front(Place place);
  std::vector<BlockId> queue_ids(const Queue& q) const;
  void check_id(BlockId id) const;

  int block_size_;
  std::vector<int32_t> ref_count_;
  std::vector<Place> place_;
  std::vector<BlockId> prev_, next_;
  std::vector<uint8_t> cached_;
  std::vector<BlockHash> hash_, parent_hash_;  // of cached blocks
  std::vector<int32_t> tokens_;                // [num_blocks, block_size]: cached blocks' tokens, to verify hits
  Queue clean_, evictable_;
  std::unordered_map<BlockHash, BlockId> cache_;
  int64_t num_evictions_ = 0;
};

}  // namespace roofline::serving
