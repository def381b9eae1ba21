// The channel from the engine thread to the HTTP handler that owns one request: what each step produced
// for each choice (token ids, final text, logprobs) and, at the end, how the request ended.
// Thread-safe: the engine pushes and closes, one handler thread takes.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace roofline::server {

struct TopLogprob {
  int32_t id = 0;
  float logprob = 0;
};

// Log-probabilities from the model's raw logits (before penalties, temperature and truncation).
struct TokenLogprob {
  int32_t id = 0;  // the sampled token
  float logprob = 0;
  std::vector<TopLogprob> top;  // the k most likely tokens, most likely first
};

enum class FinishReason { kNone, kStop, kLength };  // kStop: EOS or a stop string

// What one engine step produced for one choice.
struct SequenceEvent {
  int index = 0;                              // the choice
  std::vector<int32_t> token_ids;             // tokens sampled (usually one)
  std::string text;                           // text that became final; may lag the tokens (stop strings, UTF-8)
  std::vector<TokenLogprob> logprobs;         // one per token when logprobs were asked for
  FinishReason finish = FinishReason::kNone;  // set on the choice's last event
};

enum class StreamEnd {
  kOpen,       // still running
  kFinished,   // every choice finished
  kCancelled,  // cancelled through Engine::cancel
  kTimeout,    // ran past its timeout; the engine dropped it
  kFailed,     // the engine failed; error_message() says why
};

class RequestStream {
 public:
  RequestStream(uint64_t id, int num_choices, int prompt_tokens)
      : id_(id), num_choices_(num_choices), prompt_tokens_(prompt_tokens) {}

  uint64_t id() const { return id_; }
  int num_choices() const { return num_choices_; }
  int prompt_tokens() const { return prompt_tokens_; }

  // Appends the queued events to `out`, first waiting up to `timeout` while none are queued and the
  // stream is open. Returns false once the stream has ended and every event was taken.
  bool next(std::vector<SequenceEvent>& out, std::chrono::milliseconds timeout);
  StreamEnd end() const;
  std::string error_message() const;

  // Engine side.
  void push(std::vector<SequenceEvent> events);
  void close(StreamEnd end, std::string message = {});

 private:
  const uint64_t id_;
  const int num_choices_, prompt_tokens_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::vector<SequenceEvent> queue_;
  StreamEnd end_ = StreamEnd::kOpen;
  std::string message_;
};

}  // namespace roofline::server
