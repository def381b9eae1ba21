// The SIMD matmul, written once over an ISA trait and instantiated by matmul_avx2.cpp and
// matmul_avx512.cpp. Include it only from those files, after simd_*.h: everything here lives in an
// anonymous namespace, so every instantiation is private to its ISA file (see kernels.h).
//
// out[M, N] = x[M, K] · w[N, K]^T (+ bias[N]), w in f32, f16 or bf16, f32 accumulation.
//
// gemv (M <= 8, decode) is memory-bound: the goal is to stream w at the machine's read bandwidth.
//   - x is packed once per call, zero-padded to whole 32-element chunks, in the order the weight loader
//     produces lanes. For bf16 that order is "even elements, then odd elements" of each group of
//     2 x width: a 32-bit lane holding the pair (w[2i], w[2i+1]) gives w[2i] as f32 by a 16-bit left
//     shift and w[2i+1] by masking the low half, two cheap ALU ops and no shuffle; x is permuted to match,
//     which leaves every dot product unchanged.
//   - A tile of NR weight rows is walked 32 elements at a time (one 64-byte line per bf16/f16 row) with
//     MR x NR accumulators, reduced at the end.
//   - Software prefetch in each row's stream, 512 bytes ahead into L1 and 2 KiB ahead into L2, where a
//     row's stream continues at the same row of the next tile once this row ends (rows are contiguous,
//     so that is row j + NR). Measured on the Sapphire Rapids dev box (bf16, GB/s; best streaming read
//     about 16 on one thread, 29-31 on two):
//                                         K=2048 N=8192      K=768 N=50304
//       no prefetch, 1 thread                  12.5               -
//       in-row only (512 B), 1 thread       13.2-14.6            13.4
//       wrapped 512 B, 1 / 2 threads        14.2 / 26.3        13.9 / 25.5
//       wrapped 512 B + 2 KiB L2, 1 / 2         - / 27.5       15.3 / 28.1
//     In-row prefetch wastes its lookahead on short rows; the L2 prefetch keeps more lines in flight
//     than the L1 fill buffers allow.
//
// gemm (M > 8, prefill) is compute-bound, BLIS-style outer products:
//   - x is packed once into blocks of two vectors' worth of rows (32 on AVX-512, 16 on AVX2), transposed
//     so one k gives two vectors of rows: [block][Kpad][rows].
//   - For each tile of kTileN weight rows and each K block of kBlockK, the weights are converted to f32
//     into [kBlockK/width][kTileN][width] (one vector store per converted vector; 12 KiB, stays in L1)
//     and broadcast one element at a time.
//   - The register tile is kTileN x (2 vectors): 2 x kTileN accumulators, 2 x kTileN FMAs per k for two
//     vector loads and kTileN broadcasts. It holds out's transpose, so it accumulates in scratch across K
//     blocks and is written to out (plus bias) once per row chunk.
//   - Loop order per run (at most kPartRows weight rows): row chunks of kChunkRows, then K blocks, then
//     weight tiles, then row blocks: the chunk's slice of packed x stays in L2 across all tiles, each
//     converted tile serves the whole chunk.
#pragma once
#include <cstdint>

#include "roofline/backend/cpu/kernels.h"

namespace roofline::cpu {
namespace {
namespace matmul_impl {

constexpr int64_t kChunk = 32;               // weight elements per gemv step (64 bytes of bf16)
constexpr int64_t kPrefetchNearBytes = 512;  // gemv prefetch distances in each row's stream: to L1
constexpr int64_t kPrefetchFarBytes = 2048;  // and to L2
constexpr int64_t kBlockK = 256;             // gemm K block
constexpr int64_t kChunkRows = 512;          // gemm rows of x per chunk (a multiple of every block_rows)
constexpr int64_t kPartRows = 96;            // gemm most weight rows per run() (a multiple of every kTileN)

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

// ---------------------------------------------------------------------------------------------------
// gemv

// x packed for the gemv: [M][round_up(K, 32)] in the loader's lane order, zero past K.
template <class V, class W>
void gemv_pack_x(const MatmulProblem& p, void* packed, int64_t row_begin, int64_t row_end) {
  constexpr int64_t width = V::kWidth;
  const int64_t kp = round_up(p.K, kChunk);
  for (int64_t m = row_begin; m < row_end; ++m) {
    const float* src = p.x + m * p.K;
    float* dst = static_cast<float*>(packed) + m * kp;
    for (int64_t k = 0; k < kp; ++k) dst[k] = 0.0f;
    if (W::kEvenOdd) {  // each group of 2*width: [even elements][odd elements]
      for (int64_t k = 0; k < p.K; ++k) {
        const int64_t group = k / (2 * width), i = k % (2 * width);
        dst[group * 2 * width + (i % 2) * width + i / 2] = src[k];
      }
    } else {
      for (int64_t k = 0; k < p.K; ++k) dst[k] = src[k];
    }
  }
}

template <class V, class W, int MR, int NR>
void gemv_tile(const MatmulProblem& p, const float* xp, int64_t n) {
  using F = typename V::F;
  using T = typename W::T;
  constexpr int kVecs = int(kChunk / V::kWidth);                 // vectors per 32-element chunk
  constexpr int kLines = int(kChunk * int64_t(sizeof(T)) / 64);  // cache lines per row per step
  const int64_t K = p.K, kp = round_up(K, kChunk), full = K / kChunk * kChunk;
  const T* w = static_cast<const T*>(p.w) + n * K;
  // Prefetch positions in row j's stream, as (tiles ahead, column): the stream continues at row j of
  // the next tile, NR rows further on.
  constexpr int64_t kNear = kPrefetchNearBytes / int64_t(sizeof(T)), kFar = kPrefetchFarBytes / int64_t(sizeof(T));
  int64_t near_tile = kNear / K, near_col = kNear % K, far_tile = kFar / K, far_col = kFar % K;

  F acc[MR][NR];
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < NR; ++j) acc[m][j] = V::zero();
  for (int64_t k = 0; k < full; k += kChunk) {
    const char* near = reinterpret_cast<const char*>(w + near_tile * NR * K + near_col);
    const char* far = reinterpret_cast<const char*>(w + far_tile * NR * K + far_col);
    for (int j = 0; j < NR; ++j)
      for (int l = 0; l < kLines; ++l) {
        _mm_prefetch(near + j * K * int64_t(sizeof(T)) + 64 * l, _MM_HINT_T0);
        _mm_prefetch(far + j * K * int64_t(sizeof(T)) + 64 * l, _MM_HINT_T1);
      }
    near_col += kChunk;  // K >= kChunk here, so one step never skips a whole row
    if (near_col >= K) near_col -= K, ++near_tile;
    far_col += kChunk;
    if (far_col >= K) far_col -= K, ++far_tile;
    for (int j = 0; j < NR; ++j) {
      F wv[kVecs];
      W::load_chunk(w + j * K + k, wv);
      for (int m = 0; m < MR; ++m)
        for (int v = 0; v < kVecs; ++v) acc[m][j] = V::fmadd(V::load(xp + m * kp + k + v * V::kWidth), wv[v], acc[m][j]);
    }
  }
  if (full < K) {  // last partial chunk: the loader zero-fills past K, x is zero there too
    for (int j = 0; j < NR; ++j) {
      F wv[kVecs];
      W::load_chunk_partial(w + j * K + full, K - full, wv);
      for (int m = 0; m < MR; ++m)
        for (int v = 0; v < kVecs; ++v)
          acc[m][j] = V::fmadd(V::load(xp + m * kp + full + v * V::kWidth), wv[v], acc[m][j]);
    }
  }
  for (int j = 0; j < NR; ++j) {
    const float bias = p.bias ? V::load_scalar(p.bias_dtype, p.bias, n + j) : 0.0f;
    for (int m = 0; m < MR; ++m) p.out[m * p.N + n + j] = V::hsum(acc[m][j]) + bias;
  }
}

template <class V, class W, int MR, int NR>
void gemv_range(const MatmulProblem& p, const float* xp, int64_t n_begin, int64_t n_end) {
  int64_t n = n_begin;
  for (; n + NR <= n_end; n += NR) gemv_tile<V, W, MR, NR>(p, xp, n);
  for (; n < n_end; ++n) gemv_tile<V, W, MR, 1>(p, xp, n);
}

// Weight rows per tile for MR rows of x come from the trait (V::gemv_rows), sized to its registers.
template <class V, class W>
void gemv_run(const MatmulProblem& p, const void* packed, float*, int64_t n_begin, int64_t n_end) {
  const auto* xp = static_cast<const float*>(packed);
  switch (p.M) {
    case 1: return gemv_range<V, W, 1, V::kGemvRows[1]>(p, xp, n_begin, n_end);
    case 2: return gemv_range<V, W, 2, V::kGemvRows[2]>(p, xp, n_begin, n_end);
    case 3: return gemv_range<V, W, 3, V::kGemvRows[3]>(p, xp, n_begin, n_end);
    case 4: return gemv_range<V, W, 4, V::kGemvRows[4]>(p, xp, n_begin, n_end);
    case 5: return gemv_range<V, W, 5, V::kGemvRows[5]>(p, xp, n_begin, n_end);
    case 6: return gemv_range<V, W, 6, V::kGemvRows[6]>(p, xp, n_begin, n_end);
    case 7: return gemv_range<V, W, 7, V::kGemvRows[7]>(p, xp, n_begin, n_end);
    case 8: return gemv_range<V, W, 8, V::kGemvRows[8]>(p, xp, n_begin, n_end);
    default: return;  // the driver sends M <= gemv_max_rows only
  }
}

inline size_t gemv_packed_bytes(const MatmulProblem& p) { return size_t(p.M * round_up(p.K, kChunk)) * 4; }
inline int64_t one_row(const MatmulProblem&) { return 1; }
inline size_t no_scratch(const MatmulProblem&) { return 0; }

// ---------------------------------------------------------------------------------------------------
// gemm

template <class V>
constexpr int64_t block_rows() { return 2 * V::kWidth; }  // rows of x per packed block: two vectors
template <class V>
constexpr int64_t chunk_blocks() { return kChunkRows / block_rows<V>(); }
template <class V>
constexpr int64_t part_tiles() { return kPartRows / V::kTileN; }

// K padded to whole vectors, so weight tiles convert whole vectors and x is zero in the padding.
template <class V>
int64_t padded_k(const MatmulProblem& p) { return round_up(p.K, V::kWidth); }
template <class V>
int64_t row_blocks(const MatmulProblem& p) { return (p.M + block_rows<V>() - 1) / block_rows<V>(); }

template <class V>
size_t gemm_packed_bytes(const MatmulProblem& p) {
  return size_t(row_blocks<V>(p) * padded_k<V>(p) * block_rows<V>()) * 4;
}
template <class V>
int64_t gemm_pack_rows(const MatmulProblem&) { return block_rows<V>(); }

// packed[mb][k][r] = x[mb*R + r][k], zero past M and K. Goes 16 k at a time so the block being written
// stays in L1 while R rows of x are read.
template <class V>
void gemm_pack_x(const MatmulProblem& p, void* packed, int64_t block_begin, int64_t block_end) {
  constexpr int64_t R = block_rows<V>();
  const int64_t K = p.K, k_pad = padded_k<V>(p);
  for (int64_t mb = block_begin; mb < block_end; ++mb) {
    float* dst = static_cast<float*>(packed) + mb * k_pad * R;
    for (int64_t k0 = 0; k0 < k_pad; k0 += 16) {
      const int64_t kn = min64(16, k_pad - k0);
      for (int64_t r = 0; r < R; ++r) {
        const int64_t m = mb * R + r;
        const float* src = p.x + m * K + k0;
        for (int64_t kk = 0; kk < kn; ++kk) dst[(k0 + kk) * R + r] = (m < p.M && k0 + kk < K) ? src[kk] : 0.0f;
      }
    }
  }
}

// Scratch of one run: a converted weight tile and the output tiles of one row chunk of the part.
template <class V>
size_t gemm_scratch_floats(const MatmulProblem&) {
  return size_t(V::kTileN * kBlockK + part_tiles<V>() * chunk_blocks<V>() * V::kTileN * block_rows<V>());
}

// Prefetches (to L2) the weight block pack_weight_tile reads next: the next tile of the part at the same
// K block, or the first tile at the next K block. Rows of a power-of-two width are 4 KiB apart and
// would fight over one L1 set; twelve rows read a few lines each are not a stream the hardware
// prefetcher follows.
template <class V, class W>
void prefetch_weight_block(const MatmulProblem& p, int64_t n, int64_t n_end, int64_t k0) {
  using T = typename W::T;
  if (k0 >= p.K) return;
  const int64_t rows = min64(V::kTileN, n_end - n), bytes = min64(kBlockK, p.K - k0) * int64_t(sizeof(T));
  for (int64_t j = 0; j < rows; ++j) {
    const char* row = reinterpret_cast<const char*>(static_cast<const T*>(p.w) + (n + j) * p.K + k0);
    for (int64_t b = 0; b < bytes; b += 64) _mm_prefetch(row + b, _MM_HINT_T1);
  }
}

// wt[k/width][j][k%width] = w[n + j][k0 + k] as f32 for k < kc (a multiple of width): one vector store
// per converted vector. Zero for rows past `rows` and columns past K.
template <class V, class W>
void pack_weight_tile(const MatmulProblem& p, int64_t n, int64_t rows, int64_t k0, int64_t kc, float* wt) {
  using T = typename W::T;
  constexpr int64_t width = V::kWidth, tile = V::kTileN;
  const T* src = static_cast<const T*>(p.w) + n * p.K + k0;
  const int64_t full = min64(kc, (p.K - k0) / width * width);  // whole vectors inside K
  for (int64_t k = 0; k < kc; k += width) {
    float* dst = wt + k * tile;  // [tile][width], written in order
    if (k < full && rows == tile) {
      for (int64_t j = 0; j < tile; ++j) V::store(dst + j * width, W::load_vector(src + j * p.K + k));
    } else {
      const int64_t valid = min64(width, p.K - (k0 + k));
      for (int64_t j = 0; j < tile; ++j)
        V::store(dst + j * width, (j < rows && valid > 0) ? W::load_vector(src + j * p.K + k, valid) : V::zero());
    }
  }
}

// ct[j][r] (+)= sum_k wt[k/width][j][k%width] * xp[k][r] for k < kc (a multiple of width), r < R.
template <class V>
void micro_tile(const float* xp, const float* wt, int64_t kc, float* ct, bool accumulate) {
  using F = typename V::F;
  constexpr int64_t R = block_rows<V>(), tile = V::kTileN, width = V::kWidth;
  F c[tile][2];
  for (int j = 0; j < tile; ++j) {
    c[j][0] = accumulate ? V::load(ct + j * R) : V::zero();
    c[j][1] = accumulate ? V::load(ct + j * R + width) : V::zero();
  }
  for (int64_t k = 0; k < kc; k += width) {
    const float* wk = wt + k * tile;  // [tile][width] for k .. k + width
    for (int kk = 0; kk < width; ++kk) {
      const F a0 = V::load(xp + (k + kk) * R);
      const F a1 = V::load(xp + (k + kk) * R + width);
      for (int j = 0; j < tile; ++j) {
        const F b = V::broadcast(wk + j * width + kk);
        c[j][0] = V::fmadd(a0, b, c[j][0]);
        c[j][1] = V::fmadd(a1, b, c[j][1]);
      }
    }
  }
  for (int j = 0; j < tile; ++j) {
    V::store(ct + j * R, c[j][0]);
    V::store(ct + j * R + width, c[j][1]);
  }
}

// out[:, n_begin:n_end] for n_end - n_begin <= kPartRows. Rows of x go in chunks of kChunkRows; per chunk,
// K blocks are outermost, so the chunk's slice of packed x ([rows][kBlockK], 256 KiB on AVX-512) stays
// in L2 while every weight tile of the part passes by, and each converted weight tile (in L1) serves
// every row block of the chunk. The output tiles accumulate in scratch across K blocks.
template <class V, class W>
void gemm_run(const MatmulProblem& p, const void* packed, float* scratch, int64_t n_begin, int64_t n_end) {
  constexpr int64_t R = block_rows<V>(), tile = V::kTileN, chunk = chunk_blocks<V>();
  const int64_t k_pad = padded_k<V>(p), blocks = row_blocks<V>(p);
  const int64_t tiles = (n_end - n_begin + tile - 1) / tile;
  const float* xp = static_cast<const float*>(packed);
  float* wt = scratch;                   // [kBlockK/width][tile][width]
  float* ct = scratch + tile * kBlockK;  // [part tiles][chunk blocks][tile][R]
  for (int64_t mb0 = 0; mb0 < blocks; mb0 += chunk) {
    const int64_t chunk_end = min64(blocks, mb0 + chunk);
    for (int64_t k0 = 0; k0 < k_pad; k0 += kBlockK) {
      const int64_t kc = min64(kBlockK, k_pad - k0);
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t n = n_begin + t * tile;
        pack_weight_tile<V, W>(p, n, min64(tile, n_end - n), k0, kc, wt);
        if (t + 1 < tiles) prefetch_weight_block<V, W>(p, n + tile, n_end, k0);
        else prefetch_weight_block<V, W>(p, n_begin, n_end, k0 + kBlockK);
        for (int64_t mb = mb0; mb < chunk_end; ++mb)
          micro_tile<V>(xp + (mb * k_pad + k0) * R, wt, kc, ct + (t * chunk + mb - mb0) * tile * R, k0 > 0);
      }
    }
    // Transpose into out row by row: out's rows are N floats apart, so walking rows inside columns
    // would touch one cache line per element (and, with N a power of two, all in one L1 set).
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t n = n_begin + t * tile, rows = min64(tile, n_end - n);
      float bias[tile];
      for (int64_t j = 0; j < rows; ++j) bias[j] = p.bias ? V::load_scalar(p.bias_dtype, p.bias, n + j) : 0.0f;
      for (int64_t m = mb0 * R; m < min64(p.M, chunk_end * R); ++m) {
        const float* c = ct + (t * chunk + m / R - mb0) * tile * R + m % R;
        float* o = p.out + m * p.N + n;
        for (int64_t j = 0; j < rows; ++j) o[j] = c[j * R] + bias[j];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------

template <class V, class W>
MatmulPath gemv_path() {
  MatmulPath path;
  path.packed_x_bytes = gemv_packed_bytes;
  path.pack_rows = one_row;
  path.pack_x = gemv_pack_x<V, W>;
  path.scratch_floats = no_scratch;
  path.run = gemv_run<V, W>;
  path.n_align = V::kGemvAlign;
  return path;
}

template <class V, class W>
MatmulPath gemm_path() {
  MatmulPath path;
  path.packed_x_bytes = gemm_packed_bytes<V>;
  path.pack_rows = gemm_pack_rows<V>;
  path.pack_x = gemm_pack_x<V>;
  path.scratch_floats = gemm_scratch_floats<V>;
  path.run = gemm_run<V, W>;
  path.n_align = V::kTileN;
  path.max_part_rows = kPartRows;
  return path;
}

// The table of one level: V the vector trait, Wf32/Wf16/Wbf16 its weight loaders.
template <class V, class Wf32, class Wf16, class Wbf16>
MatmulKernels make_matmul_kernels() {
  MatmulKernels k;
  k.gemv_max_rows = 8;
  k.gemv[0] = gemv_path<V, Wf32>();
  k.gemv[1] = gemv_path<V, Wf16>();
  k.gemv[2] = gemv_path<V, Wbf16>();
  k.gemm[0] = gemm_path<V, Wf32>();
  k.gemm[1] = gemm_path<V, Wf16>();
  k.gemm[2] = gemm_path<V, Wbf16>();
  return k;
}

}  // namespace matmul_impl
}  // namespace
}  // namespace roofline::cpu
