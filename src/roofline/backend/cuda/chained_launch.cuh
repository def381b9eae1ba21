// Programmatic dependent launch (PDL) for the kernels of a decode step: a kernel launched with
// launch_chained may start its blocks while the kernel before it in the stream is still draining, so the
// launch gap and the ramp of one kernel hide behind the tail of the previous one. In a captured CUDA graph
// the attribute becomes a programmatic edge, so replays keep the overlap.
// Rules every chained kernel keeps (they make the chain as safe as plain stream order):
//  1. Before wait_for_prior_kernels() it touches only memory no earlier kernel of the step writes (weights,
//     read-only; the GEMV prefetches them into L2 there). Every block calls it, before any other global access
//     and before any early return, so no block finishes before its predecessors: completion stays transitive.
//  2. It calls allow_next_kernel() only after that wait, so at most one kernel of the chain is ever waiting
//     (the next one cannot pile further launches onto the SMs while this one still waits).
// Kernels not launched this way (cuBLASLt, sampling) keep full stream order; the two instructions are no-ops
// in a kernel launched without the attribute. ROOFLINE_PDL=0 in the environment turns the attribute off (to
// measure what it buys).
#pragma once
#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>
#include <utility>

#include "roofline/backend/cuda/cuda_check.h"

namespace roofline::cuda {

namespace device {
// Blocks until every kernel launched before this one has completed and its writes are visible.
__device__ __forceinline__ void wait_for_prior_kernels() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
// Lets the next chained kernel begin launching its blocks (they wait in wait_for_prior_kernels).
__device__ __forceinline__ void allow_next_kernel() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }
// The usual entry of a chained kernel with nothing to prefetch: wait, then let the next one start.
__device__ __forceinline__ void enter_chain() {
  wait_for_prior_kernels();
  allow_next_kernel();
}
}  // namespace device

inline bool chained_launch_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("ROOFLINE_PDL");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

// kernel<<<grid, block, smem, stream>>>(args...) with programmatic stream serialization; checks the launch.
template <typename... Params, typename... Args>
void launch_chained(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                    Args&&... args) {
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = attribute;
  config.numAttrs = chained_launch_enabled() ? 1 : 0;
  ROOFLINE_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, Params(std::forward<Args>(args))...));
}

}  // namespace roofline::cuda
