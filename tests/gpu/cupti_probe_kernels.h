// Known kernels for the CUPTI recorder's test: x = x * s + 1 and x += y over n floats.
#pragma once
#include <cuda_runtime_api.h>

namespace roofline::test {
void launch_cupti_probe_scale(float* x, int n, float s, cudaStream_t stream);
void launch_cupti_probe_add(float* x, const float* y, int n, cudaStream_t stream);
}  // namespace roofline::test
