#include "roofline/server/request_stream.h"

namespace roofline::server {

bool RequestStream::next(std::vector<SequenceEvent>& out, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  ready_.wait_for(lock, timeout, [&] { return !queue_.empty() || end_ != StreamEnd::kOpen; });
  const bool had_events = !queue_.empty();
  for (SequenceEvent& e : queue_) out.push_back(std::move(e));
  queue_.clear();
  return end_ == StreamEnd::kOpen || had_events;
}

StreamEnd RequestStream::end() const {
  std::lock_guard lock(mutex_);
  return end_;
}

std::string RequestStream::error_message() const {
  std::lock_guard lock(mutex_);
  return message_;
}

void RequestStream::push(std::vector<SequenceEvent> events) {
  if (events.empty()) return;
  {
    std::lock_guard lock(mutex_);
    for (SequenceEvent& e : events) queue_.push_back(std::move(e));
  }
  ready_.notify_all();
}

void RequestStream::close(StreamEnd end, std::string message) {
  {
    std::lock_guard lock(mutex_);
    if (end_ != StreamEnd::kOpen) return;  // the first ending wins (e.g. finished before a late cancel)
    end_ = end;
    message_ = std::move(message);
  }
  ready_.notify_all();
}

}  // namespace roofline::server
