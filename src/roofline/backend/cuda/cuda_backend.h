// The CUDA backend (Hopper, sm_90a): the Backend ops on device tensors, plus what a GPU engine needs
// beyond the host-f32 interface (memory, device-resident ids and positions, fused ops, sampling).
// Conventions:
//  - Every tensor an op touches lives on this backend's device (Device::CUDA); a host tensor is a named
//    roofline::Error, never a silent copy. Tensors come from alloc() or upload().
//  - Weights: bf16, f16 or f32. Activations: bf16 by default (f16 and f32 work too); the activation
//    arguments of one op share one dtype; math and accumulation are f32.
//  - KV cache: bf16 [S_max, Hkv, D] per layer per sequence; attention takes bf16 q and out.
//  - Ops are asynchronous on stream(); synchronize() waits. Only download() and the host-pointer
//    variants of embedding/rope (which stage their ids) touch host memory.
//  - Scratch buffers (matmul conversions, staged ids, attention partials) only grow, so steady-state calls
//    do not allocate. One CudaBackend serves one thread of control; it makes its device current at
//    construction (call cudaSetDevice(device_index()) on other threads).
// Plain C++ header: includable from host-only code (only built when ROOFLINE_HAVE_CUDA).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>

#include "roofline/backend/backend.h"
#include "roofline/core/tensor.h"

namespace roofline::cuda {

class CublasLtGemm;

// A device allocation that only grows (its contents are lost when it does).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* ensure(size_t bytes);
  void* data() const { return data_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

using GpuSampling = TokenSampling;

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device_index);
  ~CudaBackend() override;

  std::string name() const override { return "cuda"; }
  Device device() const override { return Device::CUDA; }
  int device_index() const { return device_index_; }
  int multiprocessors() const { return multiprocessors_; }
  cudaStream_t stream() const { return stream_; }
  void synchronize() override;
  DType activation_dtype() const override { return DType::BF16; }
  // Captures body's launches on stream() into a CUDA graph (relaxed capture mode) and returns it for replay.
  std::unique_ptr<RecordedOps> record(const std::function<void()>& body) override;

  // ---- memory ----
  // Uninitialised device memory, freed (cudaFree) when the last Tensor sharing it goes.
  Tensor alloc(DType dtype, Shape shape) override;
  // Copies a host tensor to a new device tensor of dtype `as`, converting f32/f16/bf16 on the way
  // (I32 uploads as I32). Synchronous.
  Tensor upload(const Tensor& host, DType as) override;
  void upload_into(Tensor& dst, const Tensor& host) override;
  // Copies a device tensor into `host` (same shape): converted to f32 when host is F32, else the dtypes
  // must match. Synchronous (waits for the stream first).
  void download(const Tensor& device, Tensor& host) override;
  // Asynchronous on stream(): the bytes are first copied into a pinned staging ring, so src may be reused
  // at once and the copy can overlap queued work.
  void copy_from_host(Tensor& dst, const void* src) override;

  // ---- Backend ops, on device tensors ----
  // out[M, N] = x[M, K] . w[N, K]^T (+ bias[N]). out bf16/f16 (activations) or f32 (logits); x of another
  // dtype than w is converted to w's first; combinations cuBLASLt lacks go through an f32 product.
  void matmul(Tensor& out, const Tensor& x, const Tensor& w, const Tensor* bias) override;
  // One GEMM when the projections are laid out back to back (weights, biases and outputs each adjacent in
  // memory, as upload_weights and the decoder arrange them) and x is one row: a decode step's q/k/v and
  // gate/up then cost one launch each. Otherwise one matmul per target.
  void matmul_many(const Tensor& x, std::span<const MatmulTarget> targets) override;
  // One gemv with SwiGLU as its epilogue when x is a single row and gate, up (and their biases) are adjacent
  // in memory (upload_weights places them so); otherwise the default (matmul_many, then silu_mul).
  void matmul_swiglu(const Tensor& x, const MatmulTarget& gate, const MatmulTarget& up) override;
  // The decode step's norms and residual adds folded into the projections:
  //  - rms_norm_matmul_*: where every projection is a gemv (the adjacent ones joined as matmul_many and
  //    matmul_swiglu join them), each CTA normalises the f32 residual row itself; *in.normed stays unwritten.
  //    Otherwise the default (rms_norm, then the projections).
  //  - matmul_add: the gemv adds into the f32 residual in its epilogue; larger M runs cuBLASLt with beta 1
  //    (bias-free; with a bias, the default).
  void rms_norm_matmul_many(const RmsNormInput& in, std::span<const MatmulTarget> targets) override;
  void rms_norm_matmul_swiglu(const RmsNormInput& in, const MatmulTarget& gate, const MatmulTarget& up) override;
  void matmul_add(Tensor& residual, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& scratch) override;
  // ids: HOST int32 [count] (checked, then staged to the device); the table is on the device.
  void embedding(Tensor& out, const Tensor& table, const int32_t* ids, int64_t count) override;
  void rms_norm(Tensor& out, const Tensor& x, const Tensor& weight, float eps) override;
  void layer_norm(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) override;
  void add(Tensor& inout, const Tensor& x) override;
  void add_row(Tensor& inout, int64_t t, const Tensor& table, int64_t row) override;
  // positions: HOST int32 [T] (checked, then staged); cos/sin: device f32 [max_positions, rotary_dim / 2].
  void rope(Tensor& x, const int32_t* positions, const Tensor& cos, const Tensor& sin, int rotary_dim) override;
  void silu_mul(Tensor& out, const Tensor& gate, const Tensor& up) override;
  void gelu_tanh(Tensor& x) override;
  // bf16 q/out [T, Hq, D] and caches [S_max, Hkv, D], D in {16, 32, 64, 128}: the paged kernels with the cache
  // as one block; the decode kernel for T <= 4, else the prefill kernel.
  void attention(Tensor& out, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                 const AttentionParams& params) override;

  // ---- device-resident ids and positions (no host round trip) ----
  // out[T, H] = table[ids[t], :]; ids: device I32 [T]. An id outside the table gives a NaN row.
  void embedding(Tensor& out, const Tensor& table, const Tensor& ids) override;
  // inout[t, :] += table[rows[t], :]; rows: device I32 [T] (learned position embeddings in one launch).
  void add_rows(Tensor& inout, const Tensor& table, const Tensor& rows) override;
  // Rope with device I32 positions [T]; with head_norm ([head_dim]), each head row is first RMS-normalised
  // and scaled (Qwen3's q_norm / k_norm), in the same pass. A position outside the table gives NaN.
  void rope(Tensor& x, const Tensor& positions, const Tensor& cos, const Tensor& sin, int rotary_dim,
            const Tensor* head_norm = nullptr, float eps = 1e-6f) override;
  // out[i, :] = x[rows[i], :]; rows: device I32.
  void gather_rows(Tensor& out, const Tensor& x, const Tensor& rows) override;

  // ---- fused and extra ops ----
  // residual += x; out = rms_norm(residual) * weight (residual rounded to its dtype first).
  void add_rms_norm(Tensor& residual, const Tensor& x, const Tensor& weight, Tensor& out, float eps) override;
  // residual += x; out = layer_norm(residual) * weight + bias.
  void add_layer_norm(Tensor& residual, const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& out,
                      float eps) override;

  // ---- paged KV (Backend::store_kv / paged_attention): pools [num_blocks, block_size, Hkv, D], bf16 or
  // F8E4M3 with scales (KvScales) ----
  // Pools of any float dtype (k, v of the pools' dtype), or F8E4M3 pools from bf16 k, v (quantized per
  // (token, kv head) vector); a slot < 0 or past the pool is skipped.
  void store_kv(Tensor& k_pool, Tensor& v_pool, const Tensor& k, const Tensor& v, const Tensor& slots,
                const KvScales& scales = {}) override;
  // One kernel for bf16 pools; an F8E4M3 pool takes the default's three calls (the fused kernel does not
  // quantize yet).
  void rope_store_kv(Tensor& q, Tensor& k, const Tensor& v, const RotaryStep& rotary, Tensor& k_pool, Tensor& v_pool,
                     const Tensor& slots, const KvScales& scales = {}) override;
  // D in {16, 32, 64, 128}, scale > 0: the split-K decode kernel when max_query_len <= 16, else the varlen flash
  // prefill kernel. Launches depend on the batch's bounds only (CUDA-graph safe); the workspace grows on the
  // first call with new bounds, so make one eager call before recording.
  void paged_attention(Tensor& out, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                       const PagedAttentionBatch& batch) override;
  // out = in converted to out's dtype (same element count).
  void convert(Tensor& out, const Tensor& in) override;
  // The two attention paths of attention(), callable directly (decode: T <= 16).
  void attention_prefill(Tensor& out, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                         const AttentionParams& params);
  void attention_decode(Tensor& out, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                        const AttentionParams& params);

  // ---- token selection: logits [B, V] f32/bf16/f16 -> ids device I32 [B] ----
  void argmax(Tensor& ids, const Tensor& logits) override;
  // temperature <= 0 or top_k == 1: argmax.
  void sample(Tensor& ids, const Tensor& logits, const GpuSampling& params) override;

 private:
  const int32_t* stage_ids(const char* op, const int32_t* host, int64_t count);
  void matmul_into(Tensor& out, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor* accumulate_scratch);

  int device_index_ = 0;
  int multiprocessors_ = 0;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<CublasLtGemm> gemm_;
  DeviceBuffer staged_ids_;                             // host ids / positions copied for one op
  DeviceBuffer matmul_x_, matmul_out_, matmul_bias_;    // matmul dtype conversions
  DeviceBuffer attention_workspace_;                    // flash-decoding partials
  DeviceBuffer paged_workspace_;                        // paged flash-decoding partials
  void* pinned_staging_ = nullptr;                      // copy_from_host ring (pinned)
  size_t pinned_bytes_ = 0, pinned_head_ = 0;
};

// Throws roofline::Error when no CUDA device has that index (or none is present).
std::unique_ptr<CudaBackend> make_cuda_backend(int device_index = 0);

}  // namespace roofline::cuda
