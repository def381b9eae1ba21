#include "roofline/engine/serving/block_pool.h"

#include <algorithm>
#include <bit>

#include "roofline/core/error.h"

namespace roofline::serving {

namespace {
// xxHash64 primes.
constexpr uint64_t kPrime1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t kPrime2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t kPrime3 = 0x165667B19E3779F9ULL;
constexpr uint64_t kPrime4 = 0x85EBCA77C2B2AE63ULL;
constexpr uint64_t kPrime5 = 0x27D4EB2F165667C5ULL;
}  // namespace

BlockHash hash_block_tokens(BlockHash parent, std::span<const int32_t> tokens) {
  uint64_t h = parent + kPrime5 + uint64_t(tokens.size()) * sizeof(int32_t);
  for (int32_t token : tokens) {
    h ^= uint64_t(uint32_t(token)) * kPrime1;
    h = std::rotl(h, 23) * kPrime2 + kPrime3;
  }
  h ^= h >> 33;
  h *= kPrime2;
  h ^= h >> 29;
  h *= kPrime3;
  h ^= h >> 32;
  return h ^ kPrime4;
}

BlockPool::BlockPool(int num_blocks, int block_size) : block_size_(block_size) {
  ROOFLINE_CHECK(num_blocks > 0, "BlockPool: num_blocks is {}; it must be > 0", num_blocks);
  ROOFLINE_CHECK(block_size > 0, "BlockPool: block_size is {}; it must be > 0", block_size);
  const size_t n = size_t(num_blocks);
  ref_count_.assign(n, 0);
  place_.assign(n, Place::kInUse);
  prev_.assign(n, kNoBlock);
  next_.assign(n, kNoBlock);
  cached_.assign(n, 0);
  hash_.assign(n, 0);
  parent_hash_.assign(n, 0);
  tokens_.assign(n * size_t(block_size), 0);
  for (BlockId id = 0; id < num_blocks; ++id) push_back(Place::kClean, id);
}

void BlockPool::check_id(BlockId id) const {
  ROOFLINE_CHECK(id >= 0 && id < num_blocks(), "BlockPool: block id {} out of range [0, {})", id, num_blocks());
}

int BlockPool::ref_count(BlockId id) const {
  check_id(id);
  return ref_count_[size_t(id)];
}

bool BlockPool::is_cached(BlockId id) const {
  check_id(id);
  return cached_[size_t(id)] != 0;
}

BlockHash BlockPool::block_hash(BlockId id) const {
  ROOFLINE_CHECK(is_cached(id), "BlockPool: block {} is not in the prefix cache, so it has no hash", id);
  return hash_[size_t(id)];
}

void BlockPool::push_back(Place place, BlockId id) {
  Queue& q = queue_of(place);
  place_[size_t(id)] = place;
  prev_[size_t(id)] = q.tail;
  next_[size_t(id)] = kNoBlock;
  if (q.tail != kNoBlock) next_[size_t(q.tail)] = id;
  else q.head = id;
  q.tail = id;
  ++q.size;
}

void BlockPool::unlink(BlockId id) {
  Queue& q = queue_of(place_[size_t(id)]);
  const BlockId prev = prev_[size_t(id)], next = next_[size_t(id)];
  if (prev != kNoBlock) next_[size_t(prev)] = next;
  else q.head = next;
  if (next != kNoBlock) prev_[size_t(next)] = prev;
  else q.tail = prev;
  prev_[size_t(id)] = next_[size_t(id)] = kNoBlock;
  place_[size_t(id)] = Place::kInUse;
  --q.size;
}

BlockId BlockPool::pop_front(Place place) {
  const BlockId id = queue_of(place).head;
  unlink(id);
  return id;
}

void BlockPool::allocate(int n, std::vector<BlockId>& out) {
  ROOFLINE_CHECK(n >= 0 && n <= num_free_blocks(), "BlockPool: asked for {} blocks but {} are free", n,
                 num_free_blocks());
  for (int i = 0; i < n; ++i) {
    BlockId id;
    if (clean_.size > 0) {
      id = pop_front(Place::kClean);
    } else {
      id = pop_front(Place::kEvictable);
      cache_.erase(hash_[size_t(id)]);
      cached_[size_t(id)] = 0;
      ++num_evictions_;
    }
    ref_count_[size_t(id)] = 1;
    out.push_back(id);
  }
}

void BlockPool::touch(BlockId id) {
  check_id(id);
  if (ref_count_[size_t(id)] == 0) unlink(id);
  ++ref_count_[size_t(id)];
}

void BlockPool::release(BlockId id) {
  check_id(id);
  ROOFLINE_CHECK(ref_count_[size_t(id)] > 0, "BlockPool: block {} released but nothing holds it", id);
  if (--ref_count_[size_t(id)] == 0) push_back(cached_[size_t(id)] ? Place::kEvictable : Place::kClean, id);
}

BlockId BlockPool::find_cached(BlockHash hash, BlockHash parent, std::span<const int32_t> tokens) const {
  const auto it = cache_.find(hash);
  if (it == cache_.end() || tokens.size() != size_t(block_size_)) return kNoBlock;
  const size_t id = size_t(it->second);
  const auto stored = std::span(tokens_).subspan(id * size_t(block_size_), size_t(block_size_));
  if (parent_hash_[id] != parent || !std::ranges::equal(stored, tokens)) return kNoBlock;
  return it->second;
}

bool BlockPool::cache(BlockId id, BlockHash hash, BlockHash parent, std::span<const int32_t> tokens) {
  check_id(id);
  ROOFLINE_CHECK(ref_count_[size_t(id)] > 0, "BlockPool: block {} must be held to enter the prefix cache", id);
  ROOFLINE_CHECK(tokens.size() == size_t(block_size_), "BlockPool: only full blocks are cached ({} of {} tokens)",
                 tokens.size(), block_size_);
  if (cached_[size_t(id)]) return hash_[size_t(id)] == hash;
  if (!cache_.try_emplace(hash, id).second) return false;
  cached_[size_t(id)] = 1;
  hash_[size_t(id)] = hash;
  parent_hash_[size_t(id)] = parent;
  std::ranges::copy(tokens, tokens_.begin() + ptrdiff_t(size_t(id) * size_t(block_size_)));
  return true;
}

std::vector<BlockId> BlockPool::queue_ids(const Queue& q) const {
  std::vector<BlockId> ids;
  for (BlockId id = q.head; id != kNoBlock; id = next_[size_t(id)]) ids.push_back(id);
  return ids;
}

std::vector<BlockId> BlockPool::clean_queue() const { return queue_ids(clean_); }
std::vector<BlockId> BlockPool::evictable_queue() const { return queue_ids(evictable_); }

void BlockPool::check_consistency() const {
  std::vector<int> times_queued(size_t(num_blocks()), 0);
  for (Place place : {Place::kClean, Place::kEvictable}) {
    const Queue& q = place == Place::kClean ? clean_ : evictable_;
    const auto ids = queue_ids(q);
    ROOFLINE_CHECK(int(ids.size()) == q.size, "BlockPool: a queue links {} blocks but counts {}", ids.size(), q.size);
    for (BlockId id : ids) {
      ++times_queued[size_t(id)];
      ROOFLINE_CHECK(place_[size_t(id)] == place, "BlockPool: block {} is linked into the wrong queue", id);
      ROOFLINE_CHECK(ref_count_[size_t(id)] == 0, "BlockPool: block {} is free but has ref_count {}", id,
                     ref_count_[size_t(id)]);
      ROOFLINE_CHECK(bool(cached_[size_t(id)]) == (place == Place::kEvictable),
                     "BlockPool: free block {} is {}cached but sits in the {} queue", id,
                     cached_[size_t(id)] ? "" : "not ", place == Place::kClean ? "clean" : "evictable");
    }
  }
  for (BlockId id = 0; id < num_blocks(); ++id) {
    const size_t i = size_t(id);
    ROOFLINE_CHECK(ref_count_[i] >= 0, "BlockPool: block {} has ref_count {}", id, ref_count_[i]);
    ROOFLINE_CHECK((ref_count_[i] == 0) == (times_queued[i] == 1) && times_queued[i] <= 1,
                   "BlockPool: block {} (ref_count {}) is in {} free queues; it must be free xor referenced", id,
                   ref_count_[i], times_queued[i]);
    if (cached_[i]) {
      const auto it = cache_.find(hash_[i]);
      ROOFLINE_CHECK(it != cache_.end() && it->second == id, "BlockPool: cached block {} is not in the map", id);
    }
  }
  const auto num_cached = std::ranges::count(cached_, uint8_t(1));
  ROOFLINE_CHECK(num_cached == ptrdiff_t(cache_.size()), "BlockPool: {} blocks flagged cached, {} in the map",
                 num_cached, cache_.size());
}

}  // namespace roofline::serving
