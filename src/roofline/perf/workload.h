// One step of work the analytic model prices: what runs (decode, prefill, train), on how many sequences
// and tokens, with which weight format, spread over how many devices. Everything in perf/ is per device
// and per step unless a name says otherwise.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace roofline {
struct ModelSpec;
}

namespace roofline::perf {

enum class WorkloadKind { Decode, Prefill, Train };

// How linear-layer weights are stored. Norms, biases and the embedding table are f32 with f32 weights and
// bf16 with every other format (a checkpoint's own f16 or bf16, or bf16 beside quantised matrices).
//  - bf16, f16: 2 bytes per weight, 16-bit tensor-core matmuls.
//  - f32:  4 bytes per weight (an f32 checkpoint run as stored, as the CPU engine does).
//  - fp8:  1 byte (+ one scale per tensor), activations fp8 too (W8A8): matmuls run at the fp8 peak.
//  - int8: 1 byte + one bf16 scale per output row, weight-only: dequantised, bf16 matmuls.
//  - int4: 0.5 byte + one bf16 scale per 128 weights of a row (group quantisation), weight-only.
enum class WeightDType { BF16, FP8, INT8, INT4, F32, F16 };

// How activations (between ops) and KV cache entries are stored: the CUDA engine keeps both in bf16 (the KV
// cache optionally in fp8, e4m3 with per-vector scales), the CPU engine in f32.
enum class StorageDType { BF16, F32, F16, FP8 };
double bytes_of(StorageDType dtype);

struct Workload {
  WorkloadKind kind = WorkloadKind::Decode;
  int64_t batch = 1;    // sequences in the step, all devices together (each data-parallel replica takes batch/dp)
  int64_t seq = 1;      // new tokens per sequence in this step (decode: 1, or k+1 when verifying a draft)
  int64_t context = 0;  // tokens per sequence already in the KV cache before the step
  WeightDType weights = WeightDType::BF16;
  StorageDType activations = StorageDType::BF16;  // never fp8
  StorageDType kv_cache = StorageDType::BF16;
  int tp = 1;           // tensor parallel (Megatron-style: heads, ffn columns and vocab split over tp)
  int dp = 1;           // data parallel replicas
  int zero = 0;         // train: ZeRO stage 0..3 (1: optimizer state, 2: + gradients, 3: + parameters sharded over dp)
  bool checkpointing = false;  // train: keep only each layer's input, recompute the layer in backward
  // Count the masked half of causal attention as if computed. Off: the FLOPs a causal kernel executes.
  // On: the PaLM / nanoGPT MFU convention (6N + 12·L·H·Q·T per token), for comparing with published MFU.
  bool dense_causal_flops = false;
  // train on a CPU: the threads the CPU trainer runs (each keeps its own attention scores and GEMM panels);
  // 0: one per hardware thread, as `roofline train --device cpu` runs by default.
  int threads = 0;

  int64_t batch_per_replica() const { return batch / dp; }
  int64_t tokens_per_replica() const { return batch_per_replica() * seq; }
};

std::string_view to_string(WorkloadKind kind);
std::string_view to_string(WeightDType dtype);
// "decode" | "prefill" | "train"; false when unknown.
bool parse_workload_kind(std::string_view name, WorkloadKind* out);
// "bf16" | "fp8" | "int8" | "int4" | "f32" | "f16"; false when unknown.
bool parse_weight_dtype(std::string_view name, WeightDType* out);
std::string_view to_string(StorageDType dtype);
// "bf16" | "f32" | "f16" | "fp8"; false when unknown.
bool parse_storage_dtype(std::string_view name, StorageDType* out);

// Throws roofline::Error naming the bad field and what is allowed: batch/seq >= 1, context >= 0, tp/dp >= 1,
// zero in 0..3 and only for train, batch divisible by dp, heads and ffn divisible by tp, train in bf16 only.
void validate(const Workload& workload, const ModelSpec& spec);

}  // namespace roofline::perf
