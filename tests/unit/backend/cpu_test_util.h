// Helpers for the CPU backend tests: every (ISA level, thread count) configuration this machine can run,
// random tensors in any float dtype together with the exact values they hold (for float64 references),
// NaN poisoning of outputs, and relative L2 error.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "roofline/backend/cpu/cpu_backend.h"
#include "roofline/backend/cpu/cpu_features.h"
#include "roofline/core/dtype.h"
#include "roofline/core/error.h"
#include "roofline/core/tensor.h"

namespace roofline::test {

struct CpuConfig {
  CpuIsa isa;
  int threads;
  std::string name() const { return std::string(cpu_isa_to_string(isa)) + "/t" + std::to_string(threads); }
};

// Every level this CPU supports, with 1 and 2 threads.
inline std::vector<CpuConfig> cpu_configs() {
  std::vector<CpuConfig> out;
  for (CpuIsa isa : supported_cpu_isas())
    for (int threads : {1, 2}) out.push_back({isa, threads});
  return out;
}

inline std::unique_ptr<CpuBackend> make_backend(const CpuConfig& c) { return make_cpu_backend(c.threads, c.isa); }

// Uniform values in [lo, hi), redrawn while |v| < 1e-3 so no input is (nearly) zero.
inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) {
    do x = dist(rng);
    while (std::fabs(x) < 1e-3f);
  }
  return v;
}

// A tensor in `dtype` and the values it holds exactly (after rounding to dtype), as doubles.
struct Stored {
  Tensor tensor;
  std::vector<double> values;
};

inline Stored make_stored(DType dtype, Shape shape, const std::vector<float>& values) {
  Stored s{Tensor::empty(dtype, std::move(shape)), {}};
  convert_from_f32(dtype, values.data(), s.tensor.data(), values.size());
  std::vector<float> back(values.size());
  convert_to_f32(dtype, s.tensor.data(), back.data(), back.size());
  s.values.assign(back.begin(), back.end());
  return s;
}

inline Stored random_stored(DType dtype, Shape shape, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  const auto n = size_t(shape_numel(shape));
  return make_stored(dtype, std::move(shape), random_floats(n, seed, lo, hi));
}

inline Tensor f32_tensor(Shape shape, const std::vector<float>& values) {
  Tensor t = Tensor::empty(DType::F32, std::move(shape));
  std::memcpy(t.data(), values.data(), values.size() * 4);
  return t;
}

inline void poison(Tensor& t) {
  float* p = t.ptr<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = std::nanf("");
}

inline std::vector<float> values_of(const Tensor& t) {
  return std::vector<float>(t.ptr<float>(), t.ptr<float>() + t.numel());
}

// Number of elements still NaN (never written) or otherwise not finite.
inline int64_t count_not_finite(const Tensor& t) {
  int64_t bad = 0;
  for (int64_t i = 0; i < t.numel(); ++i) bad += !std::isfinite(t.ptr<float>()[i]);
  return bad;
}

// ||got - ref|| / ||ref||, in double.
inline double rel_l2(const std::vector<float>& got, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size() && i < ref.size(); ++i) {
    num += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
    den += ref[i] * ref[i];
  }
  if (got.size() != ref.size()) return INFINITY;
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

inline std::vector<DType> weight_dtypes() { return {DType::F32, DType::F16, DType::BF16}; }

}  // namespace roofline::test
