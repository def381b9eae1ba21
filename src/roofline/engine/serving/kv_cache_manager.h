// The paged KV cache's bookkeeping: one block table per request over a shared BlockPool, and the prefix
// cache (full blocks keyed by a hash of their tokens and everything before them, shared between requests,
// reference counted, unused ones evicted LRU).
//
// The KV cache manager is the only thing that mutates blocks: it owns the pool; the scheduler asks it for
// slots and gets KvBlocks (ids) back; the executor reads block tables.
// Invariants:
//  - a block's ref_count equals the number of request tables holding it;
//  - a request's table holds ceil(tokens with KV slots / block_size) blocks, positions in order;
//  - a block enters the prefix cache only after the step that computed its last token finished
//    (cache_full_blocks, called from update_from_output), so a hit never reads KV still being written,
//    whatever order the executor runs sequences in; a partially filled block is never shared.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "roofline/engine/serving/block_pool.h"
#include "roofline/engine/serving/kv_blocks.h"

namespace roofline::serving {

struct KvCacheConfig {
  int num_blocks = 0;
  int block_size = 16;  // tokens per block
  bool enable_prefix_caching = true;

  // Throws roofline::Error naming the field and its valid range.
  void validate() const;
};

// Blocks that fit in `budget_bytes` of device memory set aside for KV (free memory after weights and
// activation arenas, times a safety fraction), for a model storing `kv_bytes_per_token` per token
// (2 * layers * kv_heads * head_dim * bytes per element).
int kv_blocks_for_memory(size_t budget_bytes, size_t kv_bytes_per_token, int block_size);

// What get_computed_blocks found: the cached full blocks holding the request's first num_tokens tokens.
struct PrefixHit {
  KvBlocks blocks;
  int num_tokens = 0;        // blocks.size() * block_size
  int num_query_tokens = 0;  // the request's tokens at lookup, for the hit ratio
};

// Counted once per admission (not per failed attempt), in tokens.
struct PrefixCacheStats {
  int64_t num_lookups = 0;
  int64_t query_tokens = 0;
  int64_t hit_tokens = 0;
  double hit_ratio() const { return query_tokens > 0 ? double(hit_tokens) / double(query_tokens) : 0.0; }
};

class KvCacheManager {
 public:
  explicit KvCacheManager(const KvCacheConfig& config);

  // The longest run of cached full blocks that starts the sequence `token_ids`. It never covers the last
  // token: at least one token must run to produce logits (a 32-token prompt with block_size 16 hits at
  // most 16 tokens). Takes no references; pass the result to allocate_slots before anything else runs.
  PrefixHit get_computed_blocks(std::span<const int32_t> token_ids) const;

  // Grows `request`'s table so it holds num_computed_tokens + num_new_tokens positions. A request without
  // a table may start it with `prefix` (then num_computed_tokens == prefix.num_tokens), which also counts
  // toward the hit ratio. Returns the newly allocated blocks, or nullopt with nothing changed when the
  // pool cannot supply them (never a partial allocation).
  std::optional<KvBlocks> allocate_slots(RequestId request, int num_computed_tokens, int num_new_tokens,
                                         const PrefixHit& prefix = {});

  // Enters the request's full blocks among its first num_computed_tokens tokens into the prefix cache
  // (token_ids: all its known tokens). Call once their KV is written.
  void cache_full_blocks(RequestId request, std::span<const int32_t> token_ids, int num_computed_tokens);

  // Drops the request's table, releasing the blocks last to first: cached ones become evictable, and a
  // sequence's tail is evicted before its head (the head is what other requests share).
  void free(RequestId request);

  std::span<const BlockId> block_table(RequestId request) const;  // empty when the request holds none
  int num_requests() const { return int(requests_.size()); }

  int block_size() const { return pool_.block_size(); }
  int num_blocks() const { return pool_.num_blocks(); }
  int num_free_blocks() const { return pool_.num_free_blocks(); }
  int num_used_blocks() const { return pool_.num_used_blocks(); }
  double usage() const { return double(num_used_blocks()) / double(num_blocks()); }  // in [0, 1]
  const PrefixCacheStats& prefix_cache_stats() const { return stats_; }
  const BlockPool& block_pool() const { return pool_; }

 private:
  struct RequestBlocks {
    std::vector<BlockId> table;
    std::vector<BlockHash> full_block_hashes;  // hashes of table[0 .. size) once computed; chains the next
  };

  bool prefix_caching_;
  BlockPool pool_;
  std::unordered_map<RequestId, RequestBlocks> requests_;
  PrefixCacheStats stats_;
};

}  // namespace roofline::serving
