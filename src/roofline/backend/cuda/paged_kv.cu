// Row copies through device-resident row ids (kernels.h): store_kv writes a step's k/v rows into the KV pools
// at their slots, gather_rows picks the rows whose logits are wanted. One CTA per row; a row moves in the
// widest unit (16, 4, 2 or 1 bytes) that its size and the pointers' alignment allow, so any dtype works.
// Into an F8E4M3 pool, store_kv quantizes each (token, kv head) vector with its own scale (kv_fp8.cuh).
// Rule: a row id outside its table is never dereferenced (store_kv skips it, gather_rows writes 0xff bytes).
#include <nvtx3/nvtx3.hpp>

#include <cstdint>

#include "roofline/backend/cuda/chained_launch.cuh"
#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/device/convert.cuh"
#include "roofline/backend/cuda/kernels.h"
#include "roofline/backend/cuda/kv_fp8.cuh"

namespace roofline::cuda {

namespace {

constexpr int kThreads = 128;
constexpr unsigned kMaxGrid = 0x7fffffffu;

template <typename Unit>
__global__ void __launch_bounds__(kThreads) store_kv_kernel(Unit* k_pool, Unit* v_pool, int64_t pool_rows,
                                                            const Unit* k, const Unit* v, const int32_t* slots,
                                                            int64_t T, int64_t units) {
  device::enter_chain();
  for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
    const int32_t slot = __ldg(slots + t);
    if (slot < 0 || slot >= pool_rows) continue;
    for (int64_t u = threadIdx.x; u < units; u += blockDim.x) {
      k_pool[int64_t(slot) * units + u] = k[t * units + u];
      v_pool[int64_t(slot) * units + u] = v[t * units + u];
    }
  }
}

// One CTA per token: thread u quantizes elements 8u .. 8u + 7 of the token's k and v rows ([Hkv, D] bf16), so
// the D / 8 lanes of one (token, kv head) vector are consecutive lanes of a warp. Whole warps run every pass
// (a vector's lanes are all in or all out), as quantize_kv8's shuffles need.
__global__ void __launch_bounds__(kThreads) store_kv_fp8_kernel(uint8_t* k_pool, uint8_t* v_pool, float* k_scale,
                                                                float* v_scale, int64_t pool_rows,
                                                                const device::bf16* k, const device::bf16* v,
                                                                const int32_t* slots, int64_t T, int Hkv, int D) {
  const int lanes = D / 8, pieces = Hkv * lanes;
  for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
    const int32_t slot = __ldg(slots + t);
    if (slot < 0 || slot >= pool_rows) continue;  // uniform over the CTA
    for (int base = 0; base < pieces; base += blockDim.x) {
      const int piece = base + int(threadIdx.x);
      const bool mine = piece < pieces;
      float kx[8] = {}, vx[8] = {};
      if (mine) {
        device::load8(k + t * pieces * 8 + piece * 8, kx);
        device::load8(v + t * pieces * 8 + piece * 8, vx);
      }
      float ks = 0.0f, vs = 0.0f;
      const uint2 kq = device::quantize_kv8(kx, lanes, &ks);
      const uint2 vq = device::quantize_kv8(vx, lanes, &vs);
      if (!mine) continue;
      const int64_t row = int64_t(slot) * pieces + piece;  // in 8-byte units
      reinterpret_cast<uint2*>(k_pool)[row] = kq;
      reinterpret_cast<uint2*>(v_pool)[row] = vq;
      if (piece % lanes == 0) {
        const int64_t at = int64_t(slot) * Hkv + piece / lanes;
        k_scale[at] = ks;
        v_scale[at] = vs;
      }
    }
  }
}

template <typename Unit>
__global__ void __launch_bounds__(kThreads) gather_rows_kernel(Unit* out, const Unit* x, int64_t x_rows,
                                                               const int32_t* rows, int64_t count, int64_t units) {
  device::enter_chain();
  for (int64_t i = blockIdx.x; i < count; i += gridDim.x) {
    const int32_t r = __ldg(rows + i);
    const bool valid = r >= 0 && r < x_rows;
    Unit poison;
    memset(&poison, 0xff, sizeof(Unit));
    for (int64_t u = threadIdx.x; u < units; u += blockDim.x) out[i * units + u] = valid ? x[int64_t(r) * units + u] : poison;
  }
}

// The widest unit in {16, 4, 2, 1} bytes dividing row_bytes and every pointer's address.
int unit_bytes(int64_t row_bytes, std::initializer_list<const void*> pointers) {
  for (int unit : {16, 4, 2}) {
    bool ok = row_bytes % unit == 0;
    for (const void* p : pointers) ok = ok && reinterpret_cast<uintptr_t>(p) % unit == 0;
    if (ok) return unit;
  }
  return 1;
}

template <typename F>
void with_unit(int unit, F&& body) {
  switch (unit) {
    case 16: body(uint4{}); return;
    case 4: body(uint32_t{}); return;
    case 2: body(uint16_t{}); return;
    default: body(uint8_t{}); return;
  }
}

unsigned grid_rows(int64_t rows) { return unsigned(rows < int64_t(kMaxGrid) ? rows : int64_t(kMaxGrid)); }

}  // namespace

void launch_store_kv(void* k_pool, void* v_pool, int64_t pool_rows, const void* k, const void* v,
                     const int32_t* slots, int64_t T, int64_t row_bytes, cudaStream_t stream) {
  nvtx3::scoped_range range("cuda::store_kv");
  if (T <= 0 || row_bytes <= 0) return;
  const int unit = unit_bytes(row_bytes, {k_pool, v_pool, k, v});
  with_unit(unit, [&](auto tag) {
    using Unit = decltype(tag);
    launch_chained(store_kv_kernel<Unit>, grid_rows(T), kThreads, 0, stream, static_cast<Unit*>(k_pool),
                   static_cast<Unit*>(v_pool), pool_rows, static_cast<const Unit*>(k), static_cast<const Unit*>(v),
                   slots, T, row_bytes / unit);
  });
}

void launch_store_kv_fp8(const StoreKvFp8Args& a, cudaStream_t stream) {
  nvtx3::scoped_range range("cuda::store_kv_fp8");
  if (a.T <= 0) return;
  store_kv_fp8_kernel<<<grid_rows(a.T), kThreads, 0, stream>>>(
      static_cast<uint8_t*>(a.k_pool), static_cast<uint8_t*>(a.v_pool), a.k_scale, a.v_scale, a.pool_rows,
      static_cast<const device::bf16*>(a.k), static_cast<const device::bf16*>(a.v), a.slots, a.T, a.Hkv, a.D);
  ROOFLINE_CUDA_CHECK_LAUNCH();
}

void launch_gather_rows(void* out, const void* x, int64_t x_rows, const int32_t* rows, int64_t count,
                        int64_t row_bytes, cudaStream_t stream) {
  nvtx3::scoped_range range("cuda::gather_rows");
  if (count <= 0 || row_bytes <= 0) return;
  const int unit = unit_bytes(row_bytes, {out, x});
  with_unit(unit, [&](auto tag) {
    using Unit = decltype(tag);
    launch_chained(gather_rows_kernel<Unit>, grid_rows(count), kThreads, 0, stream, static_cast<Unit*>(out),
                   static_cast<const Unit*>(x), x_rows, rows, count, row_bytes / unit);
  });
}

}  // namespace roofline::cuda
