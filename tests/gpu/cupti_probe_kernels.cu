// Two known kernels for the CUPTI recorder's GPU test (gpu_cupti_test.cpp), launched through plain C++
// functions so the test itself stays host code.
#include <cuda_runtime.h>

#include "cupti_probe_kernels.h"

namespace roofline::test {

namespace {
__global__ void cupti_probe_scale(float* x, int n, float s) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) x[i] = x[i] * s + 1.0f;
}
__global__ void cupti_probe_add(float* x, const float* y, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) x[i] += y[i];
}
}  // namespace

void launch_cupti_probe_scale(float* x, int n, float s, cudaStream_t stream) {
  cupti_probe_scale<<<(n + 255) / 256, 256, 0, stream>>>(x, n, s);
}
void launch_cupti_probe_add(float* x, const float* y, int n, cudaStream_t stream) {
  cupti_probe_add<<<(n + 255) / 256, 256, 0, stream>>>(x, y, n);
}

}  // namespace roofline::test
