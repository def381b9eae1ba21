// Iteration-level continuous batching, vLLM v1's shape. One engine step is
//   schedule() -> execute_model(output) -> update_from_output(output, sampled)
// and between steps requests join (add_request) and leave (finish, abort). The scheduler decides only how
// many tokens of which request run this step; prefill, chunked prefill and decode are the same to it.
//
// Each step, under a token budget (max_num_batched_tokens):
//  1. running requests, in queue order, get their remaining tokens (a prompt chunk, or 1 to decode). When
//     one cannot get a block, the back of the running queue (lowest priority, latest arrival) is preempted
//     in recompute mode: its blocks are freed, its computed tokens reset to 0, it waits at the front of the
//     waiting queue (by its key), keeping its outputs. A request may have to preempt itself.
//  2. waiting requests are admitted in queue order while budget, max_num_seqs and free blocks allow; a
//     prefix-cache hit skips the tokens it covers. Admission stops at the first request that does not fit
//     (no overtaking) and is skipped in a step that preempted.
// Queues are ordered by (priority, arrival) under kPriority and by arrival under kFcfs.
// Batching::kStatic is the baseline continuous batching is measured against (a static batch, as
// transformers' batched generate runs one): when nothing runs, the front of the queue forms a batch of at
// most max_num_seqs requests whose whole KV (prompt + max_tokens) is reserved up front; no other request
// starts until every member has finished. Members that finish early leave their reservation idle.
// No request is lost: each ends finished (stop or length) or aborted; add_request rejects one that could
// never fit in the pool (or, without chunked prefill, in one step).
// Not thread-safe: the engine loop calls everything, applying client aborts between steps.
#pragma once
#include <compare>
#include <cstdint>
#include <set>
#include <span>
#include <unordered_map>
#include <vector>

#include "roofline/engine/serving/kv_cache_manager.h"
#include "roofline/engine/serving/request.h"
#include "roofline/engine/serving/scheduler_output.h"

namespace roofline::serving {

enum class SchedulingPolicy { kFcfs, kPriority };
enum class Batching { kContinuous, kStatic };

struct SchedulerConfig {
  int max_num_seqs = 256;              // running requests at most
  int max_num_batched_tokens = 2048;   // tokens per step, all requests together
  bool enable_chunked_prefill = true;  // false: a prompt runs whole in one step or waits
  SchedulingPolicy policy = SchedulingPolicy::kFcfs;
  Batching batching = Batching::kContinuous;

  // Throws roofline::Error naming the field and its valid range.
  void validate() const;
};

enum class RequestStatus { kWaiting, kRunning, kUnknown };  // kUnknown: never added, finished or aborted

// KV slots held against slots holding a token. Paged allocation wastes only the unfilled tail of each
// request's last block; a static batch also wastes what it reserved and has not filled yet.
struct KvOccupancy {
  int64_t held_slots = 0;    // slots of the blocks in use plus reserved, unallocated slots
  int64_t wasted_slots = 0;  // of those, slots no token fills
  double waste_ratio() const { return held_slots > 0 ? double(wasted_slots) / double(held_slots) : 0.0; }
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& config, const KvCacheConfig& kv_config);

  // Queues a request. Throws roofline::Error on a duplicate id, an empty prompt, max_tokens < 1, or a
  // request that could never be scheduled (more KV blocks than the pool has; without chunked prefill,
  // more tokens than one step's budget).
  void add_request(Request request);

  SchedulerOutput schedule();

  // Publishes the blocks this step filled into the prefix cache, appends each sampled token and finishes
  // requests on stop or max_tokens (freeing their blocks). `sampled` holds exactly one token for each
  // scheduled request with samples_token that is still running; tokens for aborted requests are ignored.
  // Throws roofline::Error, changing nothing, when a token is missing, doubled or unexpected.
  std::vector<FinishedRequest> update_from_output(const SchedulerOutput& output,
                                                  std::span<const SampledToken> sampled);

  // Client disconnect: drops a waiting or running request and frees its blocks now. False if unknown.
  bool abort(RequestId request);

  int num_running() const { return int(running_.size()); }
  int num_waiting() const { return int(waiting_.size()); }
  int64_t num_preemptions() const { return num_preemptions_; }
  bool has_unfinished_requests() const { return !requests_.empty(); }

  RequestStatus status(RequestId request) const;
  std::span<const int32_t> token_ids(RequestId request) const;  // prompt then outputs; empty if unknown
  int num_computed_tokens(RequestId request) const;              // 0 if unknown
  std::span<const BlockId> block_table(RequestId request) const { return kv_.block_table(request); }
  std::vector<RequestId> running_ids() const;  // queue order
  std::vector<RequestId> waiting_ids() const;  // queue order
  const KvCacheManager& kv_cache() const { return kv_; }
  KvOccupancy kv_occupancy() const;
  const SchedulerConfig& config() const { return config_; }

 private:
  struct RequestState {
    Request request;
    std::vector<int32_t> token_ids;  // prompt then outputs
    uint64_t arrival = 0;            // add_request order
    int num_computed_tokens = 0;     // positions whose KV is (or this step will be) in the blocks
    RequestStatus status = RequestStatus::kWaiting;

    int num_tokens() const { return int(token_ids.size()); }
    int num_output_tokens() const { return num_tokens() - int(request.prompt_token_ids.size()); }
  };
  struct QueueKey {
    int priority;
    uint64_t arrival;
    RequestId id;
    auto operator<=>(const QueueKey&) const = default;
  };

  QueueKey key_of(const RequestState& r) const;
  const RequestState* find(RequestId request) const;
  RequestState* find(RequestId request);
  void schedule_running(SchedulerOutput& out, int& budget);
  void admit_waiting(SchedulerOutput& out, int& budget);
  void preempt(RequestState& r, SchedulerOutput& out);
  void finish(RequestState& r, FinishReason reason, std::vector<FinishedRequest>& finished);
  int max_blocks(const Request& request) const;  // its KV at most: prompt + max_tokens - 1 tokens
  void form_static_batch();
  void leave_static_batch(RequestId request);

  SchedulerConfig config_;
  KvCacheManager kv_;
  std::unordered_map<RequestId, RequestState> requests_;  // every waiting or running request
  std::set<QueueKey> waiting_, running_;                  // front: next to admit / last to preempt
  uint64_t next_arrival_ = 0;
  int64_t num_preemptions_ = 0;
  // kStatic: the members of the batch being run, and the blocks reserved for them.
  std::unordered_map<RequestId, int> static_batch_;  // member -> its reserved blocks
  int64_t reserved_blocks_ = 0;
};

}  // namespace roofline::serving
