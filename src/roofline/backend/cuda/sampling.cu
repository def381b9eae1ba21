// Token selection on the GPU, one block per row of logits [rows, vocab] (f32, f16 or bf16); ids are
// written to a device int32 array, so nothing waits for the host.
//   argmax: the largest logit, lowest index among equal ones.
//   sample: temperature, then top-k, top-p (on what top-k kept), min-p, then one draw (SampleArgs).
// The draw is Gumbel-max: argmax_i (x_i / T + G_i), G_i = -log(-log(u_i)), u_i from Philox(seed; counter
// i / 4, row, step) component i % 4: an exact sample of softmax(x / T) over the kept tokens, and the same
// token always gets the same u_i whichever path below finds it.
// Filters without sorting the vocabulary:
//  1. m = max logit; a histogram over kBuckets buckets of the gap g = (m - x) / T in nats (count and
//     fixed-point mass exp(-g), 2^31 for the top token). A bucket scan bounds the kept set: all of top-k
//     lies in the buckets up to the one where the count reaches k, the nucleus up to where the mass reaches
//     top_p, min-p up to the bucket of ln(1 / min_p).
//  2. When those buckets hold at most kMaxCandidates tokens (the usual case), they are gathered into
//     shared memory and sorted (logit descending, index ascending), and the filters are applied exactly
//     as the CPU Sampler does, on the sorted list.
//  3. Otherwise (a flat distribution with a loose filter), each filter becomes a threshold on an
//     order-preserving integer key of the logit, found by radix selection over the whole row (four 8-bit
//     passes of a 256-bin histogram), keeping every token tied at a threshold.
// Masses are integers summed with integer atomics, so no result depends on the order of the atomics.
#include <nvtx3/nvtx3.hpp>

#include <climits>
#include <cmath>

#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/device/philox.cuh"
#include "roofline/backend/cuda/device/reduce.cuh"
#include "roofline/backend/cuda/dispatch.cuh"
#include "roofline/backend/cuda/kernels.h"
#include "roofline/core/error.h"

namespace roofline::cuda {

namespace {

using device::kFullMask;
using device::to_float;
using u64 = unsigned long long;

constexpr int kThreads = 1024;
constexpr int kBuckets = 2048;           // histogram of the gap to the top token ...
constexpr float kBucketsPerNat = 64.0f;  // ... 1/64 nat wide: 32 nats deep, the last bucket holds the rest
constexpr int kMaxCandidates = 4096;     // tokens sorted in shared memory
constexpr int kBins = 256;               // radix fallback: 8 bits of the key per pass
constexpr int kCopies = 8;               // radix fallback: histogram copies (warp w adds to w % kCopies)
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kMassOne = 2147483648.0f;  // fixed-point mass of the top token: 2^31, fits a uint32
static_assert(kThreads % 32 == 0 && kThreads >= kBins, "whole warps; one pass clears a radix histogram");
static_assert(kBuckets % 32 == 0 && (kMaxCandidates & (kMaxCandidates - 1)) == 0, "warp scans; bitonic sort");

// Larger float -> larger key (for all non-NaN values, -inf included); key_value inverts it.
__device__ __forceinline__ uint32_t order_key(float f) {
  const uint32_t bits = __float_as_uint(f);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}
__device__ __forceinline__ float key_value(uint32_t key) {
  return __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
}

// Calls f(i, x[i]) for every i < vocab of the row, 8 elements per access where aligned.
template <typename T, typename F>
__device__ __forceinline__ void for_each_logit(const T* x, int64_t vocab, F&& f) {
  const int64_t groups = aligned16(x) ? vocab / 8 : 0;
  for (int64_t g = threadIdx.x; g < groups; g += blockDim.x) {
    float v[8];
    device::load8(x + 8 * g, v);
#pragma unroll
    for (int e = 0; e < 8; ++e) f(8 * g + e, v[e]);
  }
  for (int64_t i = groups * 8 + threadIdx.x; i < vocab; i += blockDim.x) f(i, to_float(x[i]));
}

struct Best {
  float value;
  int index;
};

__device__ __forceinline__ Best better(Best a, Best b) {
  return (b.value > a.value || (b.value == a.value && b.index < a.index)) ? b : a;
}

// The best (value, index) of the block; every thread gets it. scratch: 32 entries.
__device__ Best block_best(Best best, Best* scratch) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const Best other{__shfl_xor_sync(kFullMask, best.value, offset), __shfl_xor_sync(kFullMask, best.index, offset)};
    best = better(best, other);
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) scratch[warp] = best;
  __syncthreads();
  best = scratch[0];
  for (int w = 1; w < int(blockDim.x / 32); ++w) best = better(best, scratch[w]);
  __syncthreads();
  return best;
}

__device__ u64 block_sum_u64(u64 v, u64* scratch) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  u64 total = 0;
  for (int w = 0; w < int(blockDim.x / 32); ++w) total += scratch[w];
  __syncthreads();
  return total;
}

// The random bits of tokens 4g .. 4g + 3 for (seed, row, step); token i uses component i % 4 of group i / 4.
__device__ __forceinline__ uint4 token_bits(int64_t group, int64_t row, uint64_t step, uint64_t seed) {
  return device::philox4x32_10(make_uint4(uint32_t(group), uint32_t(row), uint32_t(step), uint32_t(step >> 32)),
                               make_uint2(uint32_t(seed), uint32_t(seed >> 32)));
}
__device__ __forceinline__ float gumbel_from(uint32_t bits) { return -logf(-logf(device::uniform_open01(bits))); }
__device__ __forceinline__ uint32_t component(uint4 bits, int e) {
  return e == 0 ? bits.x : e == 1 ? bits.y : e == 2 ? bits.z : bits.w;
}

// Warp-wide (call from one whole warp): over weights w(0) .. w(n - 1), the first b whose running sum
// w(0) + ... + w(b) reaches target, or n - 1 when none does; *total receives the sum of all n.
template <typename Weight>
__device__ int first_reaching(int n, u64 target, Weight w, u64* total) {
  const int lane = threadIdx.x % 32;
  const int per_lane = (n + 31) / 32, begin = lane * per_lane, end = min(n, begin + per_lane);
  u64 sum = 0;
  for (int i = begin; i < end; ++i) sum += w(i);
  u64 inclusive = sum;
#pragma unroll
  for (int offset = 1; offset < 32; offset <<= 1) {
    const u64 other = __shfl_up_sync(kFullMask, inclusive, offset);
    if (lane >= offset) inclusive += other;
  }
  *total = __shfl_sync(kFullMask, inclusive, 31);
  const unsigned hit = __ballot_sync(kFullMask, inclusive >= target && begin < end);
  if (hit == 0) return n - 1;
  const int src = __ffs(hit) - 1;
  int found = n - 1;
  if (lane == src) {
    u64 running = inclusive - sum;
    for (int i = begin; i < end; ++i)
      if ((running += w(i)) >= target) {
        found = i;
        break;
      }
  }
  return __shfl_sync(kFullMask, found, src);
}

// ---- radix fallback ----

// hist[bin] += weight for each lane whose bin < kBins (whole warp calls). Lanes with equal bins are summed
// first (16-bit halves, so 32 lanes cannot overflow), so each distinct bin costs one shared atomic.
__device__ __forceinline__ void histogram_add(u64* hist, uint32_t bin, uint32_t weight) {
  const unsigned peers = __match_any_sync(kFullMask, bin);
  const uint32_t low = __reduce_add_sync(peers, weight & 0xffffu);
  const uint32_t high = __reduce_add_sync(peers, weight >> 16);
  if (bin < kBins && int(threadIdx.x % 32) == __ffs(peers) - 1) atomicAdd(&hist[bin], (u64(high) << 16) + low);
}

struct RadixShared {
  u64 hist[kCopies][kBins];
  uint32_t prefix;
  u64 remaining;
};

// Over the logits with key >= floor, walks keys from the largest down and returns the key K at which the
// running total of weight(x) reaches target: total(key > K) < target <= total(key >= K).
template <typename T, typename Weight>
__device__ uint32_t select_key(const T* x, int64_t vocab, uint32_t floor, u64 target, Weight weight, RadixShared& sh) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  u64* hist = sh.hist[warp % kCopies];
  uint32_t prefix = 0, mask = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < kCopies * kBins; b += blockDim.x) sh.hist[b / kBins][b % kBins] = 0;
    __syncthreads();
    for (int64_t base = int64_t(warp) * 32; base < vocab; base += blockDim.x) {  // warp-uniform trip count
      const int64_t i = base + lane;
      uint32_t bin = kBins, w = 0;  // kBins: this lane adds nothing
      if (i < vocab) {
        const float v = to_float(x[i]);
        const uint32_t key = order_key(v);
        if (key >= floor && (key & mask) == prefix) bin = (key >> shift) & 0xffu, w = weight(v);
      }
      if (__any_sync(kFullMask, bin < kBins)) histogram_add(hist, bin, w);
    }
    __syncthreads();
    if (threadIdx.x < kBins)
      for (int c = 1; c < kCopies; ++c) sh.hist[0][threadIdx.x] += sh.hist[c][threadIdx.x];
    __syncthreads();
    if (threadIdx.x == 0) {
      const u64* total = sh.hist[0];
      u64 above = 0;
      int b = kBins - 1;
      for (; b > 0 && above + total[b] < target; --b) above += total[b];
      sh.prefix = prefix | (uint32_t(b) << shift);
      sh.remaining = target - above;
    }
    __syncthreads();
    prefix = sh.prefix;
    target = sh.remaining;
    mask |= 0xffu << shift;
  }
  return prefix;
}

// ---- kernels ----

template <typename T>
__global__ void __launch_bounds__(kThreads) argmax_kernel(int32_t* ids, const T* logits, int64_t vocab) {
  __shared__ Best scratch[32];
  const T* x = logits + int64_t(blockIdx.x) * vocab;  // [vocab]
  Best best{-INFINITY, INT_MAX};
  for_each_logit(x, vocab, [&](int64_t i, float v) { best = better(best, Best{v, int(i)}); });
  best = block_best(best, scratch);
  if (threadIdx.x == 0) ids[blockIdx.x] = best.index == INT_MAX ? 0 : best.index;  // all NaN: 0
}

// Shared memory of one sampling block: the phases reuse one buffer.
union SampleBuffer {
  struct {
    uint32_t count[kBuckets];
    u64 mass[kBuckets];
  } buckets;
  u64 candidates[kMaxCandidates];  // (key << 32) | (~index): descending = logit desc, index asc
  RadixShared radix;
};

template <typename T>
__global__ void __launch_bounds__(kThreads) sample_kernel(SampleArgs a) {
  __shared__ SampleBuffer buf;
  __shared__ float scratch[32];
  __shared__ u64 sums[32];
  __shared__ Best best_scratch[32];
  __shared__ int shared_int[2];
  __shared__ u64 shared_total_mass;  // of the whole row, fixed point
  const int64_t row = blockIdx.x;
  const T* x = static_cast<const T*>(a.logits) + row * a.vocab;  // [vocab]
  const float inv_t = 1.0f / a.temperature;
  const bool top_k = a.top_k > 0 && a.top_k < a.vocab, top_p = a.top_p < 1.0f, min_p = a.min_p > 0.0f;
  Best best{-INFINITY, INT_MAX};
  auto finish = [&] {
    best = block_best(best, best_scratch);
    if (threadIdx.x == 0) a.ids[row] = best.index == INT_MAX ? 0 : best.index;
  };
  auto draw = [&](int64_t i, float v) {
    const float g = gumbel_from(component(token_bits(i / 4, row, a.step, a.seed), int(i % 4)));
    best = better(best, Best{v * inv_t + g, int(i)});
  };

  if (!top_k && !top_p && !min_p) {  // plain temperature: one pass, one Philox call per 4 tokens
    for (int64_t group = threadIdx.x; group * 4 < a.vocab; group += blockDim.x) {
      const uint4 bits = token_bits(group, row, a.step, a.seed);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t i = group * 4 + e;
        if (i < a.vocab) best = better(best, Best{to_float(x[i]) * inv_t + gumbel_from(component(bits, e)), int(i)});
      }
    }
    return finish();
  }

  float max_logit = -INFINITY;
  for_each_logit(x, a.vocab, [&](int64_t, float v) { max_logit = fmaxf(max_logit, v); });
  max_logit = device::block_max(max_logit, scratch);
  auto gap_bucket = [&](float v) { return int(fminf((max_logit - v) * inv_t * kBucketsPerNat, float(kBuckets - 1))); };
  auto mass = [&](float v) { return uint32_t(__float2uint_rz(exp2f((v - max_logit) * inv_t * kLog2e) * kMassOne)); };

  // 1. Histogram of the gap to the top token, and the buckets that hold every token a filter may keep.
  for (int b = threadIdx.x; b < kBuckets; b += blockDim.x) buf.buckets.count[b] = 0, buf.buckets.mass[b] = 0;
  __syncthreads();
  for_each_logit(x, a.vocab, [&](int64_t, float v) {
    const int b = gap_bucket(v);
    atomicAdd(&buf.buckets.count[b], 1u);
    atomicAdd(&buf.buckets.mass[b], u64(mass(v)));
  });
  __syncthreads();
  if (threadIdx.x < 32) {
    u64 total_count = 0, total_mass = 0;
    int last = kBuckets - 1;  // candidates: buckets 0 .. last
    if (top_k) last = first_reaching(kBuckets, u64(a.top_k), [&](int b) { return u64(buf.buckets.count[b]); }, &total_count);
    u64 z = 0;
    first_reaching(kBuckets, 0, [&](int b) { return buf.buckets.mass[b]; }, &z);
    if (threadIdx.x == 0) shared_total_mass = z;
    if (top_p && !top_k) {  // with top-k, the nucleus needs the whole top-k set's mass: keep all of it
      const double wanted = double(z) * double(a.top_p);
      const int b = first_reaching(kBuckets, u64(ceil(wanted)), [&](int b2) { return buf.buckets.mass[b2]; }, &total_mass);
      last = min(last, b + 1);  // one bucket of margin for rounding
    }
    if (min_p && !(top_k && top_p)) last = min(last, int(-logf(a.min_p) * kBucketsPerNat) + 1);
    last = min(last, kBuckets - 1);
    const int limit = last + 1;
    u64 candidates = 0;
    first_reaching(limit, 0, [&](int b) { return u64(buf.buckets.count[b]); }, &candidates);
    if (threadIdx.x == 0) {
      shared_int[0] = candidates <= u64(kMaxCandidates) ? last : -1;
      shared_int[1] = int(candidates);
    }
  }
  __syncthreads();
  const int last = shared_int[0], count = shared_int[1];

  if (last >= 0) {
    // 2. Gather the candidates, sort them, apply the filters in order on the sorted list, draw.
    __syncthreads();  // everyone has read the bucket results: the buffer becomes the candidate list
    if (threadIdx.x == 0) shared_int[0] = 0;
    int padded = 1;
    while (padded < count) padded <<= 1;
    for (int i = threadIdx.x; i < padded; i += blockDim.x) buf.candidates[i] = 0;  // sorts last
    __syncthreads();
    for_each_logit(x, a.vocab, [&](int64_t i, float v) {
      if (gap_bucket(v) > last) return;
      const int at = atomicAdd(&shared_int[0], 1);
      if (at < padded) buf.candidates[at] = (u64(order_key(v)) << 32) | ~uint32_t(i);
    });
    __syncthreads();
    for (int k = 2; k <= padded; k <<= 1)  // bitonic sort, descending
      for (int j = k >> 1; j > 0; j >>= 1) {
        for (int i = threadIdx.x; i < padded; i += blockDim.x) {
          const int partner = i ^ j;
          if (partner <= i) continue;
          const u64 lo = buf.candidates[i], hi = buf.candidates[partner];
          if (((i & k) == 0) ? lo < hi : lo > hi) buf.candidates[i] = hi, buf.candidates[partner] = lo;
        }
        __syncthreads();
      }
    auto value_at = [&](int i) { return key_value(uint32_t(buf.candidates[i] >> 32)); };
    int n = top_k ? min(count, a.top_k) : count;
    if (threadIdx.x < 32) {
      if (top_p) {  // the smallest prefix whose mass reaches top_p of what top-k kept (or of the whole row)
        auto w = [&](int i) { return u64(mass(value_at(i))); };
        u64 kept = shared_total_mass;
        if (top_k) first_reaching(n, 0, w, &kept);
        const double wanted = double(kept) * double(a.top_p);
        u64 ignored = 0;
        n = first_reaching(n, wanted < 1.0 ? 1ull : u64(ceil(wanted)), w, &ignored) + 1;
      }
      if (min_p) {  // p >= min_p * p_max: a prefix of the sorted list
        const float threshold = max_logit + a.temperature * logf(a.min_p);
        int kept = 0;
        for (int i = threadIdx.x; i < n; i += 32) kept += value_at(i) >= threshold;
        for (int offset = 16; offset > 0; offset >>= 1) kept += __shfl_xor_sync(kFullMask, kept, offset);
        n = max(1, kept);
      }
      if (threadIdx.x == 0) shared_int[1] = n;
    }
    __syncthreads();
    n = shared_int[1];
    for (int i = threadIdx.x; i < n; i += blockDim.x) draw(int64_t(~uint32_t(buf.candidates[i])), value_at(i));
    return finish();
  }

  // 3. Radix fallback over the whole row: each filter becomes a key threshold (ties kept).
  __syncthreads();  // the buffer becomes the radix histograms
  auto one = [](float) -> uint32_t { return 1u; };
  uint32_t floor = 0;  // keep the logits whose key >= floor
  if (top_k) floor = select_key(x, a.vocab, 0u, u64(a.top_k), one, buf.radix);
  if (top_p) {
    u64 kept = 0;
    for_each_logit(x, a.vocab, [&](int64_t, float v) {
      if (order_key(v) >= floor) kept += mass(v);
    });
    kept = block_sum_u64(kept, sums);
    const double wanted = double(kept) * double(a.top_p);
    const u64 target = wanted < 1.0 ? 1ull : u64(ceil(wanted));
    floor = max(floor, select_key(x, a.vocab, floor, target, mass, buf.radix));
  }
  if (min_p) floor = max(floor, order_key(max_logit + a.temperature * logf(a.min_p)));
  for_each_logit(x, a.vocab, [&](int64_t i, float v) {
    if (order_key(v) >= floor) draw(i, v);
  });
  finish();
}

}  // namespace

void launch_argmax(int32_t* ids, const void* logits, Elem type, int64_t rows, int64_t vocab, cudaStream_t stream) {
  nvtx3::scoped_range range("cuda::argmax");
  ROOFLINE_CHECK(vocab > 0 && vocab < INT_MAX, "argmax: vocabulary size {} must be in [1, 2^31)", vocab);
  if (rows <= 0) return;
  dispatch(type, [&](auto tag) {
    using T = decltype(tag);
    argmax_kernel<T><<<unsigned(rows), kThreads, 0, stream>>>(ids, static_cast<const T*>(logits), vocab);
    ROOFLINE_CUDA_CHECK_LAUNCH();
  });
}

void launch_sample(const SampleArgs& a, cudaStream_t stream) {
  nvtx3::scoped_range range("cuda::sample");
  ROOFLINE_CHECK(a.vocab > 0 && a.vocab < INT_MAX, "sample: vocabulary size {} must be in [1, 2^31)", a.vocab);
  ROOFLINE_CHECK(a.temperature > 0.0f && std::isfinite(a.temperature),
                 "sample: temperature {} must be finite and > 0 (use argmax for greedy)", a.temperature);
  ROOFLINE_CHECK(a.top_k >= 0, "sample: top_k {} must be >= 0", a.top_k);
  ROOFLINE_CHECK(a.top_p > 0.0f && a.top_p <= 1.0f, "sample: top_p {} must be in (0, 1]", a.top_p);
  ROOFLINE_CHECK(a.min_p >= 0.0f && a.min_p <= 1.0f, "sample: min_p {} must be in [0, 1]", a.min_p);
  if (a.rows <= 0) return;
  dispatch(a.type, [&](auto tag) {
    using T = decltype(tag);
    sample_kernel<T><<<unsigned(a.rows), kThreads, 0, stream>>>(a);
    ROOFLINE_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace roofline::cuda
