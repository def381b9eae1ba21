#include "roofline/engine/serving/scheduler.h"

#include <algorithm>
#include <iterator>

#include "roofline/core/error.h"

namespace roofline::serving {

void SchedulerConfig::validate() const {
  ROOFLINE_CHECK(max_num_seqs > 0, "SchedulerConfig: max_num_seqs is {}; it must be > 0", max_num_seqs);
  ROOFLINE_CHECK(max_num_batched_tokens > 0, "SchedulerConfig: max_num_batched_tokens is {}; it must be > 0",
                 max_num_batched_tokens);
}

Scheduler::Scheduler(const SchedulerConfig& config, const KvCacheConfig& kv_config)
    : config_((config.validate(), config)), kv_(kv_config) {}

Scheduler::QueueKey Scheduler::key_of(const RequestState& r) const {
  const int priority = config_.policy == SchedulingPolicy::kPriority ? r.request.priority : 0;
  return {priority, r.arrival, r.request.id};
}

const Scheduler::RequestState* Scheduler::find(RequestId request) const {
  const auto it = requests_.find(request);
  return it == requests_.end() ? nullptr : &it->second;
}

Scheduler::RequestState* Scheduler::find(RequestId request) {
  const auto it = requests_.find(request);
  return it == requests_.end() ? nullptr : &it->second;
}

void Scheduler::add_request(Request request) {
  const RequestId id = request.id;
  ROOFLINE_CHECK(!requests_.contains(id), "add_request: request {} is already waiting or running", id);
  ROOFLINE_CHECK(!request.prompt_token_ids.empty(), "add_request: request {} has an empty prompt", id);
  ROOFLINE_CHECK(request.max_tokens >= 1, "add_request: request {} has max_tokens {}; it must be >= 1", id,
                 request.max_tokens);
  // The last sampled token never runs, so a request holds KV for at most prompt + max_tokens - 1 tokens;
  // a preempted one recomputes all of them.
  const int64_t max_kv_tokens = int64_t(request.prompt_token_ids.size()) + request.max_tokens - 1;
  ROOFLINE_CHECK(max_blocks(request) <= kv_.num_blocks(),
                 "add_request: request {} may need {} KV blocks ({} tokens) but the pool has {}; lower "
                 "max_tokens or give the KV cache more memory", id, max_blocks(request), max_kv_tokens,
                 kv_.num_blocks());
  ROOFLINE_CHECK(config_.enable_chunked_prefill || max_kv_tokens <= config_.max_num_batched_tokens,
                 "add_request: request {} may need {} tokens in one step but max_num_batched_tokens is {}; "
                 "enable chunked prefill or raise the budget", id, max_kv_tokens, config_.max_num_batched_tokens);
  RequestState state;
  state.token_ids = request.prompt_token_ids;
  state.request = std::move(request);
  state.arrival = next_arrival_++;
  waiting_.insert(key_of(state));
  requests_.emplace(id, std::move(state));
}

int Scheduler::max_blocks(const Request& request) const {
  const int64_t max_kv_tokens = int64_t(request.prompt_token_ids.size()) + request.max_tokens - 1;
  return int((max_kv_tokens + kv_.block_size() - 1) / kv_.block_size());
}

SchedulerOutput Scheduler::schedule() {
  SchedulerOutput out;
  int budget = config_.max_num_batched_tokens;
  if (config_.batching == Batching::kStatic && static_batch_.empty()) form_static_batch();
  schedule_running(out, budget);
  // A step that had to preempt is short of blocks: admitting more would only preempt again.
  if (out.preempted.empty()) admit_waiting(out, budget);
  out.total_num_tokens = config_.max_num_batched_tokens - budget;
  return out;
}

void Scheduler::schedule_running(SchedulerOutput& out, int& budget) {
  auto it = running_.begin();
  while (it != running_.end() && budget > 0) {
    RequestState& r = requests_.at(it->id);
    int num_new = r.num_tokens() - r.num_computed_tokens;  // the prompt's rest, or 1 to decode
    if (num_new <= 0 || (!config_.enable_chunked_prefill && num_new > budget)) {
      ++it;
      continue;
    }
    num_new = std::min(num_new, budget);
    std::optional<KvBlocks> blocks;
    bool preempted_itself = false;
    while (!(blocks = kv_.allocate_slots(r.request.id, r.num_computed_tokens, num_new))) {
      // The back is never a request already scheduled this step: those are all in front of `it`.
      RequestState& victim = requests_.at(std::prev(running_.end())->id);
      preempted_itself = &victim == &r;
      preempt(victim, out);
      if (preempted_itself) break;
    }
    if (preempted_itself) break;  // it was the back, so nothing is left behind it
    out.scheduled.push_back({.request_id = r.request.id,
                             .num_tokens = num_new,
                             .num_computed_tokens = r.num_computed_tokens,
                             .starts_table = false,
                             .new_blocks = std::move(*blocks),
                             .samples_token = r.num_computed_tokens + num_new == r.num_tokens()});
    r.num_computed_tokens += num_new;
    budget -= num_new;
    ++it;
  }
}

// The queue's front, in order, while the batch has room for each one's whole KV.
void Scheduler::form_static_batch() {
  for (const QueueKey& k : waiting_) {
    const int blocks = max_blocks(requests_.at(k.id).request);
    if (int(static_batch_.size()) >= config_.max_num_seqs || reserved_blocks_ + blocks > kv_.num_blocks()) break;
    static_batch_.emplace(k.id, blocks);
    reserved_blocks_ += blocks;
  }
}

void Scheduler::leave_static_batch(RequestId request) {
  const auto it = static_batch_.find(request);
  if (it == static_batch_.end()) return;
  reserved_blocks_ -= it->second;
  static_batch_.erase(it);
}

void Scheduler::admit_waiting(SchedulerOutput& out, int& budget) {
  const bool static_batch = config_.batching == Batching::kStatic;
  auto next = waiting_.begin();
  while (next != waiting_.end() && budget > 0 && int(running_.size()) < config_.max_num_seqs) {
    if (static_batch && !static_batch_.contains(next->id)) {  // waits for the next batch
      ++next;
      continue;
    }
    RequestState& r = requests_.at(next->id);
    PrefixHit prefix = kv_.get_computed_blocks(r.token_ids);
    int num_new = r.num_tokens() - prefix.num_tokens;
    if (!config_.enable_chunked_prefill && num_new > budget) break;
    num_new = std::min(num_new, budget);
    std::optional<KvBlocks> blocks = kv_.allocate_slots(r.request.id, prefix.num_tokens, num_new, prefix);
    if (!blocks) break;
    next = waiting_.erase(next);
    r.status = RequestStatus::kRunning;
    r.num_computed_tokens = prefix.num_tokens;
    running_.insert(key_of(r));
    const auto table = kv_.block_table(r.request.id);
    out.scheduled.push_back({.request_id = r.request.id,
                             .num_tokens = num_new,
                             .num_computed_tokens = r.num_computed_tokens,
                             .starts_table = true,
                             .new_blocks = {std::vector<BlockId>(table.begin(), table.end())},
                             .samples_token = r.num_computed_tokens + num_new == r.num_tokens()});
    r.num_computed_tokens += num_new;
    budget -= num_new;
  }
}

void Scheduler::preempt(RequestState& r, SchedulerOutput& out) {
  running_.erase(key_of(r));
  kv_.free(r.request.id);
  r.num_computed_tokens = 0;  // recompute: prompt and outputs run again (prefix-cache hits shorten it)
  r.status = RequestStatus::kWaiting;
  waiting_.insert(key_of(r));
  out.preempted.push_back(r.request.id);
  ++num_preemptions_;
}

std::vector<FinishedRequest> Scheduler::update_from_output(const SchedulerOutput& output,
                                                           std::span<const SampledToken> sampled) {
  // Check everything before changing anything.
  std::vector<RequestId> receivers;
  for (const SampledToken& t : sampled) {
    const RequestState* r = find(t.request_id);
    if (!r) continue;  // aborted during the step
    ROOFLINE_CHECK(r->status == RequestStatus::kRunning && r->num_computed_tokens == r->num_tokens(),
                   "update_from_output: request {} got a sampled token but did not reach its last token this "
                   "step ({} of {} tokens computed)", t.request_id, r->num_computed_tokens, r->num_tokens());
    receivers.push_back(t.request_id);
  }
  std::ranges::sort(receivers);
  const auto doubled = std::ranges::adjacent_find(receivers);
  ROOFLINE_CHECK(doubled == receivers.end(), "update_from_output: request {} got two sampled tokens", *doubled);
  size_t expected = 0;
  for (const ScheduledRequest& s : output.scheduled) {
    const RequestState* r = find(s.request_id);
    if (r && r->status == RequestStatus::kRunning && r->num_computed_tokens == r->num_tokens()) {
      ++expected;
      ROOFLINE_CHECK(std::ranges::binary_search(receivers, s.request_id),
                     "update_from_output: request {} ran its last token but got no sampled token", s.request_id);
    }
  }
  ROOFLINE_CHECK(expected == receivers.size(), "update_from_output: {} sampled tokens for {} requests that "
                 "ran their last token this step", receivers.size(), expected);

  // The step's KV is written: its full blocks may now serve other requests.
  for (const ScheduledRequest& s : output.scheduled) {
    if (const RequestState* r = find(s.request_id); r && r->status == RequestStatus::kRunning) {
      kv_.cache_full_blocks(s.request_id, r->token_ids, r->num_computed_tokens);
    }
  }
  std::vector<FinishedRequest> finished;
  for (const SampledToken& t : sampled) {
    RequestState* r = find(t.request_id);
    if (!r) continue;
    r->token_ids.push_back(t.token_id);
    if (t.stop) finish(*r, FinishReason::kStop, finished);
    else if (r->num_output_tokens() >= r->request.max_tokens) finish(*r, FinishReason::kLength, finished);
  }
  return finished;
}

void Scheduler::finish(RequestState& r, FinishReason reason, std::vector<FinishedRequest>& finished) {
  const RequestId id = r.request.id;
  running_.erase(key_of(r));
  kv_.free(id);
  leave_static_batch(id);
  const auto outputs_begin = r.token_ids.begin() + ptrdiff_t(r.request.prompt_token_ids.size());
  finished.push_back({.request_id = id,
                      .reason = reason,
                      .output_token_ids = std::vector<int32_t>(outputs_begin, r.token_ids.end())});
  requests_.erase(id);  // r dangles from here
}

bool Scheduler::abort(RequestId request) {
  RequestState* r = find(request);
  if (!r) return false;
  (r->status == RequestStatus::kRunning ? running_ : waiting_).erase(key_of(*r));
  kv_.free(request);
  leave_static_batch(request);
  requests_.erase(request);
  return true;
}

KvOccupancy Scheduler::kv_occupancy() const {
  const int64_t bs = kv_.block_size();
  KvOccupancy o;
  o.held_slots = int64_t(kv_.num_used_blocks()) * bs;
  int64_t allocated_to_batch = 0;
  for (const QueueKey& k : running_) {
    const RequestState& r = requests_.at(k.id);
    const int64_t blocks = int64_t(kv_.block_table(k.id).size());
    o.wasted_slots += blocks * bs - r.num_computed_tokens;  // the last block's unfilled tail
    if (static_batch_.contains(k.id)) allocated_to_batch += blocks;
  }
  const int64_t unallocated = std::max<int64_t>(reserved_blocks_ - allocated_to_batch, 0) * bs;
  o.held_slots += unallocated;
  o.wasted_slots += unallocated;
  return o;
}

RequestStatus Scheduler::status(RequestId request) const {
  const RequestState* r = find(request);
  return r ? r->status : RequestStatus::kUnknown;
}

std::span<const int32_t> Scheduler::token_ids(RequestId request) const {
  const RequestState* r = find(request);
  return r ? std::span<const int32_t>(r->token_ids) : std::span<const int32_t>();
}

int Scheduler::num_computed_tokens(RequestId request) const {
  const RequestState* r = find(request);
  return r ? r->num_computed_tokens : 0;
}

std::vector<RequestId> Scheduler::running_ids() const {
  std::vector<RequestId> ids;
  for (const QueueKey& k : running_) ids.push_back(k.id);
  return ids;
}

std::vector<RequestId> Scheduler::waiting_ids() const {
  std::vector<RequestId> ids;
  for (const QueueKey& k : waiting_) ids.push_back(k.id);
  return ids;
}

}  // namespace roofline::serving
