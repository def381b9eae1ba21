// CudaBackend: device memory, preconditions of every op (device, dtype, shape, alignment), and the calls
// into the launchers of kernels.h and the cuBLASLt wrapper of gemm.h.
#include "roofline/backend/cuda/cuda_backend.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include "roofline/backend/cuda/cuda_check.h"
#include "roofline/backend/cuda/gemm.h"
#include "roofline/backend/cuda/kernels.h"
#include "roofline/backend/cuda/tensor_checks.h"
#include "roofline/core/env.h"
#include "roofline/core/error.h"

namespace roofline::cuda {

namespace {

constexpr size_t kGemmWorkspaceBytes = size_t(32) << 20;

cudaDataType cuda_type(DType dtype) {
  switch (dtype) {
    case DType::F32: return CUDA_R_32F;
    case DType::F16: return CUDA_R_16F;
    default: return CUDA_R_16BF;
  }
}

void check_same(const char* op, const Tensor& a, const char* a_name, const Tensor& b, const char* b_name) {
  ROOFLINE_CHECK(a.dtype() == b.dtype(), "{}: {} ({}) and {} ({}) must share a dtype", op, a_name, dtype_name(a.dtype()),
                 b_name, dtype_name(b.dtype()));
  ROOFLINE_CHECK(a.shape() == b.shape(), "{}: {} {} and {} {} must have one shape", op, a_name,
                 shape_to_string(a.shape()), b_name, shape_to_string(b.shape()));
}

// A vector of `n` elements: shape [n].
void check_vector(const char* op, const Tensor& t, int64_t n, const char* what) {
  ROOFLINE_CHECK(t.rank() == 1 && t.dim(0) == n, "{}: {} must be [{}], got {}", op, what, n, shape_to_string(t.shape()));
}

int64_t last_dim(const Tensor& t) { return t.rank() == 0 ? 1 : t.dim(-1); }
int64_t rows_of(const Tensor& t) { return last_dim(t) == 0 ? 0 : t.numel() / last_dim(t); }

void* byte_offset(void* p, int64_t bytes) { return static_cast<uint8_t*>(p) + bytes; }

}  // namespace

// ---- DeviceBuffer ----

DeviceBuffer::~DeviceBuffer() {
  if (data_) cudaFree(data_);
}

void* DeviceBuffer::ensure(size_t bytes) {
  if (bytes <= bytes_ && data_) return data_;
  if (data_) ROOFLINE_CUDA_CHECK(cudaFree(data_));  // waits for the kernels that may still read it
  data_ = nullptr;
  bytes_ = 0;
  const size_t rounded = (std::max<size_t>(bytes, 1) + 255) / 256 * 256;
  ROOFLINE_CUDA_CHECK(cudaMalloc(&data_, rounded));
  bytes_ = rounded;
  return data_;
}

// ---- construction, memory ----

CudaBackend::CudaBackend(int device_index) : device_index_(device_index) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    cudaGetLastError();
    fail("CUDA backend: no CUDA device is visible ({})", err == cudaSuccess ? "no devices" : cudaGetErrorString(err));
  }
  ROOFLINE_CHECK(device_index >= 0 && device_index < count, "CUDA backend: device {} does not exist ({} visible)",
                 device_index, count);
  ROOFLINE_CUDA_CHECK(cudaSetDevice(device_index));
  cudaDeviceProp prop{};
  ROOFLINE_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_index));
  ROOFLINE_CHECK(prop.major == 9 && prop.minor == 0,
                 "CUDA backend: the kernels are built for sm_90a (Hopper), but device {} ({}) is sm_{}{}", device_index,
                 prop.name, prop.major, prop.minor);
  multiprocessors_ = prop.multiProcessorCount;
  ROOFLINE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  gemm_ = std::make_unique<CublasLtGemm>(stream_, kGemmWorkspaceBytes);
  // ROOFLINE_GEMM_TUNE=1 (lab A/B, as the trainer's --gemm-algorithms tune): each product shape's first run times
  // cuBLASLt's candidates and keeps the fastest where it beats the heuristic by 3%. Not for serving yet: every
  // new M (prefill chunks, padded decode batch sizes) pays the timing once.
  if (env_switch("ROOFLINE_GEMM_TUNE", false)) gemm_->enable_tuning();
}

CudaBackend::~CudaBackend() {
  if (stream_) cudaStreamSynchronize(stream_);
  if (pinned_staging_) cudaFreeHost(pinned_staging_);
  gemm_.reset();
  if (stream_) cudaStreamDestroy(stream_);
}

void CudaBackend::synchronize() { ROOFLINE_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void CudaBackend::copy_from_host(Tensor& dst, const void* src) {
  check_on_device("copy_from_host", dst, "the destination");
  const size_t bytes = dst.nbytes();
  if (bytes == 0) return;
  constexpr size_t kAlign = 256;
  const size_t need = (bytes + kAlign - 1) / kAlign * kAlign;
  if (need > pinned_bytes_) {  // grow: earlier copies may still read the old ring
    synchronize();
    if (pinned_staging_) ROOFLINE_CUDA_CHECK(cudaFreeHost(pinned_staging_));
    pinned_bytes_ = std::max<size_t>(need * 4, size_t(1) << 20);
    ROOFLINE_CUDA_CHECK(cudaMallocHost(&pinned_staging_, pinned_bytes_));
    pinned_head_ = 0;
  }
  if (pinned_head_ + need > pinned_bytes_) {  // wrap: the copies queued from the start of the ring must be done
    synchronize();
    pinned_head_ = 0;
  }
  char* staged = static_cast<char*>(pinned_staging_) + pinned_head_;
  std::memcpy(staged, src, bytes);
  pinned_head_ += need;
  ROOFLINE_CUDA_CHECK(cudaMemcpyAsync(dst.data(), staged, bytes, cudaMemcpyHostToDevice, stream_));
}

namespace {
class CudaGraph final : public RecordedOps {
 public:
  CudaGraph(cudaGraphExec_t exec, cudaStream_t stream) : exec_(exec), stream_(stream) {}
  ~CudaGraph() override { cudaGraphExecDestroy(exec_); }
  void replay() override { ROOFLINE_CUDA_CHECK(cudaGraphLaunch(exec_, stream_)); }

 private:
  cudaGraphExec_t exec_;
  cudaStream_t stream_;
};
}  // namespace

std::unique_ptr<RecordedOps> CudaBackend::record(const std::function<void()>& body) {
  ROOFLINE_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed));
  cudaGraph_t graph = nullptr;
  try {
    body();
  } catch (...) {
    cudaStreamEndCapture(stream_, &graph);
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    throw;
  }
  ROOFLINE_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  ROOFLINE_CUDA_CHECK(err);
  return std::make_unique<CudaGraph>(exec, stream_);
}

Tensor CudaBackend::alloc(DType dtype, Shape shape) {
  for (int64_t d : shape) ROOFLINE_CHECK(d >= 0, "alloc: negative dimension in {}", shape_to_string(shape));
  const size_t bytes = size_t(shape_numel(shape)) * dtype_size(dtype);
  void* p = nullptr;
  ROOFLINE_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(bytes, 16)));
  std::shared_ptr<void> storage(p, [](void* q) { cudaFree(q); });
  return Tensor(dtype, std::move(shape), p, Device::CUDA, std::move(storage));
}

Tensor CudaBackend::upload(const Tensor& host, DType as) {
  Tensor out = alloc(as, host.shape());
  upload_into(out, host);
  return out;
}

void CudaBackend::upload_into(Tensor& dst, const Tensor& host) {
  ROOFLINE_CHECK(host.device() == Device::CPU, "upload: the source must be a host tensor");
  check_on_device("upload", dst, "the destination");
  const DType as = dst.dtype();
  ROOFLINE_CHECK(dst.numel() == host.numel(), "upload: {} elements into {}", host.numel(), dst.numel());
  const bool ints = host.dtype() == DType::I32 || as == DType::I32;
  ROOFLINE_CHECK(!ints || host.dtype() == as, "upload: I32 uploads only as I32 (got {} -> {})",
                 dtype_name(host.dtype()), dtype_name(as));
  if (!ints) {
    float_elem("upload", host, "the source");
    ROOFLINE_CHECK(as == DType::F32 || as == DType::F16 || as == DType::BF16,
                   "upload: the target dtype must be F32, F16, BF16 or I32, got {}", dtype_name(as));
  }
  // Same dtype: straight from the source (e.g. the checkpoint's page-cached mmap), no host copy.
  const void* src = host.data();
  std::vector<uint8_t> converted;
  if (host.dtype() != as) {
    std::vector<float> f32(size_t(host.numel()));
    convert_to_f32(host.dtype(), host.data(), f32.data(), f32.size());
    converted.resize(dst.nbytes());
    convert_from_f32(as, f32.data(), converted.data(), f32.size());
    src = converted.data();
  }
  if (dst.nbytes() > 0) {
    ROOFLINE_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src, dst.nbytes(), cudaMemcpyHostToDevice, stream_));
    synchronize();
  }
}

void CudaBackend::download(const Tensor& device, Tensor& host) {
  check_on_device("download", device, "the source");
  ROOFLINE_CHECK(host.device() == Device::CPU && host.defined(), "download: the destination must be a host tensor");
  ROOFLINE_CHECK(host.shape() == device.shape(), "download: shapes differ ({} on the device, {} on the host)",
                 shape_to_string(device.shape()), shape_to_string(host.shape()));
  const bool convert = host.dtype() != device.dtype();
  ROOFLINE_CHECK(!convert || (host.dtype() == DType::F32 && device.dtype() != DType::I32),
                 "download: {} downloads into F32 or {}, not {}", dtype_name(device.dtype()),
                 dtype_name(device.dtype()), dtype_name(host.dtype()));
  if (convert) float_elem("download", device, "the source");
  std::vector<uint8_t> raw(convert ? device.nbytes() : 0);
  void* dst = convert ? raw.data() : host.data();
  if (device.nbytes() > 0)
    ROOFLINE_CUDA_CHECK(cudaMemcpyAsync(dst, device.data(), device.nbytes(), cudaMemcpyDeviceToHost, stream_));
  synchronize();
  if (convert) convert_to_f32(device.dtype(), raw.data(), host.ptr<float>(), size_t(device.numel()));
}

const int32_t* CudaBackend::stage_ids(const char* op, const int32_t* host, int64_t count) {
  ROOFLINE_CHECK(count == 0 || host != nullptr, "{}: no ids given for {} rows", op, count);
  void* dst = staged_ids_.ensure(size_t(count) * sizeof(int32_t));
  if (count > 0)
    ROOFLINE_CUDA_CHECK(
        cudaMemcpyAsync(dst, host, size_t(count) * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  return static_cast<const int32_t*>(dst);
}

// ---- matmul ----

namespace {
bool follows(const Tensor& next, const Tensor& prev) {
  return next.dtype() == prev.dtype() && static_cast<const char*>(next.data()) ==
                                              static_cast<const char*>(prev.data()) + prev.nbytes();
}

// The one projection that adjacent targets of a single x row form: weights [N, K], biases [N] and outputs [N]
// each back to back in memory (upload_weights and the decoder lay q/k/v out so). Not joinable: w undefined.
struct JoinedTargets {
  Tensor w, out, bias;  // bias undefined when the targets have none
};
JoinedTargets join_targets(const Tensor& x, std::span<const MatmulTarget> targets) {
  const int64_t K = x.dim(-1);
  bool fused = targets.size() > 1 && x.numel() == K;
  int64_t N = 0;
  for (size_t i = 0; fused && i < targets.size(); ++i) {
    const MatmulTarget& t = targets[i];
    fused = t.w->rank() == 2 && t.w->dim(1) == K && t.out->numel() == t.w->dim(0) &&
            (t.bias == nullptr) == (targets[0].bias == nullptr);
    if (fused && i > 0) {
      const MatmulTarget& p = targets[i - 1];
      fused = follows(*t.w, *p.w) && follows(*t.out, *p.out) && (t.bias == nullptr || follows(*t.bias, *p.bias));
    }
    N += fused ? t.w->dim(0) : 0;
  }
  JoinedTargets j;
  if (!fused) return j;
  const MatmulTarget& first = targets[0];
  j.w = Tensor(first.w->dtype(), {N, K}, const_cast<void*>(first.w->data()), Device::CUDA);
  j.out = Tensor(first.out->dtype(), {1, N}, first.out->data(), Device::CUDA);
  if (first.bias != nullptr) j.bias = Tensor(first.bias->dtype(), {N}, const_cast<void*>(first.bias->data()), Device::CUDA);
  return j;
}

// Whether in's norm can ride in the gemvs that project it: an f32 residual and weight on the device, and
// `normed` in the dtype the gemvs read (the weights'), so that the fused path rounds x exactly as
// rms_norm into `normed` would.
bool norm_fusable(const RmsNormInput& in) {
  if (!in.residual || !in.weight || !in.normed) return false;
  const Tensor& r = *in.residual;
  const int64_t K = last_dim(r);
  return r.device() == Device::CUDA && in.weight->device() == Device::CUDA && r.dtype() == DType::F32 &&
         in.weight->dtype() == DType::F32 && in.weight->rank() == 1 && in.weight->dim(0) == K && r.rank() >= 1 &&
         in.normed->shape() == r.shape() && (in.normed->dtype() == DType::BF16 || in.normed->dtype() == DType::F16) &&
         gemv_norm_supported(in.normed->dtype() == DType::BF16 ? Elem::BF16 : Elem::F16, rows_of(r), K, r.data(),
                             in.weight->data());
}

// out[M, N] = x[M, K] . w[N, K]^T: every operand on the device, of a float dtype, with shapes that agree.
struct MatmulOperands {
  int64_t M, N, K;
  Elem x, w, out;
};
MatmulOperands check_matmul(const char* op, const Tensor& out, const Tensor& x, const Tensor& w) {
  check_on_device(op, out, "out");
  check_on_device(op, x, "x");
  check_on_device(op, w, "w");
  const Elem x_elem = float_elem(op, x, "x"), w_elem = float_elem(op, w, "w"), out_elem = float_elem(op, out, "out");
  ROOFLINE_CHECK(w.rank() == 2, "{}: w must be [N, K], got {}", op, shape_to_string(w.shape()));
  const int64_t N = w.dim(0), K = w.dim(1);
  ROOFLINE_CHECK(x.rank() >= 1 && last_dim(x) == K && K > 0, "{}: x {} must be [M, {}]", op, shape_to_string(x.shape()), K);
  const int64_t M = rows_of(x);
  ROOFLINE_CHECK(out.rank() >= 1 && last_dim(out) == N && rows_of(out) == M, "{}: out {} must be [{}, {}]", op,
                 shape_to_string(out.shape()), M, N);
  return {M, N, K, x_elem, w_elem, out_elem};
}

// The gemv kernel's arguments for checked operands, x given in w's dtype.
GemvArgs gemv_launch_args(const char* op, const MatmulOperands& m, Tensor& out, const void* x, const Tensor& w,
                          const Tensor* bias) {
  GemvArgs args;
  args.out = out.data();
  args.out_type = m.out;
  args.x = x;
  args.w = w.data();
  args.w_type = m.w;
  if (bias) {
    check_on_device(op, *bias, "bias");
    check_vector(op, *bias, m.N, "bias");
    args.bias = bias->data();
    args.bias_type = float_elem(op, *bias, "bias");
  }
  args.M = m.M, args.N = m.N, args.K = m.K;
  return args;
}

std::optional<GemvArgs> gemv_args(const char* op, Tensor& out, const Tensor& x, const Tensor& w, const Tensor* bias) {
  const MatmulOperands operands = check_matmul(op, out, x, w);
  const auto [M, N, K, x_elem, w_elem, out_elem] = operands;
  if (x_elem != w_elem || !gemv_supported(w_elem, w_elem, M, N, K, x.data(), w.data())) return std::nullopt;
  return gemv_launch_args(op, operands, out, x.data(), w, bias);
}

// The fused SwiGLU gemv of x (its shape and dtype; a normed launch stages x itself) when it applies: the
// fused gemv reads [gate; up] as one [2F, K] matrix and its bias as one [2F] vector. nullopt otherwise.
std::optional<GemvArgs> swiglu_gemv_args(const char* op, const Tensor& x, const MatmulTarget& gate,
                                         const MatmulTarget& up) {
  check_on_device(op, x, "x");
  check_on_device(op, *gate.w, "gate weight");
  check_on_device(op, *up.out, "up out");
  const int64_t K = last_dim(x), M = rows_of(x), F = gate.w->rank() == 2 ? gate.w->dim(0) : 0;
  const bool fusable = x.dtype() == gate.w->dtype() && gate.w->rank() == 2 && gate.w->dim(1) == K &&
                       up.w->shape() == gate.w->shape() && follows(*up.w, *gate.w) &&
                       (gate.bias == nullptr) == (up.bias == nullptr) &&
                       (gate.bias == nullptr || (gate.bias->numel() == F && follows(*up.bias, *gate.bias))) &&
                       up.out->numel() == M * F && rows_of(*up.out) == M && K > 0 && x.rank() >= 1 &&
                       (x.dtype() == DType::BF16 || x.dtype() == DType::F16) &&
                       gemv_supported(float_elem(op, x, "x"), float_elem(op, x, "x"), M, 2 * F, K, x.data(),
                                      gate.w->data());
  if (!fusable) return std::nullopt;
  check_on_device(op, *up.w, "up weight");
  GemvArgs args;
  args.out = up.out->data();
  args.out_type = float_elem(op, *up.out, "up out");
  args.x = x.data();
  args.w = gate.w->data();
  args.w_type = float_elem(op, *gate.w, "gate weight");
  if (gate.bias) {
    check_on_device(op, *gate.bias, "gate bias");
    args.bias = gate.bias->data();
    args.bias_type = float_elem(op, *gate.bias, "gate bias");
  }
  args.M = M, args.N = F, args.K = K;
  return args;
}

void set_norm(GemvArgs& a, const RmsNormInput& in) {
  a.x = nullptr;
  a.norm_residual = in.residual->ptr<float>();
  a.norm_weight = in.weight->ptr<float>();
  a.norm_eps = in.eps;
}
}  // namespace

void CudaBackend::matmul_many(const Tensor& x, std::span<const MatmulTarget> targets) {
  JoinedTargets j = join_targets(x, targets);
  if (!j.w.defined()) {
    for (const MatmulTarget& t : targets) matmul(*t.out, x, *t.w, t.bias);
    return;
  }
  matmul(j.out, x.reshape({1, x.dim(-1)}), j.w, j.bias.defined() ? &j.bias : nullptr);
}

void CudaBackend::matmul(Tensor& out, const Tensor& x, const Tensor& w, const Tensor* bias) {
  matmul_into(out, x, w, bias, nullptr);
}

void CudaBackend::matmul_add(Tensor& residual, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& scratch) {
  check_on_device("matmul_add", residual, "residual");
  check_dtype("matmul_add", residual, DType::F32, "residual");
  matmul_into(residual, x, w, bias, &scratch);
}

// matmul, or with accumulate_scratch (out f32) matmul_add: out += the product.
void CudaBackend::matmul_into(Tensor& out, const Tensor& x, const Tensor& w, const Tensor* bias,
                              Tensor* accumulate_scratch) {
  const char* op = accumulate_scratch ? "matmul_add" : "matmul";
  const MatmulOperands operands = check_matmul(op, out, x, w);
  const auto [M, N, K, x_elem, w_elem, out_elem] = operands;
  if (M == 0 || N == 0) return;

  // x in the dtype of w.
  const void* x_data = x.data();
  if (x_elem != w_elem) {
    void* converted = matmul_x_.ensure(size_t(M * K) * dtype_size(w.dtype()));
    launch_convert(converted, w_elem, x.data(), x_elem, M * K, stream_);
    x_data = converted;
  }
  // Small M (decode): the memory-bound gemv kernel reads any bias and writes any output dtype directly.
  if (gemv_supported(w_elem, w_elem, M, N, K, x_data, w.data())) {
    GemvArgs args = gemv_launch_args(op, operands, out, x_data, w, bias);
    args.accumulate = accumulate_scratch != nullptr;
    launch_gemv(args, multiprocessors_, stream_);
    return;
  }
  // The product's dtype: out's when cuBLASLt supports it, else f32 then converted.
  const bool direct = CublasLtGemm::supported(cuda_type(w.dtype()), cuda_type(out.dtype()));
  if (accumulate_scratch && (!direct || bias)) {  // cuBLASLt's beta only where out is the product's own dtype
    matmul_into(*accumulate_scratch, x, w, bias, nullptr);
    add(out, *accumulate_scratch);
    return;
  }
  const DType product_dtype = direct ? out.dtype() : DType::F32;
  void* product = direct ? out.data() : matmul_out_.ensure(size_t(M * N) * sizeof(float));
  const void* bias_data = nullptr;
  if (bias) {
    check_on_device(op, *bias, "bias");
    check_vector(op, *bias, N, "bias");
    const Elem bias_elem = float_elem(op, *bias, "bias");
    bias_data = bias->data();
    if (bias->dtype() != product_dtype) {  // cuBLASLt's bias has the output's dtype
      void* converted = matmul_bias_.ensure(size_t(N) * dtype_size(product_dtype));
      launch_convert(converted, product_dtype == DType::F32 ? Elem::F32 : out_elem, bias->data(), bias_elem, N, stream_);
      bias_data = converted;
    }
  }
  gemm_->run(product, cuda_type(product_dtype), x_data, w.data(), cuda_type(w.dtype()), bias_data, M, N, K,
             accumulate_scratch ? 1.0f : 0.0f);
  if (!direct) launch_convert(out.data(), out_elem, product, Elem::F32, M * N, stream_);
}

void CudaBackend::rms_norm_matmul_many(const RmsNormInput& in, std::span<const MatmulTarget> targets) {
  const char* op = "rms_norm_matmul_many";
  ROOFLINE_CHECK(in.residual && in.weight && in.normed, "{}: residual, weight and normed are required", op);
  if (!norm_fusable(in)) return Backend::rms_norm_matmul_many(in, targets);
  const Tensor& x = *in.normed;  // shape and dtype of the x the gemvs read (staged inside them instead)
  // One gemv per target, or one for the joined targets (as matmul_many runs them); every one must be a gemv.
  JoinedTargets j = join_targets(x, targets);
  std::vector<GemvArgs> launches;
  if (j.w.defined()) {
    const Tensor row = x.reshape({1, x.dim(-1)});
    if (auto a = gemv_args(op, j.out, row, j.w, j.bias.defined() ? &j.bias : nullptr)) launches.push_back(*a);
  } else {
    for (const MatmulTarget& t : targets)
      if (auto a = gemv_args(op, *t.out, x, *t.w, t.bias)) launches.push_back(*a);
  }
  if (launches.size() != (j.w.defined() ? size_t(1) : targets.size()))
    return Backend::rms_norm_matmul_many(in, targets);
  for (GemvArgs& a : launches) {
    set_norm(a, in);
    launch_gemv(a, multiprocessors_, stream_);
  }
}

void CudaBackend::matmul_swiglu(const Tensor& x, const MatmulTarget& gate, const MatmulTarget& up) {
  const std::optional<GemvArgs> args = swiglu_gemv_args("matmul_swiglu", x, gate, up);
  if (!args) return Backend::matmul_swiglu(x, gate, up);
  launch_gemv_swiglu(*args, multiprocessors_, stream_);
}

void CudaBackend::rms_norm_matmul_swiglu(const RmsNormInput& in, const MatmulTarget& gate, const MatmulTarget& up) {
  const char* op = "rms_norm_matmul_swiglu";
  ROOFLINE_CHECK(in.residual && in.weight && in.normed, "{}: residual, weight and normed are required", op);
  std::optional<GemvArgs> args;
  if (norm_fusable(in)) args = swiglu_gemv_args(op, *in.normed, gate, up);
  if (!args) return Backend::rms_norm_matmul_swiglu(in, gate, up);
  set_norm(*args, in);
  launch_gemv_swiglu(*args, multiprocessors_, stream_);
}

// ---- embedding, elementwise ----

void CudaBackend::embedding(Tensor& out, const Tensor& table, const int32_t* ids, int64_t count) {
  ROOFLINE_CHECK(count >= 0 && (count == 0 || ids != nullptr), "embedding: no ids given for {} rows", count);
  ROOFLINE_CHECK(table.rank() == 2, "embedding: table must be [vocab, width], got {}", shape_to_string(table.shape()));
  for (int64_t t = 0; t < count; ++t)
    ROOFLINE_CHECK(ids[t] >= 0 && ids[t] < table.dim(0), "embedding: id {} (row {}) is outside the table [0, {})",
                   ids[t], t, table.dim(0));
  const int32_t* device_ids = stage_ids("embedding", ids, count);
  Tensor ids_view(DType::I32, {count}, const_cast<int32_t*>(device_ids), Device::CUDA);
  embedding(out, table, ids_view);
}

void CudaBackend::embedding(Tensor& out, const Tensor& table, const Tensor& ids) {
  const char* op = "embedding";
  check_on_device(op, out, "out");
  check_on_device(op, table, "table");
  check_on_device(op, ids, "ids");
  check_dtype(op, ids, DType::I32, "ids");
  ROOFLINE_CHECK(table.rank() == 2, "embedding: table must be [vocab, width], got {}", shape_to_string(table.shape()));
  const int64_t count = ids.numel(), width = table.dim(1);
  ROOFLINE_CHECK(out.rank() == 2 && out.dim(0) == count && out.dim(1) == width, "embedding: out {} must be [{}, {}]",
                 shape_to_string(out.shape()), count, width);
  launch_embedding(out.data(), float_elem(op, out, "out"), table.data(), float_elem(op, table, "table"), table.dim(0),
                   ids.ptr<int32_t>(), count, width, stream_);
}

void CudaBackend::add(Tensor& inout, const Tensor& x) {
  check_on_device("add", inout, "inout");
  check_on_device("add", x, "x");
  check_same("add", inout, "inout", x, "x");
  launch_add(inout.data(), x.data(), float_elem("add", inout, "inout"), inout.numel(), stream_);
}

void CudaBackend::add_row(Tensor& inout, int64_t t, const Tensor& table, int64_t row) {
  const char* op = "add_row";
  check_on_device(op, inout, "inout");
  check_on_device(op, table, "table");
  const int64_t width = last_dim(inout);
  ROOFLINE_CHECK(table.rank() == 2 && table.dim(1) == width, "add_row: table {} must be [rows, {}]",
                 shape_to_string(table.shape()), width);
  ROOFLINE_CHECK(t >= 0 && t < rows_of(inout), "add_row: row {} is outside inout {}", t, shape_to_string(inout.shape()));
  ROOFLINE_CHECK(row >= 0 && row < table.dim(0), "add_row: table row {} is outside [0, {})", row, table.dim(0));
  void* target = byte_offset(inout.data(), t * width * int64_t(dtype_size(inout.dtype())));
  launch_add_rows(target, float_elem(op, inout, "inout"), table.data(), float_elem(op, table, "table"), table.dim(0),
                  nullptr, row, 1, width, stream_);
}

void CudaBackend::add_rows(Tensor& inout, const Tensor& table, const Tensor& rows) {
  const char* op = "add_rows";
  check_on_device(op, inout, "inout");
  check_on_device(op, table, "table");
  check_on_device(op, rows, "rows");
  check_dtype(op, rows, DType::I32, "rows");
  const int64_t width = last_dim(inout);
  ROOFLINE_CHECK(table.rank() == 2 && table.dim(1) == width, "add_rows: table {} must be [rows, {}]",
                 shape_to_string(table.shape()), width);
  ROOFLINE_CHECK(rows.numel() == rows_of(inout), "add_rows: {} row ids for {} rows of inout", rows.numel(),
                 rows_of(inout));
  launch_add_rows(inout.data(), float_elem(op, inout, "inout"), table.data(), float_elem(op, table, "table"),
                  table.dim(0), rows.ptr<int32_t>(), 0, rows.numel(), width, stream_);
}

void CudaBackend::silu_mul(Tensor& out, const Tensor& gate, const Tensor& up) {
  const char* op = "silu_mul";
  check_on_device(op, out, "out");
  check_on_device(op, gate, "gate");
  check_on_device(op, up, "up");
  check_same(op, out, "out", gate, "gate");
  check_same(op, out, "out", up, "up");
  launch_silu_mul(out.data(), gate.data(), up.data(), float_elem(op, out, "out"), out.numel(), stream_);
}

void CudaBackend::gelu_tanh(Tensor& x) {
  check_on_device("gelu_tanh", x, "x");
  launch_gelu_tanh(x.data(), float_elem("gelu_tanh", x, "x"), x.numel(), stream_);
}

void CudaBackend::convert(Tensor& out, const Tensor& in) {
  check_on_device("convert", out, "out");
  check_on_device("convert", in, "in");
  ROOFLINE_CHECK(out.numel() == in.numel(), "convert: out {} and in {} differ in size", shape_to_string(out.shape()),
                 shape_to_string(in.shape()));
  launch_convert(out.data(), float_elem("convert", out, "out"), in.data(), float_elem("convert", in, "in"), in.numel(),
                 stream_);
}

// ---- norms ----

namespace {
NormArgs norm_args(const char* op, Tensor& out, const Tensor& x, const Tensor& weight, float eps) {
  check_on_device(op, out, "out");
  check_on_device(op, x, "x");
  check_on_device(op, weight, "weight");
  if (out.dtype() == x.dtype() || x.dtype() != DType::F32) {
    check_same(op, out, "out", x, "x");
  } else {  // f32 in, narrower out (an f32 residual stream normalised into bf16 activations)
    ROOFLINE_CHECK(out.shape() == x.shape(), "{}: out {} and x {} differ in shape", op, shape_to_string(out.shape()),
                   shape_to_string(x.shape()));
  }
  const int64_t width = last_dim(x);
  check_vector(op, weight, width, "weight");
  ROOFLINE_CHECK(width % 8 == 0 && width <= norm_max_width(), "{}: width {} must be a multiple of 8, at most {}", op,
                 width, norm_max_width());
  NormArgs a;
  a.out = out.data();
  a.x = x.data();
  a.weight = weight.data();
  a.act = float_elem(op, x, "x");
  a.out_type = float_elem(op, out, "out");
  a.weight_type = float_elem(op, weight, "weight");
  a.rows = rows_of(x);
  a.width = width;
  a.eps = eps;
  return a;
}

void set_bias(const char* op, NormArgs& a, const Tensor& weight, const Tensor& bias) {
  check_on_device(op, bias, "bias");
  ROOFLINE_CHECK(bias.shape() == weight.shape() && bias.dtype() == weight.dtype(),
                 "{}: bias ({} {}) must match weight ({} {})", op, dtype_name(bias.dtype()),
                 shape_to_string(bias.shape()), dtype_name(weight.dtype()), shape_to_string(weight.shape()));
  a.bias = bias.data();
  a.layer_norm = true;
}

void set_residual(const char* op, NormArgs& a, Tensor& residual, const Tensor& x) {
  check_on_device(op, residual, "residual");
  if (residual.dtype() == DType::F32 && x.dtype() != DType::F32) {  // an f32 residual stream
    ROOFLINE_CHECK(residual.shape() == x.shape(), "{}: residual {} and x {} differ in shape", op,
                   shape_to_string(residual.shape()), shape_to_string(x.shape()));
  } else {
    check_same(op, residual, "residual", x, "x");
  }
  a.residual = residual.data();
  a.residual_type = float_elem(op, residual, "residual");
}
}  // namespace

void CudaBackend::rms_norm(Tensor& out, const Tensor& x, const Tensor& weight, float eps) {
  launch_norm(norm_args("rms_norm", out, x, weight, eps), stream_);
}

void CudaBackend::layer_norm(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  NormArgs a = norm_args("layer_norm", out, x, weight, eps);
  set_bias("layer_norm", a, weight, bias);
  launch_norm(a, stream_);
}

void CudaBackend::add_rms_norm(Tensor& residual, const Tensor& x, const Tensor& weight, Tensor& out, float eps) {
  NormArgs a = norm_args("add_rms_norm", out, x, weight, eps);
  set_residual("add_rms_norm", a, residual, x);
  launch_norm(a, stream_);
}

void CudaBackend::add_layer_norm(Tensor& residual, const Tensor& x, const Tensor& weight, const Tensor& bias,
                                 Tensor& out, float eps) {
  NormArgs a = norm_args("add_layer_norm", out, x, weight, eps);
  set_bias("add_layer_norm", a, weight, bias);
  set_residual("add_layer_norm", a, residual, x);
  launch_norm(a, stream_);
}

// ---- rope ----

void CudaBackend::rope(Tensor& x, const int32_t* positions, const Tensor& cos, const Tensor& sin, int rotary_dim) {
  ROOFLINE_CHECK(x.rank() == 3, "rope: x must be [T, heads, head_dim], got {}", shape_to_string(x.shape()));
  const int64_t T = x.dim(0);
  ROOFLINE_CHECK(T == 0 || positions != nullptr, "rope: no positions given for {} rows", T);
  for (int64_t t = 0; t < T; ++t)
    ROOFLINE_CHECK(positions[t] >= 0 && (cos.rank() != 2 || positions[t] < cos.dim(0)),
                   "rope: position {} (row {}) is outside the table [0, {})", positions[t], t,
                   cos.rank() == 2 ? cos.dim(0) : 0);
  const int32_t* device_positions = stage_ids("rope", positions, T);
  const Tensor positions_view(DType::I32, {T}, const_cast<int32_t*>(device_positions), Device::CUDA);
  rope(x, positions_view, cos, sin, rotary_dim);
}

void CudaBackend::rope(Tensor& x, const Tensor& positions, const Tensor& cos, const Tensor& sin, int rotary_dim,
                       const Tensor* head_norm, float eps) {
  const char* op = head_norm ? "rope_qk_norm" : "rope";
  check_on_device(op, x, "x");
  check_on_device(op, positions, "positions");
  check_on_device(op, cos, "cos");
  check_on_device(op, sin, "sin");
  check_dtype(op, positions, DType::I32, "positions");
  check_dtype(op, cos, DType::F32, "cos");
  check_dtype(op, sin, DType::F32, "sin");
  ROOFLINE_CHECK(x.rank() == 3, "{}: x must be [T, heads, head_dim], got {}", op, shape_to_string(x.shape()));
  const int64_t T = x.dim(0), heads = x.dim(1), head_dim = x.dim(2);
  ROOFLINE_CHECK(rotary_dim > 0 && rotary_dim % 2 == 0 && rotary_dim <= head_dim && head_dim <= rope_max_head_dim(),
                 "{}: rotary_dim {} must be even, positive and <= head_dim {} (at most {})", op, rotary_dim, head_dim,
                 rope_max_head_dim());
  const int64_t half = rotary_dim / 2;
  ROOFLINE_CHECK(cos.rank() == 2 && cos.dim(1) == half && sin.shape() == cos.shape(),
                 "{}: cos {} and sin {} must both be [max_positions, {}]", op, shape_to_string(cos.shape()),
                 shape_to_string(sin.shape()), half);
  ROOFLINE_CHECK(positions.numel() == T, "{}: {} positions for {} rows", op, positions.numel(), T);
  RopeArgs a;
  a.x = x.data();
  a.act = float_elem(op, x, "x");
  a.positions = positions.ptr<int32_t>();
  a.cos = cos.ptr<float>();
  a.sin = sin.ptr<float>();
  a.table_rows = cos.dim(0);
  a.T = T;
  a.heads = heads;
  a.head_dim = head_dim;
  a.rotary_dim = rotary_dim;
  if (head_norm) {
    check_on_device(op, *head_norm, "head_norm");
    check_vector(op, *head_norm, head_dim, "head_norm");
    a.norm_weight = head_norm->data();
    a.norm_type = float_elem(op, *head_norm, "head_norm");
    a.eps = eps;
  }
  launch_rope(a, stream_);
}

// ---- token selection ----

namespace {
void check_selection(const char* op, const Tensor& ids, const Tensor& logits) {
  check_on_device(op, ids, "ids");
  check_on_device(op, logits, "logits");
  check_dtype(op, ids, DType::I32, "ids");
  ROOFLINE_CHECK(logits.rank() == 1 || logits.rank() == 2, "{}: logits must be [B, V] or [V], got {}", op,
                 shape_to_string(logits.shape()));
  ROOFLINE_CHECK(ids.numel() == rows_of(logits), "{}: {} ids for {} rows of logits", op, ids.numel(), rows_of(logits));
}
}  // namespace

void CudaBackend::argmax(Tensor& ids, const Tensor& logits) {
  check_selection("argmax", ids, logits);
  launch_argmax(ids.ptr<int32_t>(), logits.data(), float_elem("argmax", logits, "logits"), rows_of(logits),
                last_dim(logits), stream_);
}

void CudaBackend::sample(Tensor& ids, const Tensor& logits, const GpuSampling& params) {
  if (params.temperature <= 0.0f || params.top_k == 1) return argmax(ids, logits);
  check_selection("sample", ids, logits);
  SampleArgs a;
  a.ids = ids.ptr<int32_t>();
  a.logits = logits.data();
  a.type = float_elem("sample", logits, "logits");
  a.rows = rows_of(logits);
  a.vocab = last_dim(logits);
  a.temperature = params.temperature;
  a.top_k = params.top_k;
  a.top_p = params.top_p;
  a.min_p = params.min_p;
  a.seed = params.seed;
  a.step = params.step;
  launch_sample(a, stream_);
}

std::unique_ptr<CudaBackend> make_cuda_backend(int device_index) { return std::make_unique<CudaBackend>(device_index); }

}  // namespace roofline::cuda
