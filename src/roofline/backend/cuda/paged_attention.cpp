// PLACEHOLDER until the paged kernels land (being written now): the CudaBackend paged-KV entry points.
#include "roofline/backend/cuda/cuda_backend.h"
#include "roofline/core/error.h"

namespace roofline::cuda {

void CudaBackend::store_kv(Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  fail("store_kv: not implemented on the CUDA backend yet");
}
void CudaBackend::paged_attention(Tensor&, const Tensor&, const Tensor&, const Tensor&, const PagedAttentionBatch&) {
  fail("paged_attention: not implemented on the CUDA backend yet");
}
void CudaBackend::gather_rows(Tensor&, const Tensor&, const Tensor&) {
  fail("gather_rows: not implemented on the CUDA backend yet");
}

}  // namespace roofline::cuda
