// The engine's one view of the model: run each scheduled request's tokens and hand back the logits of
// those that sample. The scheduler decides what runs (its block accounting admits, chunks and preempts);
// the runner only executes. Everything the engine knows about KV storage goes through this interface.
//
// For now the runner keeps one contiguous KvCache per request (Decoder::new_cache, at most prompt +
// max_tokens positions, grown as the request's tokens arrive) and runs the batch request by request with
// Decoder::forward. The scheduler's block tables are accounting only: they bound how many tokens are in
// flight (and so, within a factor of two, the memory the caches take), but no KV lives in those blocks.
// NEXT: paged attention that reads K/V through the block tables (the decoder is being changed for that)
// replaces the contiguous caches with a runner over one device block pool; that swap touches only
// model_runner.{h,cpp}. That runner also returns true from shares_kv_blocks(), which turns on the
// scheduler's prefix cache: a hit is only real when one request can read another's blocks.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "roofline/engine/serving/scheduler_output.h"
#include "roofline/model/decoder.h"

namespace roofline::server {

// One scheduled request of a step.
struct RunRequest {
  serving::RequestId id = 0;
  std::span<const int32_t> tokens;                  // the tokens at positions [start, start + tokens.size())
  int start = 0;                                    // tokens before this already have KV (== num_computed_tokens)
  int capacity = 0;                                 // positions the request may ever hold: prompt + max_tokens
  bool wants_logits = false;                        // the step reaches its last known token: it samples
  const serving::ScheduledRequest* plan = nullptr;  // the scheduler's entry (block ids), for a paged runner
};

class ModelRunner {
 public:
  virtual ~ModelRunner() = default;

  virtual int64_t vocab_size() const = 0;
  // True when one request can read KV another wrote through shared blocks (prefix caching is usable).
  virtual bool shares_kv_blocks() const = 0;

  // Runs one step. Afterwards logits[i] is the [vocab] row after batch[i]'s last token when it
  // wants_logits, else empty; rows stay valid until the next execute().
  virtual void execute(std::span<const RunRequest> batch, std::vector<std::span<const float>>& logits) = 0;
  // The scheduler preempted the request: its KV is gone and it recomputes from position 0.
  virtual void preempt(serving::RequestId id) = 0;
  // The request finished or was aborted: drop everything held for it.
  virtual void release(serving::RequestId id) = 0;
};

// One contiguous KvCache per request over `decoder` (see the top of this file). Not thread-safe: the
// engine thread alone calls it. `decoder` must outlive the runner.
std::unique_ptr<ModelRunner> make_contiguous_kv_runner(Decoder& decoder);

}  // namespace roofline::server
