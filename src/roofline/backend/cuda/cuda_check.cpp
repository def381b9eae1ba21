#include "roofline/backend/cuda/cuda_check.h"

#include "roofline/core/error.h"

namespace roofline::cuda {

void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line) {
  fail("CUDA error in {} at {}:{}: {} ({})", expr, file, line, cudaGetErrorString(err), cudaGetErrorName(err));
}

}  // namespace roofline::cuda
