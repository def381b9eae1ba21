#include "roofline/train/kernels/gemm.h"

#include "roofline/backend/cpu/cpu_features.h"
#include "roofline/core/error.h"

namespace roofline::train {
namespace {

using GemmFn = void (*)(ThreadPool*, const GemmArgs&);
using PackingFn = GemmPacking (*)();

struct GemmIsa {
  GemmFn run;
  PackingFn packing;
};

GemmIsa select() {
  switch (select_cpu_isa()) {
    case CpuIsa::Avx512:
    case CpuIsa::Avx512Bf16: return {gemm_avx512, gemm_avx512_packing};
    case CpuIsa::Avx2: return {gemm_avx2, gemm_avx2_packing};
    default: return {gemm_scalar, gemm_scalar_packing};
  }
}

const GemmIsa& selected() {
  static const GemmIsa isa = select();
  return isa;
}

}  // namespace

void gemm(ThreadPool* pool, const GemmArgs& args) {
  static const GemmFn fn = selected().run;
  ROOFLINE_CHECK(args.M >= 0 && args.N >= 0 && args.K >= 0, "gemm: negative shape {}x{}x{}", args.M, args.N, args.K);
  fn(pool, args);
}

GemmPacking gemm_packing() { return selected().packing(); }

}  // namespace roofline::train
