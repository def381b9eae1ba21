// Elementwise ops over flat arrays of n elements: add, silu_mul, gelu_tanh, dtype conversion, and adding
// table rows (learned position embeddings). Math in f32, results rounded to the storage type.
// Each thread takes groups of 8 consecutive elements (16-byte accesses for 2-byte types) in a grid-stride
// loop when every pointer is 16-byte aligned; the n % 8 tail (or everything, when unaligned) goes
// element by element.
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <cmath>

#include "roofline/backend/cuda/chained_launch.cuh"
#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/dispatch.cuh"
#include "roofline/backend/cuda/kernels.h"

namespace roofline::cuda {

namespace {

using device::load8;
using device::store8;
using device::to_float;
using device::from_float;

constexpr int kThreads = 256;

// Elementwise functors: kArity inputs -> one output, in f32.
struct AddOp {
  static constexpr int kArity = 2;
  __device__ static float apply(float a, float b) { return a + b; }
};
struct SiluMulOp {  // a: gate, b: up
  static constexpr int kArity = 2;
  __device__ static float apply(float gate, float up) { return gate / (1.0f + __expf(-gate)) * up; }
};
struct GeluTanhOp {  // GPT-2's gelu_new: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  static constexpr int kArity = 1;
  __device__ static float apply(float x, float) {
    const float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanhf(inner));
  }
};

// out[i] = Op(a[i], b[i]) for i < n; out may alias a or b (each element is read before it is written).
template <typename Op, typename T>
__global__ void map_kernel(T* out, const T* a, const T* b, int64_t n, bool vectorized) {
  device::enter_chain();
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t groups = vectorized ? n / 8 : 0;
  for (int64_t g = first; g < groups; g += stride) {
    float va[8], vb[8] = {};
    load8(a + 8 * g, va);
    if constexpr (Op::kArity == 2) load8(b + 8 * g, vb);
#pragma unroll
    for (int i = 0; i < 8; ++i) va[i] = Op::apply(va[i], vb[i]);
    store8(out + 8 * g, va);
  }
  for (int64_t i = groups * 8 + first; i < n; i += stride) {
    const float vb = Op::kArity == 2 ? to_float(b[i]) : 0.0f;
    out[i] = from_float<T>(Op::apply(to_float(a[i]), vb));
  }
}

// out[i] = in[i] converted, for i < n.
template <typename Out, typename In>
__global__ void convert_kernel(Out* out, const In* in, int64_t n, bool vectorized) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t groups = vectorized ? n / 8 : 0;
  for (int64_t g = first; g < groups; g += stride) {
    float v[8];
    load8(in + 8 * g, v);
    store8(out + 8 * g, v);
  }
  for (int64_t i = groups * 8 + first; i < n; i += stride) out[i] = from_float<Out>(to_float(in[i]));
}

// inout[t, :] += table[r(t), :] for t < rows: rows over grid.y, the width over grid.x (both grid-stride).
template <typename T, typename W>
__global__ void add_rows_kernel(T* inout, const W* table, int64_t table_rows, const int32_t* row_ids,
                               int64_t fixed_row, int64_t rows, int64_t width, bool vectorized) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t groups = vectorized ? width / 8 : 0;
  for (int64_t t = blockIdx.y; t < rows; t += gridDim.y) {
    const int64_t r = row_ids ? int64_t(row_ids[t]) : fixed_row;
    const bool valid = r >= 0 && r < table_rows;
    T* y = inout + t * width;
    const W* src = table + (valid ? r : 0) * width;
    for (int64_t g = first; g < groups; g += stride) {
      float a[8], b[8];
      load8(y + 8 * g, a);
      load8(src + 8 * g, b);
#pragma unroll
      for (int i = 0; i < 8; ++i) a[i] = valid ? a[i] + b[i] : NAN;
      store8(y + 8 * g, a);
    }
    for (int64_t i = groups * 8 + first; i < width; i += stride)
      y[i] = from_float<T>(valid ? to_float(y[i]) + to_float(src[i]) : NAN);
  }
}

template <typename Op>
void launch_map(const char* name, void* out, const void* a, const void* b, Elem type, int64_t n,
                cudaStream_t stream) {
  nvtx3::scoped_range range(name);
  if (n <= 0) return;
  const bool vectorized = aligned16(out) && aligned16(a) && (b == nullptr || aligned16(b));
  dispatch(type, [&](auto tag) {
    using T = decltype(tag);
    launch_chained(map_kernel<Op, T>, grid_for(vectorized ? (n + 7) / 8 : n, kThreads), kThreads, 0, stream,
                   static_cast<T*>(out), static_cast<const T*>(a), static_cast<const T*>(b), n, vectorized);
  });
}

}  // namespace

void launch_add(void* inout, const void* x, Elem type, int64_t n, cudaStream_t stream) {
  launch_map<AddOp>("cuda::add", inout, inout, x, type, n, stream);
}

void launch_silu_mul(void* out, const void* gate, const void* up, Elem type, int64_t n, cudaStream_t stream) {
  launch_map<SiluMulOp>("cuda::silu_mul", out, gate, up, type, n, stream);
}

void launch_gelu_tanh(void* x, Elem type, int64_t n, cudaStream_t stream) {
  launch_map<GeluTanhOp>("cuda::gelu_tanh", x, x, nullptr, type, n, stream);
}

void launch_convert(void* out, Elem out_type, const void* in, Elem in_type, int64_t n, cudaStream_t stream) {
  nvtx3::scoped_range range("cuda::convert");
  if (n <= 0) return;
  const bool vectorized = aligned16(out) && aligned16(in);
  dispatch(out_type, [&](auto out_tag) {
    dispatch(in_type, [&](auto in_tag) {
      using Out = decltype(out_tag);
      using In = decltype(in_tag);
      convert_kernel<Out, In><<<grid_for(vectorized ? (n + 7) / 8 : n, kThreads), kThreads, 0, stream>>>(
          static_cast<Out*>(out), static_cast<const In*>(in), n, vectorized);
      ROOFLINE_CUDA_CHECK_LAUNCH();
    });
  });
}

void launch_add_rows(void* inout, Elem type, const void* table, Elem table_type, int64_t table_rows,
                     const int32_t* row_ids, int64_t fixed_row, int64_t rows, int64_t width, cudaStream_t stream) {
  nvtx3::scoped_range range("cuda::add_rows");
  if (rows <= 0 || width <= 0) return;
  // Rows start 16-byte aligned only when the row pitch keeps them so.
  const bool vectorized = aligned16(inout) && aligned16(table) && width % 8 == 0;
  const int64_t per_row = vectorized ? width / 8 : width;
  const unsigned blocks_x = unsigned(std::min<int64_t>((per_row + kThreads - 1) / kThreads, 1024));
  const dim3 grid(blocks_x, unsigned(std::min<int64_t>(rows, 65535)));
  dispatch(type, [&](auto tag) {
    dispatch(table_type, [&](auto table_tag) {
      using T = decltype(tag);
      using W = decltype(table_tag);
      add_rows_kernel<T, W><<<grid, kThreads, 0, stream>>>(static_cast<T*>(inout), static_cast<const W*>(table),
                                                            table_rows, row_ids, fixed_row, rows, width,
                                                            vectorized);
      ROOFLINE_CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace roofline::cuda
