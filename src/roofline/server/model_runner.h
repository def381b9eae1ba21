// The engine's one view of the model: run each scheduled request's tokens and hand back the logits of
// those that sample. The scheduler decides what runs (its block accounting admits, chunks and preempts);
// the runner only executes. Everything the engine knows about KV storage goes through this interface.
//
// The runner executes a whole step as one Decoder::step over one paged KV pool whose blocks are the
// scheduler's: a request's block table is the one the scheduler hands out (prefix-cache hits first), so
// requests that share a prompt prefix read the same KV blocks, and prefill chunks and decodes of every
// running request go through the model together.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "roofline/engine/sampler.h"
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
  // Set when the next token may be chosen where the logits are (no penalties, no logprobs): a runner on a
  // device then returns the token instead of a [vocab] row, so only ids cross to the host.
  const SamplingParams* sampling = nullptr;
  uint64_t sample_step = 0;  // the draw's step (with sampling->seed): same seed and step, same token
};

class ModelRunner {
 public:
  virtual ~ModelRunner() = default;

  virtual int64_t vocab_size() const = 0;
  // True when one request can read KV another wrote through shared blocks (prefix caching is usable).
  virtual bool shares_kv_blocks() const = 0;

  // Runs one step. Afterwards, for each batch[i] that wants_logits: chosen[i] >= 0 is the token the runner
  // chose itself (only when batch[i].sampling is set), else logits[i] is the [vocab] row after its last
  // token. Rows stay valid until the next execute().
  virtual void execute(std::span<const RunRequest> batch, std::vector<std::span<const float>>& logits,
                       std::vector<int32_t>& chosen) = 0;
  // The scheduler preempted the request: its KV is gone and it recomputes from position 0.
  virtual void preempt(serving::RequestId id) = 0;
  // The request finished or was aborted: drop everything held for it.
  virtual void release(serving::RequestId id) = 0;
};

// The paged runner over `decoder` with a pool of num_blocks x block_size positions (the scheduler's
// KvCacheConfig). Not thread-safe: the engine thread alone calls it. `decoder` must outlive the runner.
std::unique_ptr<ModelRunner> make_paged_kv_runner(Decoder& decoder, int64_t num_blocks, int64_t block_size);

}  // namespace roofline::server
