// The per-ISA kernel table the CPU backend dispatches through (internal to backend/cpu).
//
// Op drivers (matmul.cpp, attention.cpp, ...) check shapes, split work over the thread pool and call
// these kernels on raw pointers. Each ISA file (*_avx2.cpp, *_avx512.cpp, *_avx512bf16.cpp) fills the
// table of its level; the table is chosen once, when a backend is built (kernels.cpp).
//
// Rule for ISA files: everything they define has internal linkage (anonymous namespace or static) except
// the table getters below, and they call no inline function or template from outside (not even std::min),
// so the linker can never pick an AVX-512 copy of a shared inline function for plain code.
#pragma once
#include <cstddef>
#include <cstdint>

#include "roofline/backend/cpu/cpu_features.h"
#include "roofline/core/dtype.h"

namespace roofline::cpu {

// out[M, N] = x[M, K] · w[N, K]^T (+ bias[N]); every array row-major and contiguous.
struct MatmulProblem {
  const float* x = nullptr;     // [M, K] f32
  const void* w = nullptr;      // [N, K] in w_dtype (F32, F16 or BF16)
  const void* bias = nullptr;   // [N] in bias_dtype, or nullptr
  float* out = nullptr;         // [M, N] f32, never aliases x
  int64_t M = 0, N = 0, K = 0;
  DType w_dtype = DType::F32;
  DType bias_dtype = DType::F32;
};

// One way of running a matmul for one weight dtype. Each level has two: `gemv` for few rows of x (decode,
// memory-bound) and `gemm` for many (prefill, compute-bound).
struct MatmulPath {
  // Bytes of the packed copy of x that `run` reads (0: it reads p.x directly). The layout is the path's
  // own business; pack_x fills it for row blocks [block_begin, block_end) of pack_rows(p) rows of x.
  size_t (*packed_x_bytes)(const MatmulProblem& p) = nullptr;
  int64_t (*pack_rows)(const MatmulProblem& p) = nullptr;
  void (*pack_x)(const MatmulProblem& p, void* packed, int64_t block_begin, int64_t block_end) = nullptr;
  // f32 scratch one `run` call needs (a converted weight tile, transposed output tiles).
  size_t (*scratch_floats)(const MatmulProblem& p) = nullptr;
  // out[:, n_begin:n_end] for every row of x. Calls with disjoint n ranges may run concurrently.
  void (*run)(const MatmulProblem& p, const void* packed, float* scratch, int64_t n_begin, int64_t n_end) = nullptr;
  // n ranges that are multiples of this keep run() on its full-width tiles.
  int64_t n_align = 1;
  // Most weight rows one run() call takes (its scratch holds their output tiles); 0: no limit.
  int64_t max_part_rows = 0;
};

// Index of a weight dtype in MatmulKernels' arrays.
inline int weight_dtype_index(DType dtype) { return dtype == DType::F32 ? 0 : dtype == DType::F16 ? 1 : 2; }

struct MatmulKernels {
  int64_t gemv_max_rows = 8;  // M <= this runs gemv
  MatmulPath gemv[3];         // by weight_dtype_index: F32, F16, BF16
  MatmulPath gemm[3];
};

struct VectorKernels {
  // scores[j] = dot(q[0:d], k[j*k_stride : j*k_stride + d]) for j < count.
  void (*dot_rows)(float* scores, const float* q, const float* k, int64_t k_stride, int64_t count,
                   int64_t d) = nullptr;
  // acc[0:d] += sum_j p[j] * v[j*v_stride : j*v_stride + d] for j < count.
  void (*axpy_rows)(float* acc, const float* p, const float* v, int64_t v_stride, int64_t count,
                    int64_t d) = nullptr;
  // x[i] = exp(x[i] - shift) for i < n; returns the sum of the new x.
  float (*exp_shifted)(float* x, int64_t n, float shift) = nullptr;
  // out[i] = silu(gate[i]) * up[i]; out may alias gate or up.
  void (*silu_mul)(float* out, const float* gate, const float* up, int64_t n) = nullptr;
  // x[i] = gelu_tanh(x[i]) (GPT-2 gelu_new).
  void (*gelu_tanh)(float* x, int64_t n) = nullptr;
  // Reads bytes (a multiple of 4096) from 64-byte aligned data with the widest loads, as `streams`
  // (1, 4 or 8) sequential streams at once with software prefetch 4096 / streams bytes ahead; returns a
  // value that depends on every byte, so the compiler cannot drop the reads.
  float (*read_sum)(const void* data, size_t bytes, int streams) = nullptr;
};

struct CpuKernels {
  CpuIsa isa = CpuIsa::Scalar;
  MatmulKernels matmul;
  VectorKernels vector;
};

// The table of one level; the CPU must support it (cpu_supports), which the caller checks.
const CpuKernels& cpu_kernels(CpuIsa isa);

// Per-level pieces, defined in the ISA files. Call only on a CPU that supports the level.
MatmulKernels matmul_kernels_scalar();
MatmulKernels matmul_kernels_avx2();
MatmulKernels matmul_kernels_avx512();
MatmulKernels matmul_kernels_avx512bf16();
VectorKernels vector_kernels_scalar();
VectorKernels vector_kernels_avx2();
VectorKernels vector_kernels_avx512();

}  // namespace roofline::cpu
