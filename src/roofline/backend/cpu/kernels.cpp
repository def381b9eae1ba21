#include "roofline/backend/cpu/kernels.h"

#include "roofline/core/error.h"

namespace roofline::cpu {

namespace {
CpuKernels build(CpuIsa isa) {
  CpuKernels k;
  k.isa = isa;
  switch (isa) {
    case CpuIsa::Scalar:
      k.matmul = matmul_kernels_scalar();
      k.vector = vector_kernels_scalar();
      break;
    case CpuIsa::Avx2:
      k.matmul = matmul_kernels_avx2();
      k.vector = vector_kernels_avx2();
      break;
    case CpuIsa::Avx512:
      k.matmul = matmul_kernels_avx512();
      k.vector = vector_kernels_avx512();
      break;
    case CpuIsa::Avx512Bf16:
      // The BF16 dot-product instructions only help the bf16 matmul; the rest is plain AVX-512.
      k.matmul = matmul_kernels_avx512bf16();
      k.vector = vector_kernels_avx512();
      break;
  }
  return k;
}
}  // namespace

const CpuKernels& cpu_kernels(CpuIsa isa) {
  ROOFLINE_CHECK(cpu_supports(isa), "cpu backend: this CPU cannot run the {} kernels", cpu_isa_to_string(isa));
  // One immutable table per level, built on first use (only for levels the CPU has).
  switch (isa) {
    case CpuIsa::Scalar: { static const CpuKernels t = build(CpuIsa::Scalar); return t; }
    case CpuIsa::Avx2: { static const CpuKernels t = build(CpuIsa::Avx2); return t; }
    case CpuIsa::Avx512: { static const CpuKernels t = build(CpuIsa::Avx512); return t; }
    case CpuIsa::Avx512Bf16: { static const CpuKernels t = build(CpuIsa::Avx512Bf16); return t; }
  }
  fail("cpu backend: unknown ISA level {}", int(isa));
}

}  // namespace roofline::cpu
