// Hands what each engine step produced to the request streams, on a thread of its own. Waking a stream's
// HTTP handler is a futex syscall and a context switch; with a few hundred streams that is milliseconds
// per step, which on the engine thread would sit between two GPU steps. The engine posts one batch per
// step (one lock, one wake-up) and goes on scheduling the next step while this thread delivers.
// Deliveries keep their order: a stream's events always arrive before its end.
#pragma once
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "roofline/server/request_stream.h"

namespace roofline::server {

struct StreamDelivery {
  std::shared_ptr<RequestStream> stream;
  std::vector<SequenceEvent> events;
  StreamEnd end = StreamEnd::kOpen;  // anything else closes the stream after its events
  std::string message;
};

class StreamDispatcher {
 public:
  // on_closed runs on the dispatcher thread after each stream it closes (the engine counts live requests).
  explicit StreamDispatcher(std::function<void()> on_closed);
  ~StreamDispatcher();  // delivers what was posted, then joins
  StreamDispatcher(const StreamDispatcher&) = delete;
  StreamDispatcher& operator=(const StreamDispatcher&) = delete;

  void post(std::vector<StreamDelivery> deliveries);
  // Returns once everything posted so far has been delivered.
  void flush();

 private:
  void run();

  std::function<void()> on_closed_;
  std::mutex mutex_;
  std::condition_variable posted_, delivered_;
  std::vector<StreamDelivery> queue_;
  uint64_t posted_count_ = 0, delivered_count_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace roofline::server
