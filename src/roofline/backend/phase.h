// The phase of the work an op belongs to ("prefill", "decode", "mixed", "train", ...), so that a profile can
// tell a decode step's ops from the prompt's. The engine opens a PhaseScope around a unit of work (the
// Decoder around each step); TimedBackend reads current_phase() on the thread that runs the op.
// Each scope that opens a phase is one step of it (its ops share a step number); a scope nested in a scope
// of the same phase is part of that step, and a scope of another phase replaces it until it closes.
#pragma once
#include <atomic>
#include <cstdint>
#include <string_view>

namespace roofline {

struct PhaseTag {
  const char* name = "";  // a string literal; "" outside any scope
  int64_t step = -1;      // unique per opened scope across threads; -1 outside any scope
};

namespace detail {
inline thread_local PhaseTag current_phase_tag;
inline std::atomic<int64_t> next_phase_step{0};
}  // namespace detail

inline PhaseTag current_phase() { return detail::current_phase_tag; }

class PhaseScope {
 public:
  explicit PhaseScope(const char* name) : saved_(detail::current_phase_tag) {
    if (saved_.step >= 0 && std::string_view(saved_.name) == name) return;  // the same phase: part of the enclosing step
    detail::current_phase_tag = PhaseTag{name, detail::next_phase_step.fetch_add(1, std::memory_order_relaxed)};
  }
  ~PhaseScope() { detail::current_phase_tag = saved_; }
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  PhaseTag saved_;
};

}  // namespace roofline
