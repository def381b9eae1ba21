#include "roofline/engine/serving/kv_cache_manager.h"

#include <algorithm>

#include "roofline/core/error.h"

namespace roofline::serving {

void KvCacheConfig::validate() const {
  ROOFLINE_CHECK(num_blocks > 0, "KvCacheConfig: num_blocks is {}; it must be > 0 (size it with "
                 "kv_blocks_for_memory)", num_blocks);
  ROOFLINE_CHECK(block_size > 0, "KvCacheConfig: block_size is {}; it must be > 0 (default 16)", block_size);
}

int kv_blocks_for_memory(size_t budget_bytes, size_t kv_bytes_per_token, int block_size) {
  ROOFLINE_CHECK(kv_bytes_per_token > 0 && block_size > 0,
                 "kv_blocks_for_memory: kv_bytes_per_token ({}) and block_size ({}) must be > 0",
                 kv_bytes_per_token, block_size);
  const size_t blocks = budget_bytes / (kv_bytes_per_token * size_t(block_size));
  return int(std::min<size_t>(blocks, size_t(INT32_MAX)));
}

KvCacheManager::KvCacheManager(const KvCacheConfig& config)
    : prefix_caching_(config.enable_prefix_caching),
      pool_((config.validate(), config.num_blocks), config.block_size) {}

PrefixHit KvCacheManager::get_computed_blocks(std::span<const int32_t> token_ids) const {
  PrefixHit hit;
  hit.num_query_tokens = int(token_ids.size());
  if (!prefix_caching_ || token_ids.empty()) return hit;
  const size_t block_size = size_t(pool_.block_size());
  const size_t max_blocks = (token_ids.size() - 1) / block_size;  // leave the last token to compute
  BlockHash parent = kRootBlockHash;
  for (size_t b = 0; b < max_blocks; ++b) {
    const auto tokens = token_ids.subspan(b * block_size, block_size);
    const BlockHash hash = hash_block_tokens(parent, tokens);
    const BlockId id = pool_.find_cached(hash, parent, tokens);
    if (id == kNoBlock) break;
    hit.blocks.ids.push_back(id);
    parent = hash;
  }
  hit.num_tokens = int(hit.blocks.size() * block_size);
  return hit;
}

std::optional<KvBlocks> KvCacheManager::allocate_slots(RequestId request, int num_computed_tokens,
                                                       int num_new_tokens, const PrefixHit& prefix) {
  ROOFLINE_CHECK(num_computed_tokens >= 0 && num_new_tokens >= 0,
                 "allocate_slots: request {} with {} computed and {} new tokens; both must be >= 0", request,
                 num_computed_tokens, num_new_tokens);
  const auto it = requests_.find(request);
  const size_t held = it == requests_.end() ? 0 : it->second.table.size();
  const size_t block_size = size_t(pool_.block_size());
  if (!prefix.blocks.empty()) {
    ROOFLINE_CHECK(held == 0 && num_computed_tokens == prefix.num_tokens,
                   "allocate_slots: a prefix hit starts a table (request {} holds {} blocks; {} computed tokens "
                   "vs {} hit)", request, held, num_computed_tokens, prefix.num_tokens);
  }
  const size_t have = held + prefix.blocks.size();
  ROOFLINE_CHECK(size_t(num_computed_tokens) <= have * block_size,
                 "allocate_slots: request {} has {} computed tokens but only {} blocks", request,
                 num_computed_tokens, have);
  const size_t required = (size_t(num_computed_tokens) + size_t(num_new_tokens) + block_size - 1) / block_size;
  const int num_needed = int(required > have ? required - have : 0);
  // Hits on unused cached blocks take them out of the free queues, so they cannot also be allocated.
  const auto hits_on_free = std::ranges::count_if(prefix.blocks.ids, [&](BlockId id) {
    return pool_.ref_count(id) == 0;
  });
  if (num_needed > pool_.num_free_blocks() - int(hits_on_free)) return std::nullopt;

  RequestBlocks& entry = requests_[request];
  if (held == 0 && prefix.num_query_tokens > 0) {
    ++stats_.num_lookups;
    stats_.query_tokens += prefix.num_query_tokens;
    stats_.hit_tokens += prefix.num_tokens;
  }
  for (BlockId id : prefix.blocks.ids) {
    pool_.touch(id);
    entry.table.push_back(id);
    entry.full_block_hashes.push_back(pool_.block_hash(id));
  }
  KvBlocks allocated;
  pool_.allocate(num_needed, allocated.ids);
  entry.table.insert(entry.table.end(), allocated.ids.begin(), allocated.ids.end());
  return allocated;
}

void KvCacheManager::cache_full_blocks(RequestId request, std::span<const int32_t> token_ids,
                                       int num_computed_tokens) {
  if (!prefix_caching_) return;
  const auto it = requests_.find(request);
  if (it == requests_.end()) return;
  RequestBlocks& entry = it->second;
  ROOFLINE_CHECK(num_computed_tokens >= 0 && size_t(num_computed_tokens) <= token_ids.size(),
                 "cache_full_blocks: request {} has {} computed tokens of {}", request, num_computed_tokens,
                 token_ids.size());
  const size_t block_size = size_t(pool_.block_size());
  const size_t num_full = std::min(size_t(num_computed_tokens) / block_size, entry.table.size());
  for (size_t b = entry.full_block_hashes.size(); b < num_full; ++b) {
    const BlockHash parent = b == 0 ? kRootBlockHash : entry.full_block_hashes[b - 1];
    const auto tokens = token_ids.subspan(b * block_size, block_size);
    const BlockHash hash = hash_block_tokens(parent, tokens);
    entry.full_block_hashes.push_back(hash);
    pool_.cache(entry.table[b], hash, parent, tokens);  // false: an equal block is cached already; keep that one
  }
}

void KvCacheManager::free(RequestId request) {
  const auto it = requests_.find(request);
  if (it == requests_.end()) return;
  for (auto id = it->second.table.rbegin(); id != it->second.table.rend(); ++id) pool_.release(*id);
  requests_.erase(it);
}

std::span<const BlockId> KvCacheManager::block_table(RequestId request) const {
  const auto it = requests_.find(request);
  if (it == requests_.end()) return {};
  return it->second.table;
}

}  // namespace roofline::serving
