// What crosses the scheduler's boundary about one request: what a client submits, what the engine hands
// back after a step (the sampled token), and how a request ended.
#pragma once
#include <cstdint>
#include <vector>

#include "roofline/engine/serving/kv_blocks.h"

namespace roofline::serving {

struct Request {
  RequestId id = 0;
  std::vector<int32_t> prompt_token_ids;  // not empty
  int max_tokens = 16;                    // >= 1: outputs after which the request finishes by length
  int priority = 0;                       // lower runs earlier (SchedulingPolicy::kPriority only)
};

// The token sampled for a request whose known tokens all ran this step (end of prompt, or decode).
struct SampledToken {
  RequestId request_id = 0;
  int32_t token_id = 0;
  bool stop = false;  // the engine saw EOS or a stop string: the request finishes with this token
};

enum class FinishReason { kStop, kLength };

struct FinishedRequest {
  RequestId request_id = 0;
  FinishReason reason = FinishReason::kStop;
  std::vector<int32_t> output_token_ids;  // every sampled token, the stopping one included
};

}  // namespace roofline::serving
