#include "roofline/perf/workload.h"

#include "roofline/core/error.h"
#include "roofline/model/model_spec.h"

namespace roofline::perf {

std::string_view to_string(WorkloadKind kind) {
  switch (kind) {
    case WorkloadKind::Decode: return "decode";
    case WorkloadKind::Prefill: return "prefill";
    case WorkloadKind::Train: return "train";
  }
  return "?";
}

std::string_view to_string(WeightDType dtype) {
  switch (dtype) {
    case WeightDType::BF16: return "bf16";
    case WeightDType::FP8: return "fp8";
    case WeightDType::INT8: return "int8";
    case WeightDType::INT4: return "int4";
    case WeightDType::F32: return "f32";
    case WeightDType::F16: return "f16";
  }
  return "?";
}

std::string_view to_string(StorageDType dtype) {
  switch (dtype) {
    case StorageDType::BF16: return "bf16";
    case StorageDType::F32: return "f32";
    case StorageDType::F16: return "f16";
    case StorageDType::FP8: return "fp8";
  }
  return "?";
}

double bytes_of(StorageDType dtype) {
  switch (dtype) {
    case StorageDType::F32: return 4;
    case StorageDType::FP8: return 1;
    default: return 2;
  }
}

bool parse_storage_dtype(std::string_view name, StorageDType* out) {
  for (StorageDType d : {StorageDType::BF16, StorageDType::F32, StorageDType::F16, StorageDType::FP8})
    if (name == to_string(d)) return *out = d, true;
  return false;
}

bool parse_workload_kind(std::string_view name, WorkloadKind* out) {
  for (WorkloadKind k : {WorkloadKind::Decode, WorkloadKind::Prefill, WorkloadKind::Train})
    if (name == to_string(k)) return *out = k, true;
  return false;
}

bool parse_weight_dtype(std::string_view name, WeightDType* out) {
  for (WeightDType d : {WeightDType::BF16, WeightDType::FP8, WeightDType::INT8, WeightDType::INT4, WeightDType::F32,
                        WeightDType::F16})
    if (name == to_string(d)) return *out = d, true;
  return false;
}

void validate(const Workload& w, const ModelSpec& spec) {
  ROOFLINE_CHECK(w.batch >= 1, "--batch {}: must be at least 1", w.batch);
  ROOFLINE_CHECK(w.seq >= 1, "--seq {}: must be at least 1", w.seq);
  ROOFLINE_CHECK(w.context >= 0, "--context {}: must be 0 or more", w.context);
  ROOFLINE_CHECK(w.tp >= 1, "--tp {}: must be at least 1", w.tp);
  ROOFLINE_CHECK(w.dp >= 1, "--dp {}: must be at least 1", w.dp);
  ROOFLINE_CHECK(w.zero >= 0 && w.zero <= 3, "--zero {}: ZeRO stages are 0, 1, 2 and 3", w.zero);
  ROOFLINE_CHECK(w.batch % w.dp == 0, "--batch {} is not divisible by --dp {} (each replica takes batch/dp sequences)",
                 w.batch, w.dp);
  const bool train = w.kind == WorkloadKind::Train;
  ROOFLINE_CHECK(train || w.zero == 0, "--zero {}: ZeRO shards training state; it applies to --workload train only",
                 w.zero);
  ROOFLINE_CHECK(train || !w.checkpointing, "--checkpointing applies to --workload train only");
  ROOFLINE_CHECK(w.threads >= 0, "--threads {}: must be at least 1", w.threads);
  ROOFLINE_CHECK(train || w.threads == 0, "--threads applies to --workload train only (the CPU trainer's threads)");
  ROOFLINE_CHECK(!train || w.weights == WeightDType::BF16,
                 "--dtype {}: training is modelled in bf16 (fp32 master weights); use --dtype bf16",
                 to_string(w.weights));
  ROOFLINE_CHECK(w.activations != StorageDType::FP8,
                 "--activation-dtype fp8: activations are modelled in f32, bf16 or f16 (fp8 applies to weights "
                 "with --dtype fp8 and to the KV cache with --kv-dtype fp8)");
  ROOFLINE_CHECK(!train || (w.activations == StorageDType::BF16 && w.kv_cache == StorageDType::BF16),
                 "training is modelled with bf16 activations; use --activation-dtype bf16 --kv-dtype bf16");
  ROOFLINE_CHECK(!train || w.context == 0, "--context {}: training steps start from an empty context", w.context);
  ROOFLINE_CHECK(spec.num_layers > 0 && spec.hidden_size > 0 && spec.num_heads > 0 && spec.head_dim > 0 &&
                     spec.num_kv_heads > 0 && spec.intermediate_size > 0 && spec.vocab_size > 0,
                 "model spec '{}' has a zero dimension", spec.architecture);
  ROOFLINE_CHECK(spec.num_heads % w.tp == 0, "--tp {}: the model's {} attention heads do not split evenly", w.tp,
                 spec.num_heads);
  ROOFLINE_CHECK(spec.num_kv_heads % w.tp == 0 || w.tp % spec.num_kv_heads == 0,
                 "--tp {}: the model's {} KV heads neither split evenly nor replicate evenly", w.tp,
                 spec.num_kv_heads);
  ROOFLINE_CHECK(spec.intermediate_size % w.tp == 0, "--tp {}: the MLP width {} does not split evenly", w.tp,
                 spec.intermediate_size);
}

}  // namespace roofline::perf
