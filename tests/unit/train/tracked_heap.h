// What the code under test allocates with operator new, for tests that hold a memory plan against the real
// allocations: tracked_heap.cpp replaces the global operator new and delete of this test binary (a 32-byte
// header before each block records its size), and a HeapWindow records the blocks allocated while it is open.
#pragma once
#include <cstddef>
#include <vector>

namespace roofline::train::testing {

// One at a time. Allocations of every thread count while it is open (run the code under test alone).
class HeapWindow {
 public:
  HeapWindow();  // starts recording; blocks of an earlier window are no longer counted
  ~HeapWindow();
  HeapWindow(const HeapWindow&) = delete;
  HeapWindow& operator=(const HeapWindow&) = delete;

  void restart();                           // forgets the blocks recorded so far and records on

  size_t live_bytes() const;                // bytes of the blocks allocated in the window and not freed yet
  std::vector<size_t> live_blocks() const;  // their sizes, one per block
  size_t peak_bytes() const;                // the most live_bytes() has been since the window opened or reset_peak()
  void reset_peak();
};

}  // namespace roofline::train::testing
