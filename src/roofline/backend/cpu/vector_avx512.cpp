// AVX-512 vector kernels: attention inner loops (q·k over a block of keys, p·v accumulation),
// exp / silu / gelu with the polynomial exp of simd_avx512.h, and the streaming read of the bandwidth
// measurement. Tails are handled with masked loads and stores.
#include "roofline/backend/cpu/kernels.h"
#include "roofline/backend/cpu/simd_avx512.h"

namespace roofline::cpu {
namespace {

using namespace avx512;

void dot_rows(float* scores, const float* q, const float* k, int64_t k_stride, int64_t count, int64_t d) {
  int64_t j = 0;
  for (; j + 4 <= count; j += 4) {  // four keys at a time: four independent FMA chains
    const float* k0 = k + j * k_stride;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < d; i += 16) {
      const __mmask16 m = first_lanes(d - i);
      const __m512 qv = _mm512_maskz_loadu_ps(m, q + i);
      a0 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, k0 + i), a0);
      a1 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, k0 + k_stride + i), a1);
      a2 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, k0 + 2 * k_stride + i), a2);
      a3 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, k0 + 3 * k_stride + i), a3);
    }
    scores[j] = hsum(a0);
    scores[j + 1] = hsum(a1);
    scores[j + 2] = hsum(a2);
    scores[j + 3] = hsum(a3);
  }
  for (; j < count; ++j) {
    const float* kj = k + j * k_stride;
    __m512 a = _mm512_setzero_ps();
    for (int64_t i = 0; i < d; i += 16) {
      const __mmask16 m = first_lanes(d - i);
      a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), _mm512_maskz_loadu_ps(m, kj + i), a);
    }
    scores[j] = hsum(a);
  }
}

void axpy_rows(float* acc, const float* p, const float* v, int64_t v_stride, int64_t count, int64_t d) {
  int64_t i = 0;
  for (; i + 64 <= d; i += 64) {  // 64 output lanes held in four registers across all keys
    __m512 a0 = _mm512_loadu_ps(acc + i), a1 = _mm512_loadu_ps(acc + i + 16);
    __m512 a2 = _mm512_loadu_ps(acc + i + 32), a3 = _mm512_loadu_ps(acc + i + 48);
    for (int64_t j = 0; j < count; ++j) {
      const __m512 pj = _mm512_set1_ps(p[j]);
      const float* vj = v + j * v_stride + i;
      a0 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vj), a0);
      a1 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vj + 16), a1);
      a2 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vj + 32), a2);
      a3 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vj + 48), a3);
    }
    _mm512_storeu_ps(acc + i, a0);
    _mm512_storeu_ps(acc + i + 16, a1);
    _mm512_storeu_ps(acc + i + 32, a2);
    _mm512_storeu_ps(acc + i + 48, a3);
  }
  for (; i < d; i += 16) {
    const __mmask16 m = first_lanes(d - i);
    __m512 a = _mm512_maskz_loadu_ps(m, acc + i);
    for (int64_t j = 0; j < count; ++j)
      a = _mm512_fmadd_ps(_mm512_set1_ps(p[j]), _mm512_maskz_loadu_ps(m, v + j * v_stride + i), a);
    _mm512_mask_storeu_ps(acc + i, m, a);
  }
}

float exp_shifted(float* x, int64_t n, float shift) {
  const __m512 s = _mm512_set1_ps(shift);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = first_lanes(n - i);
    const __m512 e = avx512::exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), s));
    _mm512_mask_storeu_ps(x + i, m, e);
    sum = _mm512_mask_add_ps(sum, m, sum, e);
  }
  return hsum(sum);
}

void silu_mul(float* out, const float* gate, const float* up, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = first_lanes(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 u = _mm512_maskz_loadu_ps(m, up + i);
    const __m512 sig_den = _mm512_add_ps(one, avx512::exp(_mm512_sub_ps(_mm512_setzero_ps(), g)));
    _mm512_mask_storeu_ps(out + i, m, _mm512_div_ps(_mm512_mul_ps(g, u), sig_den));
  }
}

void gelu_tanh(float* x, int64_t n) {
  const __m512 c = _mm512_set1_ps(-2.0f * 0.7978845608028654f);  // -2 sqrt(2/pi)
  const __m512 c3 = _mm512_set1_ps(0.044715f);
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = first_lanes(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    const __m512 inner = _mm512_fmadd_ps(_mm512_mul_ps(c3, v), _mm512_mul_ps(v, v), v);  // v + 0.044715 v^3
    const __m512 den = _mm512_add_ps(one, avx512::exp(_mm512_mul_ps(c, inner)));       // 1 + exp(-2u)
    _mm512_mask_storeu_ps(x + i, m, _mm512_div_ps(v, den));
  }
}

// The buffer's `S` equal parts read side by side, each with a prefetch kAhead bytes ahead of its loads.
template <int S>
float read_streams(const char* p, size_t bytes) {
  constexpr size_t kAhead = 4096 / S;
  const size_t stride = bytes / S;
  __m512i a[S];
  for (auto& v : a) v = _mm512_setzero_si512();
  for (size_t i = 0; i < stride; i += 128)
    for (int s = 0; s < S; ++s) {
      const char* q = p + s * stride + i;
      _mm_prefetch(q + kAhead, _MM_HINT_T0);
      _mm_prefetch(q + kAhead + 64, _MM_HINT_T0);
      a[s] = _mm512_add_epi64(a[s], _mm512_add_epi64(_mm512_load_si512(q), _mm512_load_si512(q + 64)));
    }
  for (int s = 1; s < S; ++s) a[0] = _mm512_add_epi64(a[0], a[s]);
  alignas(64) uint64_t lanes[8];  // unsigned: the sums wrap, by design
  _mm512_store_si512(lanes, a[0]);
  uint64_t total = 0;
  for (uint64_t lane : lanes) total += lane;
  return float(total);
}

float read_sum(const void* data, size_t bytes, int streams) {
  const char* p = static_cast<const char*>(data);
  return streams >= 8 ? read_streams<8>(p, bytes) : streams >= 4 ? read_streams<4>(p, bytes) : read_streams<1>(p, bytes);
}

}  // namespace

VectorKernels vector_kernels_avx512() {
  VectorKernels k;
  k.dot_rows = dot_rows;
  k.axpy_rows = axpy_rows;
  k.exp_shifted = exp_shifted;
  k.silu_mul = silu_mul;
  k.gelu_tanh = gelu_tanh;
  k.read_sum = read_sum;
  return k;
}

}  // namespace roofline::cpu
