// The serving engine: one thread owns the Scheduler and the ModelRunner and repeats
//   take submissions and cancellations -> schedule() -> runner.execute() -> sample each sequence that
//   reached its last token -> update_from_output() -> push events to each request's RequestStream
// so requests join and leave at every step (continuous batching). HTTP handler threads talk to it only
// through submit() / cancel() (a mutex-guarded inbox) and the RequestStream they get back.
//
// A request with n > 1 is n independent scheduler sequences (choices 0..n-1) sharing one stream.
// Every sequence has its own Sampler (seed + index) and StopTextStream. A sequence ends on EOS (unless
// ignore_eos), a stop string, or max_tokens; a request ends when all its sequences have, or when it is
// cancelled (client gone) or runs past its timeout, which abort its sequences and free their KV blocks at
// the next step boundary.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "roofline/engine/sampler.h"
#include "roofline/engine/serving/scheduler.h"
#include "roofline/server/metrics.h"
#include "roofline/server/model_runner.h"
#include "roofline/server/request_stream.h"
#include "roofline/server/stream_dispatcher.h"
#include "roofline/tokenizer/tokenizer.h"

namespace roofline::server {

struct GenerationRequest {
  std::vector<int32_t> prompt;    // not empty
  int max_tokens = 16;            // >= 1
  int n = 1;                      // independent sequences (choices)
  SamplingParams sampling;        // choice i samples with seed + i
  std::vector<std::string> stop;  // stop strings (none empty)
  bool ignore_eos = false;
  int logprobs = -1;                     // -1: none; k >= 0: the sampled token's logprob and the top k tokens
  std::chrono::milliseconds timeout{0};  // 0: none
};

struct EngineConfig {
  serving::SchedulerConfig scheduler;
  serving::KvCacheConfig kv;
  int max_queue = 256;           // sequences waiting for admission at most
  int64_t context_length = 0;    // prompt + max_tokens at most; 0: unbounded
  std::vector<int32_t> eos_ids;  // sequences end after any of these (unless ignore_eos)
};

// Why submit() refused a request.
class SubmitError : public std::runtime_error {
 public:
  enum class Kind { kInvalid, kTooLarge, kQueueFull, kDraining };
  SubmitError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

class Engine {
 public:
  // runner, tokenizer and metrics must outlive the engine. Prefix caching stays off unless the runner
  // shares KV blocks between requests (see model_runner.h).
  Engine(ModelRunner& runner, const Tokenizer& tokenizer, EngineConfig config, Metrics& metrics);
  ~Engine();  // stop(): aborts whatever is left
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  void start();
  // Queues a request; throws SubmitError (and changes nothing) when it is invalid, could never fit the
  // KV pool or the context, the waiting queue is full, or the engine is draining.
  std::shared_ptr<RequestStream> submit(GenerationRequest request);
  // Aborts the request (no-op when it already ended). Its stream ends kCancelled.
  void cancel(uint64_t stream_id);

  // Refuse new requests from now on (SubmitError kDraining); running and queued ones continue.
  void drain();
  // True when no request is queued or running.
  bool idle() const;
  // Aborts every request still present (streams end kCancelled) and joins the engine thread (or, when
  // it never started, ends the submitted requests on the calling thread).
  void stop();

  EngineGauges gauges() const;
  const EngineConfig& config() const { return config_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Group;
  struct Sequence;
  void loop();
  void admit(const std::shared_ptr<Group>& group);
  void apply_cancel(uint64_t stream_id, StreamEnd end, const std::string& message);
  void expire_deadlines();
  bool step();  // false when nothing was scheduled
  void end_request(Group& group, StreamEnd end, const std::string& message);
  SequenceEvent sample(serving::RequestId id, std::span<const float> logits, int32_t chosen,
                       serving::SampledToken& out);
  void finish_sequence(Sequence& seq, const serving::FinishedRequest& f, SequenceEvent& event);
  void fail_all(const std::string& message);
  void publish_gauges();

  ModelRunner& runner_;
  const Tokenizer& tokenizer_;
  EngineConfig config_;
  Metrics& metrics_;
  serving::Scheduler scheduler_;  // engine thread only

  // Shared with handler threads, under mutex_.
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::shared_ptr<Group>> inbox_;
  std::vector<uint64_t> cancels_;
  int inbox_sequences_ = 0;    // sequences in inbox_
  int waiting_sequences_ = 0;  // the scheduler's waiting queue after the last step
  int live_requests_ = 0;      // submitted and not yet ended
  bool draining_ = false, stopping_ = false;
  uint64_t next_stream_id_ = 1;
  EngineGauges gauges_;

  // Engine thread only.
  std::unordered_map<uint64_t, std::shared_ptr<Group>> groups_;
  std::unordered_map<serving::RequestId, std::unique_ptr<Sequence>> sequences_;
  serving::RequestId next_request_id_ = 1;
  std::vector<RunRequest> batch_;
  std::vector<std::span<const float>> logits_;
  std::vector<int32_t> chosen_;  // tokens the runner chose itself (-1: sample logits_ here)
  std::vector<float> row_;      // [V] the logits a sampler may modify
  std::vector<int32_t> order_;  // [V] scratch for top logprobs
  struct PhaseTime {
    int64_t steps = 0;
    double schedule_s = 0, model_s = 0, output_s = 0;
    int64_t prefill_steps = 0;
    double prefill_model_s = 0;
  } phase_time_;
  std::vector<StreamDelivery> deliveries_;  // this iteration's events and endings, posted at its end
  StreamDispatcher dispatcher_{[this] {
    std::lock_guard lock(mutex_);
    live_requests_--;
  }};
  std::thread thread_;
};

}  // namespace roofline::server
