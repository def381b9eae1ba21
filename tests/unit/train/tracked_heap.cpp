// The replaced global operator new / delete behind HeapWindow (tracked_heap.h). Every block carries a header;
// only blocks allocated while a window is open are linked into its list, under a mutex, so the rest of the
// test binary pays one relaxed load per allocation.
#include "tracked_heap.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <new>

namespace {

struct alignas(16) Header {
  Header* prev;
  Header* next;
  size_t size;
  std::atomic<bool> tracked;
};
static_assert(sizeof(Header) == 32);  // keeps the block 16-byte aligned, as malloc's is

std::atomic<bool> recording{false};
std::mutex heap_mutex;  // guards the list and the counters
Header tracked_list{&tracked_list, &tracked_list, 0, false};
size_t live = 0, peak = 0;

void* allocate(size_t n) {
  void* raw = std::malloc(sizeof(Header) + n);
  if (raw == nullptr) throw std::bad_alloc();
  Header* h = ::new (raw) Header{nullptr, nullptr, n, false};
  if (recording.load(std::memory_order_relaxed)) {
    std::lock_guard<std::mutex> lock(heap_mutex);
    h->next = &tracked_list;
    h->prev = tracked_list.prev;
    tracked_list.prev->next = h;
    tracked_list.prev = h;
    h->tracked.store(true, std::memory_order_relaxed);
    live += n;
    if (live > peak) peak = live;
  }
  return h + 1;
}

void release(void* p) noexcept {
  if (p == nullptr) return;
  Header* h = static_cast<Header*>(p) - 1;
  if (h->tracked.load(std::memory_order_relaxed)) {
    std::lock_guard<std::mutex> lock(heap_mutex);
    if (h->tracked.load(std::memory_order_relaxed)) {
      h->prev->next = h->next;
      h->next->prev = h->prev;
      live -= h->size;
    }
  }
  std::free(h);
}

// Forgets every tracked block (they stay valid; freeing them later no longer counts).
void untrack_all() {
  for (Header* h = tracked_list.next; h != &tracked_list;) {
    Header* next = h->next;
    h->tracked.store(false, std::memory_order_relaxed);
    h = next;
  }
  tracked_list.prev = tracked_list.next = &tracked_list;
  live = peak = 0;
}

}  // namespace

void* operator new(size_t n) { return allocate(n); }
void* operator new[](size_t n) { return allocate(n); }
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, size_t) noexcept { release(p); }
void operator delete[](void* p, size_t) noexcept { release(p); }

namespace roofline::train::testing {

HeapWindow::HeapWindow() {
  std::lock_guard<std::mutex> lock(heap_mutex);
  untrack_all();
  recording.store(true);
}

HeapWindow::~HeapWindow() {
  recording.store(false);
  std::lock_guard<std::mutex> lock(heap_mutex);
  untrack_all();
}

void HeapWindow::restart() {
  std::lock_guard<std::mutex> lock(heap_mutex);
  untrack_all();
}

size_t HeapWindow::live_bytes() const {
  std::lock_guard<std::mutex> lock(heap_mutex);
  return live;
}

std::vector<size_t> HeapWindow::live_blocks() const {
  // The list itself is allocated with recording paused (allocating under the lock would deadlock).
  const bool was_recording = recording.exchange(false);
  std::vector<size_t> sizes;
  {
    std::unique_lock<std::mutex> lock(heap_mutex);
    size_t blocks = 0;
    for (const Header* h = tracked_list.next; h != &tracked_list; h = h->next) ++blocks;
    lock.unlock();
    sizes.reserve(blocks);
    lock.lock();
    for (const Header* h = tracked_list.next; h != &tracked_list && sizes.size() < blocks; h = h->next)
      sizes.push_back(h->size);
  }
  recording.store(was_recording);
  return sizes;
}

size_t HeapWindow::peak_bytes() const {
  std::lock_guard<std::mutex> lock(heap_mutex);
  return peak;
}

void HeapWindow::reset_peak() {
  std::lock_guard<std::mutex> lock(heap_mutex);
  peak = live;
}

}  // namespace roofline::train::testing
