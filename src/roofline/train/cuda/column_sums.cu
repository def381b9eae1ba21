// Column sums without atomics: bias gradients (db[N] += the column sums of a bf16 gradient [M, N]) and the
// second stage of every per-block partial sum (norm weight gradients). Each block sums one chunk of rows in
// row order into a partial row; the partial rows are then added in chunk order, split over 8 thread rows per
// column whose 8 results are added in a fixed order. Same inputs, same bits.
#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/train/cuda/block_reduce.cuh"
#include "roofline/train/cuda/kernels.h"
#include "roofline/train/scratch_sizes.h"

namespace roofline::train::cuda {
namespace {

constexpr int64_t kRowsPerChunk = kColumnSumRowsPerChunk;
constexpr int kColumnThreads = 128;
constexpr int kReduceColumns = 32, kReduceGroups = 16;

int64_t chunks_for(int64_t rows) { return (rows + kRowsPerChunk - 1) / kRowsPerChunk; }

// grid (column blocks, row chunks): partials[chunk, c] = sum of x[r, c] over the chunk's rows, in row order.
// kCols adjacent columns per thread: 8 (16-byte loads) where cols % 8 == 0, else 1.
template <int kCols>
__global__ void column_chunk_sums_kernel(const bf16* x, int64_t rows, int64_t cols, float* partials) {
  const int64_t c = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * kCols;
  if (c >= cols) return;
  const int64_t r0 = int64_t(blockIdx.y) * kRowsPerChunk, r1 = min(rows, r0 + kRowsPerChunk);
  float s[kCols] = {};
  if constexpr (kCols == 8) {
#pragma unroll 4
    for (int64_t r = r0; r < r1; ++r) {
      const uint4 packed = *reinterpret_cast<const uint4*>(x + r * cols + c);
      const bf16* e = reinterpret_cast<const bf16*>(&packed);
      for (int k = 0; k < 8; ++k) s[k] += __bfloat162float(e[k]);
    }
  } else {
#pragma unroll 8
    for (int64_t r = r0; r < r1; ++r) s[0] += __bfloat162float(x[r * cols + c]);
  }
  for (int k = 0; k < kCols; ++k) partials[int64_t(blockIdx.y) * cols + c + k] = s[k];
}

// block (32 columns, kReduceGroups groups), grid (column blocks, outputs): outs[y][c] += sum over k of
// partials[k * ld + y * cols + c]. Group g sums the chunks g, g + kReduceGroups, ... in order, then thread row 0
// adds the groups in order. More groups than chunks per thread: the chunk loop is a short chain of loads in
// flight rather than a long latency-bound one.
struct PartialOutputs {
  float* out[3];
};

__global__ void add_column_partials_kernel(const float* partials, int64_t chunks, int64_t cols, int64_t ld,
                                           PartialOutputs outs) {
  __shared__ float group_sums[kReduceGroups][kReduceColumns + 1];
  float* out = outs.out[blockIdx.y];
  if (!out) return;  // the whole block: a column range of an output nobody asked for
  const int64_t c = int64_t(blockIdx.x) * kReduceColumns + threadIdx.x;
  const float* column = partials + int64_t(blockIdx.y) * cols + c;
  float s = 0.0f;
  if (c < cols) {  // unrolled 16 deep: GPT-2's 256 partial rows (16 a group) all in flight at once
#pragma unroll 16
    for (int64_t k = threadIdx.y; k < chunks; k += kReduceGroups) s += column[k * ld];
  }
  group_sums[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y != 0 || c >= cols) return;
  float total = 0.0f;
  for (int g = 0; g < kReduceGroups; ++g) total += group_sums[g][threadIdx.x];
  out[c] += total;
}

void launch_add_column_partials(const float* partials, int64_t chunks, int64_t cols, int64_t ld,
                                PartialOutputs outs, unsigned outputs, cudaStream_t stream) {
  if (cols == 0) return;
  const dim3 block(kReduceColumns, kReduceGroups), grid(grid_for(cols, kReduceColumns), outputs);
  add_column_partials_kernel<<<grid, block, 0, stream>>>(partials, chunks, cols, ld, outs);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

__global__ void add_in_place_kernel(const float* x, float* y, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] += x[i];
}

}  // namespace

void add_in_place(const float* x, float* y, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_in_place_kernel<<<grid_for(n, 256), 256, 0, stream>>>(x, y, n);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

void add_column_partials(const float* partials, int64_t chunks, int64_t cols, int64_t ld, float* out,
                         cudaStream_t stream) {
  launch_add_column_partials(partials, chunks, cols, ld, PartialOutputs{{out, nullptr, nullptr}}, 1, stream);
}

void add_column_partials3(const float* partials, int64_t chunks, int64_t cols, int64_t ld, float* out0,
                          float* out1, float* out2, cudaStream_t stream) {
  if (!out0 && !out1 && !out2) return;
  launch_add_column_partials(partials, chunks, cols, ld, PartialOutputs{{out0, out1, out2}}, 3, stream);
}

size_t bias_grad_partials_floats(int64_t rows, int64_t cols) { return train::bias_grad_partials_floats(rows, cols); }

void bias_grad(const bf16* dy, int64_t rows, int64_t cols, float* partials, float* db, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return;
  const int64_t chunks = chunks_for(rows);
  if (cols % 8 == 0 && reinterpret_cast<uintptr_t>(dy) % 16 == 0) {
    const dim3 grid(grid_for(cols / 8, kColumnThreads), unsigned(chunks));
    column_chunk_sums_kernel<8><<<grid, kColumnThreads, 0, stream>>>(dy, rows, cols, partials);
  } else {
    const dim3 grid(grid_for(cols, kColumnThreads), unsigned(chunks));
    column_chunk_sums_kernel<1><<<grid, kColumnThreads, 0, stream>>>(dy, rows, cols, partials);
  }
  ROOFLINE_CUDA_CHECK_LAUNCH();
  add_column_partials(partials, chunks, cols, cols, db, stream);
}

}  // namespace roofline::train::cuda
