// A fixed pool of worker threads for data-parallel kernels. parallel_for splits [0, n) into chunks that
// the caller and the workers take from one atomic counter; the call returns when every chunk is done.
// Workers spin briefly before sleeping, because decode issues hundreds of short parallel regions a token.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace roofline {

class ThreadPool {
 public:
  // threads <= 0 means one per hardware thread. The calling thread counts as one of them.
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }

  // Runs body(begin, end) over [0, n) in chunks of at least `grain` items. Exceptions from the body
  // are rethrown in the caller (the first one wins). Not reentrant: do not call from inside a body.
  void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& body);

  static int hardware_threads();

 private:
  void worker_loop();
  void run_chunks();

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  // The current job.
  const std::function<void(size_t, size_t)>* body_ = nullptr;
  size_t n_ = 0, chunk_ = 1;
  std::atomic<size_t> next_{0};
  std::atomic<int> active_{0};
  std::exception_ptr error_;
  std::mutex error_mutex_;
};

}  // namespace roofline
