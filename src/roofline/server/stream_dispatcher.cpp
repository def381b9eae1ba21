#include "roofline/server/stream_dispatcher.h"

namespace roofline::server {

StreamDispatcher::StreamDispatcher(std::function<void()> on_closed)
    : on_closed_(std::move(on_closed)), thread_([this] { run(); }) {}

StreamDispatcher::~StreamDispatcher() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  posted_.notify_one();
  thread_.join();
}

void StreamDispatcher::post(std::vector<StreamDelivery> deliveries) {
  if (deliveries.empty()) return;
  {
    std::lock_guard lock(mutex_);
    posted_count_ += deliveries.size();
    if (queue_.empty()) {
      queue_ = std::move(deliveries);
    } else {
      for (StreamDelivery& d : deliveries) queue_.push_back(std::move(d));
    }
  }
  posted_.notify_one();
}

void StreamDispatcher::flush() {
  std::unique_lock lock(mutex_);
  const uint64_t target = posted_count_;
  delivered_.wait(lock, [&] { return delivered_count_ >= target; });
}

void StreamDispatcher::run() {
  std::vector<StreamDelivery> batch;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      posted_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything was delivered
      batch.swap(queue_);
    }
    for (StreamDelivery& d : batch) {
      d.stream->push(std::move(d.events));
      if (d.end != StreamEnd::kOpen) {
        d.stream->close(d.end, std::move(d.message));
        on_closed_();
      }
    }
    const size_t n = batch.size();
    batch.clear();
    {
      std::lock_guard lock(mutex_);
      delivered_count_ += n;
    }
    delivered_.notify_all();
  }
}

}  // namespace roofline::server
