#include "roofline/server/model_runner.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "roofline/core/error.h"

namespace roofline::server {
namespace {

class ContiguousKvRunner final : public ModelRunner {
 public:
  explicit ContiguousKvRunner(Decoder& decoder) : decoder_(decoder) {}

  int64_t vocab_size() const override { return decoder_.spec().vocab_size; }
  bool shares_kv_blocks() const override { return false; }

  void execute(std::span<const RunRequest> batch, std::vector<std::span<const float>>& logits) override {
    logits.assign(batch.size(), {});
    rows_.resize(batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
      const RunRequest& r = batch[i];
      ROOFLINE_CHECK(r.start + int64_t(r.tokens.size()) <= r.capacity,
                     "model runner: request {} runs past its KV capacity of {} positions", r.id, r.capacity);
      KvCache& cache = cache_for(r, r.start + int64_t(r.tokens.size()));
      // With no shared blocks the scheduler never reports KV this cache lacks (prefix caching is off).
      ROOFLINE_CHECK(cache.length == r.start,
                     "model runner: request {} starts at position {} but its cache holds {} positions", r.id, r.start,
                     cache.length);
      const Tensor& out = decoder_.forward(r.tokens, cache, /*all_logits=*/false);  // [1, V]
      if (!r.wants_logits) continue;
      // The decoder reuses its logits buffer on the next forward: keep this row.
      rows_[i].assign(out.ptr<float>(), out.ptr<float>() + vocab_size());
      logits[i] = rows_[i];
    }
  }

  void preempt(serving::RequestId id) override {
    // The scheduler took its blocks because KV memory ran short: give the cache's memory back as well.
    // It recomputes from position 0 into a new cache when it is admitted again.
    caches_.erase(id);
  }

  void release(serving::RequestId id) override { caches_.erase(id); }

 private:
  // The request's cache with room for `positions`. Caches grow by doubling (copying what is filled)
  // up to the request's capacity, so memory follows the tokens in flight, which the scheduler's block
  // budget bounds, rather than prompt + max_tokens for every request (a chat request's max_tokens
  // defaults to the whole context).
  KvCache& cache_for(const RunRequest& r, int64_t positions) {
    auto it = caches_.find(r.id);
    if (it == caches_.end()) {
      const int64_t initial = std::min<int64_t>(std::max(positions, kInitialPositions), r.capacity);
      it = caches_.emplace(r.id, decoder_.new_cache(initial)).first;
    }
    KvCache& cache = it->second;
    if (positions > cache.capacity) {
      KvCache grown = decoder_.new_cache(std::min<int64_t>(std::max(positions, 2 * cache.capacity), r.capacity));
      for (size_t l = 0; l < cache.k.size(); ++l) {  // k[l], v[l]: [capacity, Hkv, D] f32 in host memory
        const size_t filled = cache.k[l].nbytes() / size_t(cache.capacity) * size_t(cache.length);
        std::memcpy(grown.k[l].data(), cache.k[l].data(), filled);
        std::memcpy(grown.v[l].data(), cache.v[l].data(), filled);
      }
      grown.length = cache.length;
      cache = std::move(grown);
    }
    return cache;
  }

  static constexpr int64_t kInitialPositions = 64;
  Decoder& decoder_;
  std::unordered_map<serving::RequestId, KvCache> caches_;
  std::vector<std::vector<float>> rows_;  // [batch][V]: the logits handed out by the last execute
};

}  // namespace

std::unique_ptr<ModelRunner> make_contiguous_kv_runner(Decoder& decoder) {
  return std::make_unique<ContiguousKvRunner>(decoder);
}

}  // namespace roofline::server
