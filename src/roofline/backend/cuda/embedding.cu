// Token embedding gather: out[t, :] = table[ids[t], :] converted to the activation type.
//   table: [vocab, width] (f32 / f16 / bf16), ids: device int32 [count], out: [count, width].
// Rows over grid.y, the width over grid.x (both grid-stride); 8 elements per access when aligned.
// An id outside [0, vocab) cannot throw from the device: its row is written as NaN, so it shows.
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <cmath>

#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/dispatch.cuh"
#include "roofline/backend/cuda/kernels.h"

namespace roofline::cuda {

namespace {

constexpr int kThreads = 256;

template <typename Out, typename W>
__global__ void embedding_kernel(Out* out, const W* table, int64_t vocab, const int32_t* ids, int64_t count,
                                 int64_t width, bool vectorized) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t groups = vectorized ? width / 8 : 0;
  for (int64_t t = blockIdx.y; t < count; t += gridDim.y) {
    const int64_t id = ids[t];
    const bool valid = id >= 0 && id < vocab;
    const W* src = table + (valid ? id : 0) * width;
    Out* dst = out + t * width;
    for (int64_t g = first; g < groups; g += stride) {
      float v[8];
      device::load8(src + 8 * g, v);
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = valid ? v[i] : NAN;
      device::store8(dst + 8 * g, v);
    }
    for (int64_t i = groups * 8 + first; i < width; i += stride)
      dst[i] = device::from_float<Out>(valid ? device::to_float(src[i]) : NAN);
  }
}

}  // namespace

void launch_embedding(void* out, Elem out_type, const void* table, Elem table_type, int64_t vocab,
                      const int32_t* ids, int64_t count, int64_t width, cudaStream_t stream) {
  nvtx3::scoped_range range("cuda::embedding");
  if (count <= 0 || width <= 0) return;
  const bool vectorized = aligned16(out) && aligned16(table) && width % 8 == 0;
  const int64_t per_row = vectorized ? width / 8 : width;
  const dim3 grid(unsigned(std::min<int64_t>((per_row + kThreads - 1) / kThreads, 1024)),
                  unsigned(std::min<int64_t>(count, 65535)));
  dispatch(out_type, [&](auto out_tag) {
    dispatch(table_type, [&](auto table_tag) {
      using Out = decltype(out_tag);
      using W = decltype(table_tag);
      embedding_kernel<Out, W><<<grid, kThreads, 0, stream>>>(static_cast<Out*>(out), static_cast<const W*>(table),
                                                               vocab, ids, count, width, vectorized);
      ROOFLINE_CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace roofline::cuda
