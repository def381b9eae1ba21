// Helpers for the scheduler tests: build requests, and play the engine's part of a step (the executor
// returns one token for each request that sampled).
#pragma once
#include <algorithm>
#include <map>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "roofline/engine/serving/scheduler.h"

namespace roofline::serving::test {

using Ids = std::vector<BlockId>;

inline std::vector<int32_t> tokens(int count, int32_t first = 0) {
  std::vector<int32_t> t(static_cast<size_t>(count));
  std::iota(t.begin(), t.end(), first);
  return t;
}

inline Request make_request(RequestId id, int prompt_length, int max_tokens, int priority = 0) {
  // Distinct ids get distinct prompts, so nothing is shared unless a test asks for it.
  return {.id = id, .prompt_token_ids = tokens(prompt_length, int32_t(id) * 1000), .max_tokens = max_tokens,
          .priority = priority};
}

// {request: num_tokens} of one step.
inline std::map<RequestId, int> num_tokens_of(const SchedulerOutput& out) {
  std::map<RequestId, int> m;
  for (const ScheduledRequest& s : out.scheduled) m[s.request_id] = s.num_tokens;
  return m;
}

inline const ScheduledRequest& scheduled(const SchedulerOutput& out, RequestId id) {
  for (const ScheduledRequest& s : out.scheduled) {
    if (s.request_id == id) return s;
  }
  throw std::out_of_range("request not scheduled this step");
}

// The token the fake executor samples: recognisable per step and request.
inline int32_t token_for(int step, RequestId id) { return int32_t(100000 + step * 100 + int(id)); }

struct Step {
  SchedulerOutput output;
  std::vector<FinishedRequest> finished;
};

// One engine step: schedule, "execute", hand back a token for every request that reached its last token.
inline Step step(Scheduler& s, int step_number, const std::vector<RequestId>& stop = {}) {
  Step st;
  st.output = s.schedule();
  std::vector<SampledToken> sampled;
  for (const ScheduledRequest& r : st.output.scheduled) {
    if (!r.samples_token) continue;
    const bool stops = std::find(stop.begin(), stop.end(), r.request_id) != stop.end();
    sampled.push_back({r.request_id, token_for(step_number, r.request_id), stops});
  }
  st.finished = s.update_from_output(st.output, sampled);
  return st;
}

inline Ids table(const Scheduler& s, RequestId id) {
  const auto t = s.block_table(id);
  return Ids(t.begin(), t.end());
}

}  // namespace roofline::serving::test
