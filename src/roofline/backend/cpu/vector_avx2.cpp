// AVX2 vector kernels; same roles as vector_avx512.cpp. Tails use _mm256_maskload/maskstore_ps.
#include "roofline/backend/cpu/kernels.h"
#include "roofline/backend/cpu/simd_avx2.h"

namespace roofline::cpu {
namespace {

using namespace avx2;

void dot_rows(float* scores, const float* q, const float* k, int64_t k_stride, int64_t count, int64_t d) {
  int64_t j = 0;
  for (; j + 4 <= count; j += 4) {  // four keys at a time: four independent FMA chains
    const float* k0 = k + j * k_stride;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < d; i += 8) {
      const __m256i m = first_lanes(d - i);
      const __m256 qv = _mm256_maskload_ps(q + i, m);
      a0 = _mm256_fmadd_ps(qv, _mm256_maskload_ps(k0 + i, m), a0);
      a1 = _mm256_fmadd_ps(qv, _mm256_maskload_ps(k0 + k_stride + i, m), a1);
      a2 = _mm256_fmadd_ps(qv, _mm256_maskload_ps(k0 + 2 * k_stride + i, m), a2);
      a3 = _mm256_fmadd_ps(qv, _mm256_maskload_ps(k0 + 3 * k_stride + i, m), a3);
    }
    scores[j] = hsum(a0);
    scores[j + 1] = hsum(a1);
    scores[j + 2] = hsum(a2);
    scores[j + 3] = hsum(a3);
  }
  for (; j < count; ++j) {
    const float* kj = k + j * k_stride;
    __m256 a = _mm256_setzero_ps();
    for (int64_t i = 0; i < d; i += 8) {
      const __m256i m = first_lanes(d - i);
      a = _mm256_fmadd_ps(_mm256_maskload_ps(q + i, m), _mm256_maskload_ps(kj + i, m), a);
    }
    scores[j] = hsum(a);
  }
}

void axpy_rows(float* acc, const float* p, const float* v, int64_t v_stride, int64_t count, int64_t d) {
  int64_t i = 0;
  for (; i + 32 <= d; i += 32) {  // 32 output lanes held in four registers across all keys
    __m256 a0 = _mm256_loadu_ps(acc + i), a1 = _mm256_loadu_ps(acc + i + 8);
    __m256 a2 = _mm256_loadu_ps(acc + i + 16), a3 = _mm256_loadu_ps(acc + i + 24);
    for (int64_t j = 0; j < count; ++j) {
      const __m256 pj = _mm256_set1_ps(p[j]);
      const float* vj = v + j * v_stride + i;
      a0 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj), a0);
      a1 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 8), a1);
      a2 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 16), a2);
      a3 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 24), a3);
    }
    _mm256_storeu_ps(acc + i, a0);
    _mm256_storeu_ps(acc + i + 8, a1);
    _mm256_storeu_ps(acc + i + 16, a2);
    _mm256_storeu_ps(acc + i + 24, a3);
  }
  for (; i < d; i += 8) {
    const __m256i m = first_lanes(d - i);
    __m256 a = _mm256_maskload_ps(acc + i, m);
    for (int64_t j = 0; j < count; ++j)
      a = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), _mm256_maskload_ps(v + j * v_stride + i, m), a);
    _mm256_maskstore_ps(acc + i, m, a);
  }
}

float exp_shifted(float* x, int64_t n, float shift) {
  const __m256 s = _mm256_set1_ps(shift);
  __m256 sum = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i m = first_lanes(n - i);
    const __m256 e = _mm256_and_ps(avx2::exp(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), s)), _mm256_castsi256_ps(m));
    _mm256_maskstore_ps(x + i, m, e);
    sum = _mm256_add_ps(sum, e);
  }
  return hsum(sum);
}

void silu_mul(float* out, const float* gate, const float* up, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i m = first_lanes(n - i);
    const __m256 g = _mm256_maskload_ps(gate + i, m);
    const __m256 u = _mm256_maskload_ps(up + i, m);
    const __m256 den = _mm256_add_ps(one, avx2::exp(_mm256_sub_ps(_mm256_setzero_ps(), g)));
    _mm256_maskstore_ps(out + i, m, _mm256_div_ps(_mm256_mul_ps(g, u), den));
  }
}

void gelu_tanh(float* x, int64_t n) {
  const __m256 c = _mm256_set1_ps(-2.0f * 0.7978845608028654f);  // -2 sqrt(2/pi)
  const __m256 c3 = _mm256_set1_ps(0.044715f);
  const __m256 one = _mm256_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i m = first_lanes(n - i);
    const __m256 v = _mm256_maskload_ps(x + i, m);
    const __m256 inner = _mm256_fmadd_ps(_mm256_mul_ps(c3, v), _mm256_mul_ps(v, v), v);  // v + 0.044715 v^3
    const __m256 den = _mm256_add_ps(one, avx2::exp(_mm256_mul_ps(c, inner)));       // 1 + exp(-2u)
    _mm256_maskstore_ps(x + i, m, _mm256_div_ps(v, den));
  }
}

// The buffer's `S` equal parts read side by side, each with a prefetch kAhead bytes ahead of its loads.
template <int S>
float read_streams(const char* p, size_t bytes) {
  constexpr size_t kAhead = 4096 / S;
  const size_t stride = bytes / S;
  __m256i a[S];
  for (auto& v : a) v = _mm256_setzero_si256();
  for (size_t i = 0; i < stride; i += 64)
    for (int s = 0; s < S; ++s) {
      const char* q = p + s * stride + i;
      _mm_prefetch(q + kAhead, _MM_HINT_T0);
      a[s] = _mm256_add_epi64(a[s], _mm256_add_epi64(_mm256_load_si256((const __m256i*)q),
                                                     _mm256_load_si256((const __m256i*)(q + 32))));
    }
  for (int s = 1; s < S; ++s) a[0] = _mm256_add_epi64(a[0], a[s]);
  alignas(32) uint64_t lanes[4];  // unsigned: the sums wrap, by design
  _mm256_store_si256((__m256i*)lanes, a[0]);
  return float(lanes[0] + lanes[1] + lanes[2] + lanes[3]);
}

float read_sum(const void* data, size_t bytes, int streams) {
  const char* p = static_cast<const char*>(data);
  return streams >= 8 ? read_streams<8>(p, bytes) : streams >= 4 ? read_streams<4>(p, bytes) : read_streams<1>(p, bytes);
}

}  // namespace

VectorKernels vector_kernels_avx2() {
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
