// Sizes of the CUDA training kernels' scratch buffers, in plain C++: the .cu launchers size their partials with
// these, and device_memory_plan.h counts them (so the estimate and the CPU tests see the same bytes).
#pragma once
#include <cstddef>
#include <cstdint>

namespace roofline::train {

constexpr int64_t kNormBackwardRowsPerBlock = 16;  // norm.cu: rows whose weight-gradient partials one block sums
constexpr int64_t kColumnSumRowsPerChunk = 64;     // column_sums.cu: rows per bias-gradient partial
constexpr int64_t kGradNormBlocks = 1024;          // optimizer.cu: per-block partials of the gradient norm
constexpr size_t kTrainGemmWorkspaceBytes = size_t(32) << 20;  // the trainer's cuBLASLt workspace
// bf16 logits of one cross-entropy chunk at most. Few chunks matter: each chunk's LM-head weight-gradient GEMM
// reads and writes the whole f32 dW [V, H] once more (GPT-2: 2 chunks of 8,192 rows instead of 7 of 2,670).
constexpr size_t kLogitsChunkBytes = size_t(1) << 30;

// f32 partials of the norm backward's weight (and bias) gradients: 3 x dim per block of rows.
constexpr size_t norm_backward_partials_floats(int64_t rows, int64_t dim) {
  return size_t((rows + kNormBackwardRowsPerBlock - 1) / kNormBackwardRowsPerBlock * 3 * dim);
}
// f32 partials of a bias gradient (column sums of [rows, cols]): one row per chunk of rows.
constexpr size_t bias_grad_partials_floats(int64_t rows, int64_t cols) {
  return size_t((rows + kColumnSumRowsPerChunk - 1) / kColumnSumRowsPerChunk * cols);
}
// The attention backward's scratch: delta = rowsum(dO * O), f32 [B, Hq, T], rounded up to 256 bytes.
constexpr size_t attention_backward_workspace_bytes(int64_t B, int64_t Hq, int64_t T) {
  const size_t bytes = size_t(B > 0 ? B : 0) * size_t(Hq > 0 ? Hq : 0) * size_t(T > 0 ? T : 0) * sizeof(float);
  return (bytes + 255) / 256 * 256;
}

}  // namespace roofline::train
