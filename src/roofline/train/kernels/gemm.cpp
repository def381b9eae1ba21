#include "roofline/train/kernels/gemm.h"

#include "roofline/backend/cpu/cpu_features.h"
#include "roofline/core/error.h"

namespace roofline::train {
namespace {

using GemmFn = void (*)(ThreadPool*, const GemmArgs&);

GemmFn select() {
  switch (select_cpu_isa()) {
    case CpuIsa::Avx512:
    case CpuIsa::Avx512Bf16: return gemm_avx512;
    case CpuIsa::Avx2: return gemm_avx2;
    default: return gemm_scalar;
  }
}

}  // namespace

void gemm(ThreadPool* pool, const GemmArgs& args) {
  static const GemmFn fn = select();
  ROOFLINE_CHECK(args.M >= 0 && args.N >= 0 && args.K >= 0, "gemm: negative shape {}x{}x{}", args.M, args.N, args.K);
  fn(pool, args);
}

}  // namespace roofline::train
