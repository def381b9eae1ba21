// Launchers of the CUDA training kernels (each op's forward and backward live side by side in one .cu file).
// Rules every kernel keeps:
//   - activations are written with `=`, parameter gradients accumulate with `+=` (micro-batches add up);
//   - no floating-point atomics: every sum runs in a fixed order (per-block partials reduced in block
//     order), so the same inputs give the same bits on every run and --resume stays exact;
//   - the residual stream and everything reduced (norm statistics, losses, gradients) is f32; activations
//     that feed GEMMs are bf16.
// Shapes: M = B*T token rows, H hidden, rows are row-major with the given leading dimension.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace roofline::train::cuda {

using bf16 = __nv_bfloat16;

// ---- embedding.cu
// out[m, :] = wte[tokens[m], :] (+ wpe[m % T, :]);  out [M, H] f32.
void embedding_forward(const int32_t* tokens, const float* wte, const float* wpe, float* out, int64_t B, int64_t T,
                       int64_t H, cudaStream_t stream);
// dwte[token, :] += sum of dout rows with that token, dwpe[t, :] += sum over the batch. The rows are grouped
// by token on the host (a CSR: unique_tokens [U], starts [U + 1], rows_by_token [M] ascending within a token),
// so each token's sum is one block's loop in row order.
void embedding_backward(const float* dout, const int32_t* unique_tokens, const int32_t* starts,
                        const int32_t* rows_by_token, int64_t unique_count, float* dwte, float* dwpe, int64_t B,
                        int64_t T, int64_t H, cudaStream_t stream);

// ---- norm.cu
// x [rows, dim] f32 -> y bf16; mean/rstd [rows] kept for backward. b may be null (no bias).
void layernorm_forward(const float* x, const float* w, const float* b, bf16* y, float* mean, float* rstd,
                       int64_t rows, int64_t dim, float eps, cudaStream_t stream);
void rmsnorm_forward(const float* x, const float* w, bf16* y, float* rstd, int64_t rows, int64_t dim, float eps,
                     cudaStream_t stream);
// dy [rows, dim] f32. dx (+)= the input gradient, and dx_bf16 (if not null) = that result in bf16 (the
// operand of the next backward GEMMs); dw (+ db) += via per-block partials in `partials`
// (norm_partials_floats(rows, dim) floats); dx_column_sums (if not null) += the column sums of bf16(dx) (the
// bias gradient of the layer that produced the residual). mean == nullptr: RMSNorm (db must be null).
size_t norm_partials_floats(int64_t rows, int64_t dim);
void norm_backward(const float* dy, const float* x, const float* w, const float* mean, const float* rstd, float* dx,
                   bool accumulate_dx, bf16* dx_bf16, float* dw, float* db, float* dx_column_sums,
                   float* partials, int64_t rows, int64_t dim, cudaStream_t stream);

// ---- column_sums.cu
// db[cols] += column sums of dy [rows, cols] bf16, through bias_grad_partials_floats(rows, cols) floats of
// partials (row chunks summed in order, then the chunks in order: no atomics).
size_t bias_grad_partials_floats(int64_t rows, int64_t cols);
void bias_grad(const bf16* dy, int64_t rows, int64_t cols, float* partials, float* db, cudaStream_t stream);
// out[c] += sum over k < chunks of partials[k * ld + c], in a fixed order (the second stage of per-block partials).
void add_column_partials(const float* partials, int64_t chunks, int64_t cols, int64_t ld, float* out,
                         cudaStream_t stream);
// The same over three adjacent column ranges of each partial row in one launch: out_j[c] += sum over k of
// partials[k * ld + j * cols + c] for each out_j that is not null.
void add_column_partials3(const float* partials, int64_t chunks, int64_t cols, int64_t ld, float* out0,
                          float* out1, float* out2, cudaStream_t stream);

// y[i] += x[i] for i < n (a bias gradient that a GEMM epilogue wrote, into the accumulated one).
void add_in_place(const float* x, float* y, int64_t n, cudaStream_t stream);

// ---- activations.cu
// GELU (tanh form): y = gelu(x) over n elements; backward dx = dy * gelu'(x) (dx may alias dy).
void gelu_forward(const bf16* x, bf16* y, int64_t n, cudaStream_t stream);
void gelu_backward(const bf16* dy, const bf16* x, bf16* dx, int64_t n, cudaStream_t stream);
// SwiGLU on a fused [rows, 2F] gate|up row: h [rows, F] = silu(gate) * up; backward writes [rows, 2F].
void swiglu_forward(const bf16* gate_up, bf16* h, int64_t rows, int64_t F, cudaStream_t stream);
void swiglu_backward(const bf16* dh, const bf16* gate_up, bf16* dgate_up, int64_t rows, int64_t F,
                     cudaStream_t stream);

// ---- rope.cu
// Rotates `heads` head vectors of D per row in place (rotate_half pairing i, i + D/2), row stride ld;
// cos/sin [T, D/2] f32 from the CPU train tables (inference frequencies, every scaling variant).
// sign +1: forward; -1: backward (the inverse rotation applied to the gradient).
void rope_rotate(bf16* x, int64_t ld, const float* cos, const float* sin, int64_t B, int64_t T, int64_t heads,
                 int64_t D, float sign, cudaStream_t stream);

// ---- cross_entropy.cu
// One chunk of rows of bf16 logits [rows, V]: losses[r] = logsumexp - logit[target] (0 where target < 0);
// with write_grad, the logits are replaced in place by dlogits = (softmax - onehot) * grad_scale (0 rows
// where target < 0).
void cross_entropy_rows(bf16* logits, const int32_t* targets, float* losses, int64_t rows, int64_t V,
                        float grad_scale, bool write_grad, cudaStream_t stream);
// *out = sum of values[0..n) in double, in a fixed order (one block).
void sum_in_order(const float* values, int64_t n, double* out, cudaStream_t stream);

// ---- optimizer.cu
void f32_to_bf16(const float* x, bf16* y, int64_t n, cudaStream_t stream);
// *out = sum of g^2 in double (fixed order: per-block partials, then one block over them).
size_t sum_squares_partials(int64_t n);
void sum_squares(const float* g, int64_t n, double* partials, double* out, cudaStream_t stream);
struct AdamWStep {
  float lr_weight_decay = 0;  // lr * weight_decay (applied where decay_mask is 1)
  float beta1 = 0, beta2 = 0, eps = 0;
  float step_size = 0;        // lr / (1 - beta1^t)
  float bias2_sqrt = 0;       // sqrt(1 - beta2^t)
  float grad_coef = 1;        // clipping factor applied to the gradient first
};
// torch.optim.AdamW as the CPU optimizer; also writes the bf16 working copy of every updated weight.
void adamw_update(float* p, bf16* p_bf16, const float* g, float* m, float* v, const uint8_t* decay_mask, int64_t n,
                  const AdamWStep& s, cudaStream_t stream);
void sgd_update(float* p, bf16* p_bf16, const float* g, const uint8_t* decay_mask, int64_t n, float lr,
                float lr_weight_decay, float grad_coef, cudaStream_t stream);

}  // namespace roofline::train::cuda
