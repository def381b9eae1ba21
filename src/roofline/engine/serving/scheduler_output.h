// One step's plan, from Scheduler::schedule() to the executor: {request: num_tokens} plus where their KV
// goes. Prefill, chunked prefill and decode all read "run num_tokens tokens of request R from position
// num_computed_tokens"; the executor never asks which one it is.
#pragma once
#include <vector>

#include "roofline/engine/serving/kv_blocks.h"

namespace roofline::serving {

struct ScheduledRequest {
  RequestId request_id = 0;
  int num_tokens = 0;           // tokens to run: positions [num_computed_tokens, num_computed_tokens + num_tokens)
  int num_computed_tokens = 0;  // KV for positions before this is already in the request's blocks
  // True on the first step after admission (new, or resumed after preemption): new_blocks is then the
  // whole block table, prefix-cache hits first. False: new_blocks are appended to the table the executor has.
  bool starts_table = false;
  KvBlocks new_blocks;
  bool samples_token = false;  // the step reaches the request's last known token: sample the next one
};

struct SchedulerOutput {
  std::vector<ScheduledRequest> scheduled;  // running requests first (in queue order), then admitted ones
  std::vector<RequestId> preempted;         // freed this step; they wait to recompute from scratch
  int total_num_tokens = 0;                 // <= max_num_batched_tokens

  bool empty() const { return scheduled.empty(); }
};

}  // namespace roofline::serving
