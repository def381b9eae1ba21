#include "roofline/server/engine.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "roofline/core/error.h"
#include "roofline/engine/stop_text_stream.h"

namespace roofline::server {

// One HTTP request: its stream and the settings its sequences share.
struct Engine::Group {
  std::shared_ptr<RequestStream> stream;
  GenerationRequest request;
  Clock::time_point arrival, deadline;
  bool has_deadline = false;
  bool first_token_seen = false;
  std::vector<serving::RequestId> live;  // sequences not yet finished
};

// One choice of a request: a scheduler request with its own sampler and text.
struct Engine::Sequence {
  Sequence(std::shared_ptr<Group> g, int i, const Tokenizer& tokenizer, SamplingParams p)
      : group(std::move(g)),
        index(i),
        params(p),
        // Penalties need the token history and logprobs the full row: those stay on the host.
        device_sampling(!p.uses_history() && group->request.logprobs < 0),
        sampler(p),
        text(tokenizer, group->request.stop) {}
  std::shared_ptr<Group> group;
  int index;
  SamplingParams params;
  bool device_sampling;
  Sampler sampler;
  StopTextStream text;
  int num_outputs = 0;
  Clock::time_point first_token;
};

namespace {
double seconds_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

serving::KvCacheConfig effective_kv_config(serving::KvCacheConfig kv, const ModelRunner& runner) {
  kv.enable_prefix_caching = kv.enable_prefix_caching && runner.shares_kv_blocks();
  return kv;
}

// log-softmax of the sampled token and the k most likely ones, from raw logits.
TokenLogprob logprobs_of(std::span<const float> logits, int32_t token, int k, std::vector<int32_t>& order) {
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(double(l) - max_logit);
  const double log_z = max_logit + std::log(sum);
  TokenLogprob lp{.id = token, .logprob = float(double(logits[size_t(token)]) - log_z), .top = {}};
  const size_t top = std::min(size_t(k), logits.size());
  if (top == 0) return lp;
  order.resize(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + long(top), order.end(), [&](int32_t a, int32_t b) {
    return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b);
  });
  for (size_t i = 0; i < top; ++i) lp.top.push_back({order[i], float(double(logits[size_t(order[i])]) - log_z)});
  return lp;
}
}  // namespace

Engine::Engine(ModelRunner& runner, const Tokenizer& tokenizer, EngineConfig config, Metrics& metrics)
    : runner_(runner),
      tokenizer_(tokenizer),
      config_(std::move(config)),
      metrics_(metrics),
      scheduler_(config_.scheduler, effective_kv_config(config_.kv, runner)) {
  ROOFLINE_CHECK(config_.max_queue >= 0, "engine: max_queue is {}; it must be >= 0", config_.max_queue);
  publish_gauges();
}

Engine::~Engine() { stop(); }

void Engine::start() {
  ROOFLINE_CHECK(!thread_.joinable(), "engine: already started");
  thread_ = std::thread([this] { loop(); });
}

std::shared_ptr<RequestStream> Engine::submit(GenerationRequest request) {
  using Kind = SubmitError::Kind;
  const int64_t prompt = int64_t(request.prompt.size());
  if (prompt == 0) throw SubmitError(Kind::kInvalid, "the prompt is empty");
  if (request.max_tokens < 1) throw SubmitError(Kind::kInvalid, "max_tokens must be >= 1");
  if (request.n < 1) throw SubmitError(Kind::kInvalid, "n must be >= 1");
  for (const std::string& s : request.stop)
    if (s.empty()) throw SubmitError(Kind::kInvalid, "a stop string is empty");
  try {
    request.sampling.validate();
  } catch (const Error& e) {
    throw SubmitError(Kind::kInvalid, e.what());
  }
  if (config_.context_length > 0 && prompt + request.max_tokens > config_.context_length)
    throw SubmitError(Kind::kTooLarge, fmt::format("the prompt ({} tokens) plus max_tokens ({}) exceeds the model's "
                                                   "context of {} tokens",
                                                   prompt, request.max_tokens, config_.context_length));
  // The same bound Scheduler::add_request enforces, checked here so that the client hears it.
  const int64_t kv_tokens = prompt + request.max_tokens - 1;
  const int64_t blocks = (kv_tokens + config_.kv.block_size - 1) / config_.kv.block_size;
  if (blocks > config_.kv.num_blocks)
    throw SubmitError(Kind::kTooLarge, fmt::format("the request may need {} KV blocks ({} tokens) but the KV cache "
                                                   "has {}; lower max_tokens or give the server more --kv-memory",
                                                   blocks, kv_tokens, config_.kv.num_blocks));
  auto group = std::make_shared<Group>();
  group->arrival = Clock::now();
  group->has_deadline = request.timeout.count() > 0;
  group->deadline = group->arrival + request.timeout;
  const int n = request.n;
  {
    std::lock_guard lock(mutex_);
    if (draining_ || stopping_) throw SubmitError(Kind::kDraining, "the server is shutting down");
    if (int64_t(inbox_sequences_) + waiting_sequences_ + n > config_.max_queue)
      throw SubmitError(Kind::kQueueFull,
                        fmt::format("the waiting queue is full ({} sequences); retry later", config_.max_queue));
    group->stream = std::make_shared<RequestStream>(next_stream_id_++, n, int(prompt));
    group->request = std::move(request);
    inbox_.push_back(group);
    inbox_sequences_ += n;
    live_requests_++;
  }
  wake_.notify_one();
  return group->stream;
}

void Engine::cancel(uint64_t stream_id) {
  {
    std::lock_guard lock(mutex_);
    cancels_.push_back(stream_id);
  }
  wake_.notify_one();
}

void Engine::drain() {
  std::lock_guard lock(mutex_);
  draining_ = true;
}

bool Engine::idle() const {
  std::lock_guard lock(mutex_);
  return live_requests_ == 0;
}

// The stream closes on the dispatcher thread, after the events posted before; live_requests_ drops there.
void Engine::end_request(Group& group, StreamEnd end, const std::string& message) {
  deliveries_.push_back({.stream = group.stream, .events = {}, .end = end, .message = message});
}

void Engine::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = draining_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable())
    thread_.join();
  else
    loop();  // never started: one pass on this thread ends whatever was submitted
  dispatcher_.flush();  // every stream has ended when stop() returns
}

EngineGauges Engine::gauges() const {
  std::lock_guard lock(mutex_);
  return gauges_;
}

void Engine::publish_gauges() {
  const serving::KvCacheManager& kv = scheduler_.kv_cache();
  const serving::KvOccupancy occupancy = scheduler_.kv_occupancy();
  std::lock_guard lock(mutex_);
  gauges_ = {.running = scheduler_.num_running(),
             .waiting = scheduler_.num_waiting(),
             .kv_blocks_used = kv.num_used_blocks(),
             .kv_blocks_total = kv.num_blocks(),
             .kv_slots_held = occupancy.held_slots,
             .kv_slots_wasted = occupancy.wasted_slots,
             .prefix_cache_hit_ratio = kv.prefix_cache_stats().hit_ratio(),
             .preemptions = scheduler_.num_preemptions(),
             .steps = phase_time_.steps,
             .schedule_s = phase_time_.schedule_s,
             .model_s = phase_time_.model_s,
             .output_s = phase_time_.output_s,
             .prefill_steps = phase_time_.prefill_steps,
             .prefill_model_s = phase_time_.prefill_model_s};
  waiting_sequences_ = scheduler_.num_waiting();
}

void Engine::loop() {
  for (;;) {
    std::vector<std::shared_ptr<Group>> arrived;
    std::vector<uint64_t> cancelled;
    bool stopping = false;
    {
      std::unique_lock lock(mutex_);
      // Sleep only when there is nothing to run; the deadline of a queued request is checked each step.
      wake_.wait(lock, [&] { return stopping_ || !inbox_.empty() || !cancels_.empty() || !groups_.empty(); });
      arrived.swap(inbox_);
      cancelled.swap(cancels_);
      waiting_sequences_ += inbox_sequences_;  // they wait in the scheduler now, until the next publish
      inbox_sequences_ = 0;
      stopping = stopping_;
    }
    for (const auto& group : arrived) {
      try {
        admit(group);
      } catch (const std::exception& e) {  // submit() checked what add_request checks; this is a bug
        apply_cancel(group->stream->id(), StreamEnd::kFailed, e.what());
      }
    }
    for (uint64_t id : cancelled) apply_cancel(id, StreamEnd::kCancelled, {});
    if (stopping) {
      std::vector<uint64_t> ids;
      for (const auto& [id, group] : groups_) ids.push_back(id);
      for (uint64_t id : ids) apply_cancel(id, StreamEnd::kCancelled, "the server stopped");
      publish_gauges();
      dispatcher_.post(std::exchange(deliveries_, {}));
      return;
    }
    expire_deadlines();
    bool ran = false;
    if (scheduler_.has_unfinished_requests()) {
      try {
        ran = step();
      } catch (const std::exception& e) {
        fail_all(e.what());
      }
    }
    publish_gauges();
    dispatcher_.post(std::exchange(deliveries_, {}));
    // The scheduler always admits the first waiting request into an empty batch, so a step with
    // unfinished requests runs something; should it ever not, back off instead of spinning.
    if (!ran && !groups_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void Engine::admit(const std::shared_ptr<Group>& group) {
  const GenerationRequest& r = group->request;
  groups_.emplace(group->stream->id(), group);
  metrics_.add_prompt_tokens(int64_t(r.prompt.size()) * r.n);
  for (int i = 0; i < r.n; ++i) {
    SamplingParams params = r.sampling;
    params.seed += uint64_t(i);  // n choices must differ; choice 0 keeps the client's seed
    const serving::RequestId id = next_request_id_++;
    scheduler_.add_request({.id = id, .prompt_token_ids = r.prompt, .max_tokens = r.max_tokens, .priority = 0});
    sequences_.emplace(id, std::make_unique<Sequence>(group, i, tokenizer_, params));
    group->live.push_back(id);
  }
}

void Engine::apply_cancel(uint64_t stream_id, StreamEnd end, const std::string& message) {
  const auto it = groups_.find(stream_id);
  if (it == groups_.end()) return;  // already ended
  const std::shared_ptr<Group> group = it->second;
  for (serving::RequestId id : group->live) {
    scheduler_.abort(id);  // frees its blocks now
    runner_.release(id);
    sequences_.erase(id);
  }
  groups_.erase(it);
  end_request(*group, end, message);
  metrics_.count_request(end == StreamEnd::kTimeout  ? RequestOutcome::kTimeout
                         : end == StreamEnd::kFailed ? RequestOutcome::kError
                                                     : RequestOutcome::kCancelled);
}

void Engine::expire_deadlines() {
  const Clock::time_point now = Clock::now();
  std::vector<uint64_t> expired;
  for (const auto& [id, group] : groups_)
    if (group->has_deadline && now >= group->deadline) expired.push_back(id);
  for (uint64_t id : expired)
    apply_cancel(id, StreamEnd::kTimeout,
                 fmt::format("the request ran past the server's request timeout of {} s",
                             double(groups_.at(id)->request.timeout.count()) / 1000));
}

void Engine::fail_all(const std::string& message) {
  std::vector<uint64_t> ids;
  for (const auto& [id, group] : groups_) ids.push_back(id);
  for (uint64_t id : ids) apply_cancel(id, StreamEnd::kFailed, "the engine failed: " + message);
}

bool Engine::step() {
  const Clock::time_point t0 = Clock::now();
  const serving::SchedulerOutput out = scheduler_.schedule();
  for (serving::RequestId id : out.preempted) runner_.preempt(id);
  batch_.clear();
  for (const serving::ScheduledRequest& s : out.scheduled) {
    const Sequence& seq = *sequences_.at(s.request_id);
    const GenerationRequest& r = seq.group->request;
    batch_.push_back(
        {.id = s.request_id,
         .tokens = scheduler_.token_ids(s.request_id).subspan(size_t(s.num_computed_tokens), size_t(s.num_tokens)),
         .start = s.num_computed_tokens,
         .capacity = int(r.prompt.size()) + r.max_tokens,
         .wants_logits = s.samples_token,
         .plan = &s,
         .sampling = seq.device_sampling ? &seq.params : nullptr,
         .sample_step = uint64_t(seq.num_outputs)});
  }
  const Clock::time_point t1 = Clock::now();
  runner_.execute(batch_, logits_, chosen_);
  const Clock::time_point t2 = Clock::now();

  std::vector<serving::SampledToken> sampled;
  std::vector<SequenceEvent> events;
  for (size_t i = 0; i < batch_.size(); ++i) {
    if (!batch_[i].wants_logits) continue;
    serving::SampledToken& t = sampled.emplace_back();
    events.push_back(sample(batch_[i].id, logits_[i], chosen_[i], t));
  }
  const std::vector<serving::FinishedRequest> finished = scheduler_.update_from_output(out, sampled);
  for (const serving::FinishedRequest& f : finished) {
    const auto at = std::ranges::find(sampled, f.request_id, &serving::SampledToken::request_id);
    finish_sequence(*sequences_.at(f.request_id), f, events[size_t(at - sampled.begin())]);
  }
  metrics_.add_generated_tokens(int64_t(sampled.size()));

  // Deliver per request, then retire the finished ones (a request ends when its last choice does).
  for (size_t i = 0; i < sampled.size(); ++i) {
    const auto it = sequences_.find(sampled[i].request_id);
    deliveries_.push_back({.stream = it->second->group->stream, .events = {std::move(events[i])}});
  }
  const Clock::time_point now = Clock::now();
  for (const serving::FinishedRequest& f : finished) {
    const std::shared_ptr<Group> group = sequences_.at(f.request_id)->group;
    runner_.release(f.request_id);
    sequences_.erase(f.request_id);
    std::erase(group->live, f.request_id);
    if (!group->live.empty()) continue;
    metrics_.observe_e2e(seconds_between(group->arrival, now));
    metrics_.count_request(RequestOutcome::kCompleted);
    groups_.erase(group->stream->id());
    end_request(*group, StreamEnd::kFinished, {});
  }
  if (!out.empty()) {
    ++phase_time_.steps;
    phase_time_.schedule_s += seconds_between(t0, t1);
    phase_time_.model_s += seconds_between(t1, t2);
    phase_time_.output_s += seconds_between(t2, Clock::now());
    if (std::ranges::any_of(out.scheduled, [](const serving::ScheduledRequest& s) { return s.num_tokens > 1; })) {
      ++phase_time_.prefill_steps;
      phase_time_.prefill_model_s += seconds_between(t1, t2);
    }
  }
  return !out.empty();
}

SequenceEvent Engine::sample(serving::RequestId id, std::span<const float> logits, int32_t chosen,
                             serving::SampledToken& out) {
  Sequence& seq = *sequences_.at(id);
  Group& group = *seq.group;
  const GenerationRequest& r = group.request;
  int32_t token = chosen;
  if (token < 0) {
    row_.assign(logits.begin(), logits.end());  // the sampler applies penalties and temperature in place
    token = seq.sampler.sample(row_, scheduler_.token_ids(id), r.prompt.size());
  }

  SequenceEvent event;
  event.index = seq.index;
  event.token_ids.push_back(token);
  if (r.logprobs >= 0) event.logprobs.push_back(logprobs_of(logits, token, r.logprobs, order_));
  const bool eos = !r.ignore_eos && std::ranges::find(config_.eos_ids, token) != config_.eos_ids.end();
  event.text = seq.text.push(token);
  if (eos) event.text += seq.text.finish();  // as generate(): EOS ends the text, releasing what was held

  const Clock::time_point now = Clock::now();
  if (seq.num_outputs++ == 0) seq.first_token = now;
  if (!group.first_token_seen) {
    group.first_token_seen = true;
    metrics_.observe_ttft(seconds_between(group.arrival, now));
  }
  out = {.request_id = id, .token_id = token, .stop = eos || seq.text.stopped()};
  return event;
}

void Engine::finish_sequence(Sequence& seq, const serving::FinishedRequest& f, SequenceEvent& event) {
  if (f.reason == serving::FinishReason::kLength) event.text += seq.text.finish();
  event.finish = f.reason == serving::FinishReason::kStop ? FinishReason::kStop : FinishReason::kLength;
  if (seq.num_outputs > 1)
    metrics_.observe_tpot(seconds_between(seq.first_token, Clock::now()) / double(seq.num_outputs - 1));
}

}  // namespace roofline::server
