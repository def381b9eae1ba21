// Paged, batched attention on the GPU (CudaBackend::paged_attention) against a float64 reference, plus
// store_kv and gather_rows. Every case draws fresh random inputs, hands each sequence shuffled block ids, and
// fills every pool row no query may read (unused blocks, rows past a sequence's context, rows before the
// first query's window) with NaN, so reading one poisons the output; the output starts as NaN, so every row
// must be written. Batches are varlen with odd lengths; the decode path (max_query_len <= 16) and the prefill
// path (longer queries, chunked prefill after existing context, decode rows mixed in; every prefill case on both
// prefill kernels, mma.sync and the Hopper wgmma one) are both covered, with
// GQA 1, 2, 4, 8, 12, 16 and 24, head_dim 64 and 128 (and the test models' 16 and 32), sliding windows, block_size 1, 16 and one block per sequence, and
// bounds looser than the lengths. A recorded step (CUDA graph) is replayed with other lengths within its bounds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "gpu_test_util.h"

namespace roofline::test {
namespace {

struct Seq {
  int n;        // query rows this step
  int context;  // keys, this step's included
};

struct PagedCase {
  std::string label;
  int D = 128, Hq = 8, Hkv = 2, block_size = 16, window = 0;
  std::vector<Seq> seqs;
  int extra_query_len = 0, extra_context_len = 0;  // bounds looser than the lengths
  std::string name() const {
    return fmt::format("{}_D{}_Hq{}_Hkv{}_bs{}_w{}", label, D, Hq, Hkv, block_size, window);
  }
};

int max_query_len(const std::vector<Seq>& seqs) {
  int m = 0;
  for (const Seq& s : seqs) m = std::max(m, s.n);
  return m;
}
int max_context_len(const std::vector<Seq>& seqs) {
  int m = 0;
  for (const Seq& s : seqs) m = std::max(m, s.context);
  return m;
}

// The host image of a batch: pools [num_blocks, block_size, Hkv, D] with shuffled blocks per sequence.
struct HostBatch {
  int D, Hq, Hkv, block_size, window, num_blocks, max_blocks, T;
  std::vector<Seq> seqs;
  std::vector<int32_t> query_start, context_len, block_table;  // block_table [B, max_blocks], -1 when unused
  std::vector<float> q, k, v;
  double scale;
};

// Positions a query of sequence s may read start at first_visible(first query's position).
int first_read(const Seq& s, int window) {
  const int pos = s.context - s.n;
  return window > 0 ? std::max(0, pos - window + 1) : 0;
}

HostBatch make_batch(int D, int Hq, int Hkv, int block_size, int window, const std::vector<Seq>& seqs, int table_positions,
                     uint32_t seed) {
  HostBatch h{D, Hq, Hkv, block_size, window, 0, 0, 0, seqs, {}, {}, {}, {}, {}, {}, 1.0 / std::sqrt(double(D))};
  const int B = int(seqs.size());
  h.max_blocks = std::max(1, (table_positions + block_size - 1) / block_size);
  int used = 0;
  h.query_start.push_back(0);
  for (const Seq& s : seqs) {
    used += (s.context + block_size - 1) / block_size;
    h.query_start.push_back(h.query_start.back() + s.n);
    h.context_len.push_back(s.context);
  }
  h.T = h.query_start.back();
  h.num_blocks = used + 3;  // spare blocks nobody owns
  std::vector<int32_t> ids(size_t(h.num_blocks));
  std::iota(ids.begin(), ids.end(), 0);
  std::mt19937 rng(seed);
  std::shuffle(ids.begin(), ids.end(), rng);
  h.block_table.assign(size_t(B) * size_t(h.max_blocks), -1);
  size_t next = 0;
  for (int b = 0; b < B; ++b)
    for (int blk = 0; blk < (seqs[size_t(b)].context + block_size - 1) / block_size; ++blk)
      h.block_table[size_t(b) * size_t(h.max_blocks) + size_t(blk)] = ids[next++];

  const size_t row = size_t(Hkv) * size_t(D), pool_rows = size_t(h.num_blocks) * size_t(block_size);
  h.q = random_floats(size_t(h.T) * size_t(Hq) * size_t(D), seed + 1, -2.0f, 2.0f);
  h.k = random_floats(pool_rows * row, seed + 2, -2.0f, 2.0f);
  h.v = random_floats(pool_rows * row, seed + 3);
  // NaN everywhere, then the readable rows get their values back.
  std::vector<char> readable(pool_rows, 0);
  for (int b = 0; b < B; ++b) {
    const Seq& s = seqs[size_t(b)];
    for (int p = first_read(s, window); p < s.context; ++p) {
      const int32_t block = h.block_table[size_t(b) * size_t(h.max_blocks) + size_t(p / block_size)];
      readable[size_t(block) * size_t(block_size) + size_t(p % block_size)] = 1;
    }
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (size_t r = 0; r < pool_rows; ++r)
    if (!readable[r])
      for (size_t i = 0; i < row; ++i) h.k[r * row + i] = h.v[r * row + i] = nan;
  return h;
}

// bf16-rounded copy of values (what the device holds), as doubles.
std::vector<double> rounded(const std::vector<float>& values) {
  std::vector<uint16_t> bf(values.size());
  std::vector<float> back(values.size());
  convert_from_f32(DType::BF16, values.data(), bf.data(), values.size());
  convert_to_f32(DType::BF16, bf.data(), back.data(), values.size());
  return std::vector<double>(back.begin(), back.end());
}

std::vector<double> reference(const HostBatch& h) {
  const std::vector<double> q = rounded(h.q), k = rounded(h.k), v = rounded(h.v);
  std::vector<double> out(size_t(h.T) * size_t(h.Hq) * size_t(h.D));
  const int group = h.Hq / h.Hkv;
  const size_t row = size_t(h.Hkv) * size_t(h.D);
  std::vector<double> s;
  std::vector<size_t> rows;
  for (size_t b = 0; b < h.seqs.size(); ++b) {
    const Seq& seq = h.seqs[b];
    for (int i = 0; i < seq.n; ++i) {
      const int t = h.query_start[b] + i, pos = seq.context - seq.n + i;
      const int first = h.window > 0 ? std::max(0, pos - h.window + 1) : 0;
      rows.clear();
      for (int j = first; j <= pos; ++j)
        rows.push_back(size_t(h.block_table[b * size_t(h.max_blocks) + size_t(j / h.block_size)]) * size_t(h.block_size) +
                       size_t(j % h.block_size));
      for (int hq = 0; hq < h.Hq; ++hq) {
        const size_t kv_off = size_t(hq / group) * size_t(h.D);
        const double* qr = q.data() + (size_t(t) * size_t(h.Hq) + size_t(hq)) * size_t(h.D);
        s.clear();
        for (size_t r : rows) {
          double dot = 0;
          for (int d = 0; d < h.D; ++d) dot += qr[d] * k[r * row + kv_off + size_t(d)];
          s.push_back(dot * h.scale);
        }
        const double mx = *std::max_element(s.begin(), s.end());
        double sum = 0;
        for (double& x : s) sum += (x = std::exp(x - mx));
        double* o = out.data() + (size_t(t) * size_t(h.Hq) + size_t(hq)) * size_t(h.D);
        for (int d = 0; d < h.D; ++d) {
          double acc = 0;
          for (size_t j = 0; j < rows.size(); ++j) acc += s[j] * v[rows[j] * row + kv_off + size_t(d)];
          o[d] = acc / sum;
        }
      }
    }
  }
  return out;
}

Tensor upload_i32_shaped(cuda::CudaBackend& gpu, const std::vector<int32_t>& values, Shape shape) {
  Tensor host = Tensor::empty(DType::I32, std::move(shape));
  std::copy(values.begin(), values.end(), host.ptr<int32_t>());
  return gpu.upload(host, DType::I32);
}

// Device tensors of a host batch.
struct DeviceBatch {
  Tensor q, k, v, query_start, context_len, block_table;
};

DeviceBatch upload_batch(cuda::CudaBackend& gpu, const HostBatch& h) {
  DeviceBatch d;
  d.q = upload_values(gpu, DType::BF16, {h.T, h.Hq, h.D}, h.q).tensor;
  d.k = upload_values(gpu, DType::BF16, {h.num_blocks, h.block_size, h.Hkv, h.D}, h.k).tensor;
  d.v = upload_values(gpu, DType::BF16, {h.num_blocks, h.block_size, h.Hkv, h.D}, h.v).tensor;
  d.query_start = upload_i32(gpu, h.query_start);
  d.context_len = upload_i32(gpu, h.context_len);
  d.block_table = upload_i32_shaped(gpu, h.block_table, {int64_t(h.seqs.size()), h.max_blocks});
  return d;
}

PagedAttentionBatch batch_of(const HostBatch& h, const DeviceBatch& d, int max_query, int max_context) {
  PagedAttentionBatch batch;
  batch.num_seqs = int(h.seqs.size());
  batch.max_query_len = max_query;
  batch.max_context_len = max_context;
  batch.block_size = h.block_size;
  batch.sliding_window = h.window;
  batch.scale = float(h.scale);
  batch.query_start = &d.query_start;
  batch.context_len = &d.context_len;
  batch.block_table = &d.block_table;
  return batch;
}

class GpuPagedAttention : public GpuTest, public ::testing::WithParamInterface<PagedCase> {};

TEST_P(GpuPagedAttention, MatchesFloat64Reference) {
  const PagedCase& c = GetParam();
  const int max_q = max_query_len(c.seqs) + c.extra_query_len;
  const int max_ctx = max_context_len(c.seqs) + c.extra_context_len;
  const uint32_t seed = uint32_t(std::hash<std::string>{}(c.name()));
  const HostBatch h = make_batch(c.D, c.Hq, c.Hkv, c.block_size, c.window, c.seqs, max_ctx, seed);
  const DeviceBatch d = upload_batch(gpu(), h);
  const std::vector<double> want = reference(h);
  // A mixed step whose leading sequences have one query row each: those may run on the decode kernel apart,
  // the rest on each prefill kernel from the shifted arrays.
  int leading = 0;
  while (leading < int(c.seqs.size()) && c.seqs[size_t(leading)].n == 1) ++leading;
  // Prefill batches run on both prefill kernels (mma.sync and, for bf16 head_dim 64/128, wgmma).
  for (cuda::PrefillKernel kernel : kPrefillKernels) {
    const PrefillKernelScope scope(kernel);
    Tensor out = poisoned(gpu(), DType::BF16, {h.T, c.Hq, c.D});
    gpu().paged_attention(out, d.q, d.k, d.v, batch_of(h, d, max_q, max_ctx));
    expect_close(download_values(gpu(), out), want, 1e-2, c.name() + " " + prefill_kernel_name(kernel));
    if (max_q <= cuda::kPagedDecodeMaxQueryLen) break;  // the decode kernel: one run is enough
    if (leading == 0) continue;
    PagedAttentionBatch batch = batch_of(h, d, max_q, max_ctx);
    batch.leading_single_query_seqs = leading;
    Tensor split = poisoned(gpu(), DType::BF16, {h.T, c.Hq, c.D});
    gpu().paged_attention(split, d.q, d.k, d.v, batch);
    expect_close(download_values(gpu(), split), want, 1e-2,
                 c.name() + " " + prefill_kernel_name(kernel) + ", the leading decode rows split off");
  }
}

std::vector<PagedCase> cases() {
  std::vector<PagedCase> out;
  const std::vector<Seq> decode = {{1, 1}, {1, 17}, {1, 255}, {1, 1000}, {1, 4097}};
  const std::vector<Seq> prefill = {{1, 1}, {17, 17}, {255, 255}, {1000, 1000}};
  for (int D : {64, 128})
    for (auto [Hq, Hkv] : std::vector<std::pair<int, int>>{{8, 8}, {8, 2}, {8, 1}}) {
      out.push_back({"decode", D, Hq, Hkv, 16, 0, decode});
      out.push_back({"prefill", D, Hq, Hkv, 16, 0, prefill});
    }
  // The small head dims of the test models.
  for (int D : {16, 32}) {
    out.push_back({"decode_small_d", D, 4, 2, 16, 0, decode});
    out.push_back({"prefill_small_d", D, 4, 2, 16, 0, {{1, 1}, {17, 17}, {255, 300}, {70, 70}}});
    out.push_back({"prefill_small_d_window", D, 4, 2, 16, 5, {{30, 30}, {130, 200}}});
  }
  // Decode: windows, several rows per sequence, block sizes 1 and one block per sequence, a GQA group wider
  // than one CTA's heads, loose bounds, many sequences, a long context over many chunks.
  out.push_back({"decode_window", 128, 8, 2, 16, 300, decode});
  out.push_back({"decode_window", 64, 8, 1, 16, 1, decode});
  out.push_back({"decode_rows", 64, 8, 2, 16, 0, {{1, 20}, {3, 300}, {16, 1000}, {7, 7}}});
  out.push_back({"decode_rows_window", 128, 8, 2, 16, 100, {{2, 20}, {16, 1000}, {5, 333}}});
  out.push_back({"decode_bs1", 128, 8, 2, 1, 0, {{1, 1}, {1, 17}, {1, 255}, {2, 300}}});
  out.push_back({"decode_one_block", 128, 8, 2, 5000, 0, {{1, 17}, {1, 1000}, {1, 4097}}});
  out.push_back({"decode_gqa12", 128, 12, 1, 16, 0, {{1, 999}, {2, 64}}});
  // GQA 2, 16 (one CTA: all 16 m16 rows of the tensor-core kernel) and 24 (two CTAs per kv head).
  out.push_back({"decode_gqa2", 128, 8, 4, 16, 0, {{1, 5}, {1, 1000}, {3, 3000}}});
  out.push_back({"decode_gqa2", 64, 8, 4, 16, 37, {{1, 500}, {2, 90}}});
  out.push_back({"decode_gqa16", 128, 16, 1, 16, 0, {{1, 999}, {2, 64}, {1, 20000}}});
  out.push_back({"decode_gqa16_window", 64, 32, 2, 16, 700, {{1, 2000}, {5, 700}}});
  out.push_back({"decode_gqa24", 64, 24, 1, 16, 0, {{1, 333}, {16, 4100}}});
  out.push_back({"decode_loose", 64, 8, 2, 16, 0, {{1, 100}, {1, 3}}, 5, 3000});
  out.push_back({"decode_long", 128, 8, 2, 16, 0, {{1, 32768}, {1, 9000}}});
  {
    std::vector<Seq> many;
    std::mt19937 rng(7);
    for (int b = 0; b < 64; ++b) many.push_back({1, 1 + int(rng() % 600)});
    out.push_back({"decode_batch64", 128, 32, 8, 16, 0, many});
  }
  // Prefill: chunked (queries after existing context), windows, short sequences (64-row tiles), block sizes 1
  // and one block per sequence, decode rows in a prefill batch, window 1, loose bounds.
  out.push_back({"chunked", 128, 8, 2, 16, 0, {{100, 1100}, {17, 17}, {255, 2000}, {1, 70}}});
  out.push_back({"chunked", 64, 8, 8, 16, 0, {{300, 301}, {65, 1000}}});
  out.push_back({"prefill_window", 128, 8, 2, 16, 256, {{1000, 1000}, {255, 1255}}});
  out.push_back({"prefill_window", 64, 8, 1, 16, 100, {{127, 1127}, {65, 65}}});
  out.push_back({"prefill_window1", 128, 8, 2, 16, 1, {{130, 130}}});
  out.push_back({"prefill_short", 128, 8, 2, 16, 0, {{33, 33}, {64, 100}, {17, 500}}});
  out.push_back({"prefill_short", 64, 8, 2, 16, 0, {{40, 40}, {17, 17}}});
  out.push_back({"prefill_bs1", 128, 8, 2, 1, 0, {{100, 100}, {37, 200}}});
  out.push_back({"prefill_one_block", 128, 8, 2, 2048, 0, {{1000, 1000}, {300, 1500}}});
  out.push_back({"prefill_mixed", 128, 32, 8, 16, 0, {{1, 500}, {1, 37}, {300, 300}, {1, 1}}});
  // Serving's mixed steps: decode rows first (run apart on the decode kernel), then prefill chunks; and a step
  // of decode rows only under a loose query bound (nothing left for the prefill kernel).
  out.push_back({"mixed_split", 128, 32, 8, 16, 0, {{1, 500}, {1, 2000}, {1, 1}, {300, 300}, {100, 1100}, {1, 9}}});
  out.push_back({"mixed_split_window", 64, 8, 2, 16, 300, {{1, 1000}, {1, 7}, {65, 65}, {1, 3}}});
  out.push_back({"mixed_split_all_decode", 64, 8, 2, 16, 0, {{1, 100}, {1, 3}}, 20, 0});
  out.push_back({"prefill_gqa12", 64, 12, 1, 16, 0, {{77, 100}}});
  out.push_back({"prefill_loose", 128, 8, 2, 16, 0, {{50, 60}, {20, 20}}, 100, 500});
  // Edges of the wgmma kernel's tiles (128 query rows, 128 keys): lengths just around them, a window that
  // ends on a block boundary, long chunked context, GQA 4:1 as served.
  out.push_back({"prefill_tile_edges", 128, 8, 2, 16, 0, {{127, 127}, {128, 128}, {129, 129}, {257, 300}}});
  out.push_back({"prefill_tile_edges", 64, 8, 2, 16, 128, {{129, 129}, {256, 1000}, {64, 64}}});
  out.push_back({"prefill_gqa4_long", 128, 8, 2, 16, 0, {{1300, 1300}, {200, 2100}}});
  out.push_back({"prefill_gqa4_long", 64, 8, 2, 16, 0, {{1537, 1537}}});
  out.push_back({"prefill_window_bs1", 64, 8, 2, 1, 77, {{333, 400}}});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, GpuPagedAttention, ::testing::ValuesIn(cases()), [](const auto& p) {
  return p.param.name() + "_" + std::to_string(p.index);
});

class GpuPaged : public GpuTest {};

// The wgmma prefill kernel's shared-memory layout, descriptors and register fragments on plain products (one
// warpgroup, device/wgmma.cuh): S-like (a b^T, both operands from shared memory, K-major) and PV-like (a b, a
// from registers, b N-major), n and k 64 and 128, against a float64 product of the same bf16 values. If the
// attention cases fail and this passes, the fault is in the pipeline, not the layouts.
TEST_F(GpuPaged, WgmmaLayoutProbeMatchesFloat64Product) {
  for (int n : {64, 128})
    for (int k : {64, 128})
      for (bool b_n_major : {false, true}) {
        const DeviceData a = random_device(gpu(), DType::BF16, {64, k}, uint32_t(7 * n + k + b_n_major), -1.0f, 1.0f);
        const DeviceData b = random_device(gpu(), DType::BF16, b_n_major ? Shape{k, n} : Shape{n, k},
                                           uint32_t(11 * n + 3 * k + b_n_major), -1.0f, 1.0f);
        Tensor c = poisoned(gpu(), DType::F32, {64, n});
        cuda::launch_wgmma_layout_probe(c.ptr<float>(), a.tensor.data(), b.tensor.data(), n, k, b_n_major,
                                        gpu().stream());
        std::vector<double> want(size_t(64) * n, 0.0);
        for (int i = 0; i < 64; ++i)
          for (int j = 0; j < n; ++j) {
            double acc = 0;
            for (int l = 0; l < k; ++l)
              acc += a.values[size_t(i) * k + l] * b.values[b_n_major ? size_t(l) * n + j : size_t(j) * k + l];
            want[size_t(i) * n + j] = acc;
          }
        expect_close(download_values(gpu(), c), want, 1e-5,
                     fmt::format("probe n {} k {} {}", n, k, b_n_major ? "a b (N-major b, a in registers)" : "a b^T"));
      }
}

// Every variant of the wgmma prefill kernel (64- and 128-key blocks, softmax overlapped with the previous
// block's P V or not), called through the kernel-lab arguments, on varlen batches with chunked context, windows,
// decode rows and block sizes 1, 16 and 48 (not a power of two).
TEST_F(GpuPaged, WgmmaPrefillVariantsMatchFloat64Reference) {
  const std::vector<PagedCase> batches = {
      {"chunked", 128, 8, 2, 16, 0, {{100, 1100}, {17, 17}, {255, 2000}, {1, 70}, {300, 300}}},
      {"window", 64, 8, 1, 16, 100, {{127, 1127}, {65, 65}, {260, 300}}},
      {"window_bs48", 128, 8, 2, 48, 130, {{200, 700}, {129, 129}}},
      {"bs1", 64, 8, 2, 1, 0, {{100, 100}, {37, 200}}},
  };
  for (const PagedCase& c : batches) {
    const int max_q = max_query_len(c.seqs), max_ctx = max_context_len(c.seqs);
    const HostBatch h = make_batch(c.D, c.Hq, c.Hkv, c.block_size, c.window, c.seqs, max_ctx,
                                   uint32_t(std::hash<std::string>{}(c.name())) + 5);
    const DeviceBatch d = upload_batch(gpu(), h);
    const std::vector<double> want = reference(h);
    for (int keys : {64, 128})
      for (int overlap : {0, 1}) {
        Tensor out = poisoned(gpu(), DType::BF16, {h.T, c.Hq, c.D});
        cuda::PagedAttentionArgs a;
        a.q = d.q.data();
        a.k_pool = d.k.data();
        a.v_pool = d.v.data();
        a.out = out.data();
        a.Hq = c.Hq;
        a.Hkv = c.Hkv;
        a.D = c.D;
        a.num_seqs = int(c.seqs.size());
        a.max_query_len = max_q;
        a.max_context_len = max_ctx;
        a.block_size = c.block_size;
        a.window = c.window;
        a.scale = float(h.scale);
        a.query_start = d.query_start.ptr<int32_t>();
        a.context_len = d.context_len.ptr<int32_t>();
        a.block_table = d.block_table.ptr<int32_t>();
        a.table_pitch = h.max_blocks;
        a.prefill_kernel = cuda::PrefillKernel::Wgmma;
        a.prefill_keys_per_block = keys;
        a.prefill_overlap = overlap;
        cuda::launch_paged_prefill(a, gpu().multiprocessors(), gpu().stream());
        expect_close(download_values(gpu(), out), want, 1e-2,
                     fmt::format("{} keys {} overlap {}", c.name(), keys, overlap));
      }
  }
}

// out may alias q (the decoder writes attention in place).
TEST_F(GpuPaged, OutMayAliasQ) {
  for (cuda::PrefillKernel kernel : kPrefillKernels)
    for (const std::vector<Seq>& seqs : {std::vector<Seq>{{1, 300}, {1, 17}}, std::vector<Seq>{{200, 300}, {17, 17}}}) {
      const PrefillKernelScope scope(kernel);
      const HostBatch h = make_batch(128, 8, 2, 16, 0, seqs, max_context_len(seqs), 99);
      DeviceBatch d = upload_batch(gpu(), h);
      gpu().paged_attention(d.q, d.q, d.k, d.v, batch_of(h, d, max_query_len(seqs), max_context_len(seqs)));
      expect_close(download_values(gpu(), d.q), reference(h), 1e-2,
                   fmt::format("in place, T = {}, {}", h.T, prefill_kernel_name(kernel)));
    }
}

// A step recorded for bounds and replayed after the lengths, tables and queries change within them.
void check_graph_replay(cuda::CudaBackend& gpu, int max_query, int max_context, const std::vector<Seq>& first,
                        const std::vector<Seq>& second, int window) {
  ASSERT_EQ(first.size(), second.size());
  const int D = 128, Hq = 8, Hkv = 2, bs = 16;
  int T_bound = 0, blocks_bound = 0;
  for (size_t b = 0; b < first.size(); ++b) {
    T_bound += max_query;
    blocks_bound += (max_context + bs - 1) / bs;
  }
  // Device tensors sized for the bounds; each step copies its batch into them.
  const int B = int(first.size()), max_blocks = (max_context + bs - 1) / bs, num_blocks = blocks_bound + 3;
  Tensor q = gpu.alloc(DType::BF16, {T_bound, Hq, D});
  Tensor k = gpu.alloc(DType::BF16, {num_blocks, bs, Hkv, D});
  Tensor v = gpu.alloc(DType::BF16, {num_blocks, bs, Hkv, D});
  Tensor out = gpu.alloc(DType::BF16, {T_bound, Hq, D});
  Tensor query_start = gpu.alloc(DType::I32, {B + 1});
  Tensor context_len = gpu.alloc(DType::I32, {B});
  Tensor block_table = gpu.alloc(DType::I32, {B, max_blocks});
  PagedAttentionBatch batch;
  batch.num_seqs = B;
  batch.max_query_len = max_query;
  batch.max_context_len = max_context;
  batch.block_size = bs;
  batch.sliding_window = window;
  batch.scale = float(1.0 / std::sqrt(double(D)));
  batch.query_start = &query_start;
  batch.context_len = &context_len;
  batch.block_table = &block_table;

  std::unique_ptr<RecordedOps> graph;
  uint32_t seed = 500;
  for (const std::vector<Seq>* seqs : {&first, &second, &first}) {
    HostBatch h = make_batch(D, Hq, Hkv, bs, window, *seqs, max_context, seed++);
    ASSERT_LE(h.num_blocks, num_blocks);
    ASSERT_LE(h.T, T_bound);
    std::vector<float> k_full(size_t(num_blocks) * bs * Hkv * D, std::numeric_limits<float>::quiet_NaN());
    std::vector<float> v_full = k_full;
    std::copy(h.k.begin(), h.k.end(), k_full.begin());
    std::copy(h.v.begin(), h.v.end(), v_full.begin());
    std::vector<float> q_full(size_t(T_bound) * Hq * D, 0.5f);
    std::copy(h.q.begin(), h.q.end(), q_full.begin());
    // Staged through bf16 host tensors, copied on the stream (ordered before the replay).
    auto to_bf16 = [](const std::vector<float>& f) {
      std::vector<uint16_t> b(f.size());
      convert_from_f32(DType::BF16, f.data(), b.data(), f.size());
      return b;
    };
    const auto qb = to_bf16(q_full), kb = to_bf16(k_full), vb = to_bf16(v_full);
    gpu.copy_from_host(q, qb.data());
    gpu.copy_from_host(k, kb.data());
    gpu.copy_from_host(v, vb.data());
    gpu.copy_from_host(query_start, h.query_start.data());
    gpu.copy_from_host(context_len, h.context_len.data());
    gpu.copy_from_host(block_table, h.block_table.data());
    EXPECT_EQ(cudaMemsetAsync(out.data(), 0xff, out.nbytes(), gpu.stream()), cudaSuccess);
    if (!graph) {
      gpu.paged_attention(out, q, k, v, batch);  // eager first: sizes the workspace for these bounds
      gpu.synchronize();
      graph = gpu.record([&] { gpu.paged_attention(out, q, k, v, batch); });
      ASSERT_NE(graph, nullptr);
      EXPECT_EQ(cudaMemsetAsync(out.data(), 0xff, out.nbytes(), gpu.stream()), cudaSuccess);
    }
    graph->replay();
    std::vector<double> got = download_values(gpu, out);
    got.resize(size_t(h.T) * Hq * D);  // rows past this step's queries are not written
    expect_close(got, reference(h), 1e-2, fmt::format("replay, T = {}, seed {}", h.T, seed - 1));
  }
}

TEST_F(GpuPaged, RecordedDecodeReplaysForOtherLengths) {
  check_graph_replay(gpu(), 1, 2048, {{1, 2000}, {1, 17}, {1, 1}, {1, 1024}}, {{1, 5}, {1, 2048}, {1, 300}, {1, 999}},
                     0);
  check_graph_replay(gpu(), 4, 3000, {{4, 2000}, {1, 17}}, {{2, 2999}, {4, 4}}, 500);
}

TEST_F(GpuPaged, RecordedPrefillReplaysForOtherLengths) {
  for (cuda::PrefillKernel kernel : kPrefillKernels) {
    SCOPED_TRACE(prefill_kernel_name(kernel));
    const PrefillKernelScope scope(kernel);
    check_graph_replay(gpu(), 200, 1500, {{200, 200}, {17, 1000}, {1, 1}}, {{5, 1500}, {200, 700}, {100, 100}}, 0);
  }
}

TEST_F(GpuPaged, StoreKvWritesRowsAtSlotsAndSkipsNegativeOnes) {
  for (DType dtype : {DType::BF16, DType::F32}) {
    const int num_blocks = 5, bs = 4, Hkv = 2, D = 64, T = 9;
    const size_t row = size_t(Hkv) * D;
    const std::vector<int32_t> slots = {3, -1, 19, 0, 7, -5, 12, 18, 1};
    const DeviceData k = random_device(gpu(), dtype, {T, Hkv, D}, 31);
    const DeviceData v = random_device(gpu(), dtype, {T, Hkv, D}, 32);
    Tensor k_pool = poisoned(gpu(), dtype, {num_blocks, bs, Hkv, D});
    Tensor v_pool = poisoned(gpu(), dtype, {num_blocks, bs, Hkv, D});
    gpu().store_kv(k_pool, v_pool, k.tensor, v.tensor, upload_i32(gpu(), slots));
    const auto kp = download_values(gpu(), k_pool), vp = download_values(gpu(), v_pool);
    std::vector<int> source(size_t(num_blocks * bs), -1);
    for (int t = 0; t < T; ++t)
      if (slots[size_t(t)] >= 0) source[size_t(slots[size_t(t)])] = t;
    for (size_t r = 0; r < source.size(); ++r)
      for (size_t i = 0; i < row; ++i) {
        if (source[r] < 0) {
          ASSERT_TRUE(std::isnan(kp[r * row + i]) && std::isnan(vp[r * row + i])) << "row " << r << " was written";
        } else {
          ASSERT_EQ(kp[r * row + i], k.values[size_t(source[r]) * row + i]) << dtype_name(dtype) << " row " << r;
          ASSERT_EQ(vp[r * row + i], v.values[size_t(source[r]) * row + i]) << dtype_name(dtype) << " row " << r;
        }
      }
  }
}

TEST_F(GpuPaged, GatherRowsCopiesAnyDtypeAndPoisonsBadIds) {
  const std::vector<int32_t> ids = {4, 0, 4, 2, 7, -1};  // 7 and -1 are outside the 5 rows
  for (DType dtype : {DType::BF16, DType::F32, DType::F16}) {
    for (int64_t width : {3, 64, 1001}) {
      const DeviceData x = random_device(gpu(), dtype, {5, width}, 41);
      Tensor out = poisoned(gpu(), dtype, {int64_t(ids.size()), width});
      gpu().gather_rows(out, x.tensor, upload_i32(gpu(), ids));
      const auto got = download_values(gpu(), out);
      for (size_t i = 0; i < ids.size(); ++i)
        for (int64_t c = 0; c < width; ++c) {
          const double g = got[i * size_t(width) + size_t(c)];
          if (ids[i] < 0 || ids[i] >= 5)
            ASSERT_TRUE(std::isnan(g)) << "a bad id must give a NaN row";
          else
            ASSERT_EQ(g, x.values[size_t(ids[i]) * size_t(width) + size_t(c)]) << dtype_name(dtype) << " width " << width;
        }
    }
  }
  // I32 rows (e.g. token ids): a bad id gives -1 (0xff bytes).
  Tensor x = upload_i32_shaped(gpu(), {10, 11, 12, 20, 21, 22}, {2, 3});
  Tensor out = gpu().alloc(DType::I32, {3, 3});
  gpu().gather_rows(out, x, upload_i32(gpu(), {1, 0, 2}));
  EXPECT_EQ(download_i32(gpu(), out), (std::vector<int32_t>{20, 21, 22, 10, 11, 12, -1, -1, -1}));
}

TEST_F(GpuPaged, BadShapesAreNamedErrors) {
  const HostBatch h = make_batch(128, 8, 2, 16, 0, {{1, 40}, {3, 3}}, 40, 3);
  const DeviceBatch d = upload_batch(gpu(), h);
  Tensor out = gpu().alloc(DType::BF16, {h.T, 8, 128});
  const PagedAttentionBatch good = batch_of(h, d, 3, 40);
  {
    Tensor q96 = gpu().alloc(DType::BF16, {h.T, 8, 96});
    Tensor pool96 = gpu().alloc(DType::BF16, {h.num_blocks, 16, 2, 96});
    expect_error([&] { gpu().paged_attention(q96, q96, pool96, pool96, good); }, "head_dim 96 has no CUDA kernel");
  }
  {
    Tensor pool3 = gpu().alloc(DType::BF16, {h.num_blocks, 16, 3, 128});
    expect_error([&] { gpu().paged_attention(out, d.q, pool3, pool3, good); }, "must be a multiple of Hkv");
  }
  {
    Tensor pool_f32 = gpu().alloc(DType::F32, {h.num_blocks, 16, 2, 128});
    expect_error([&] { gpu().paged_attention(out, d.q, pool_f32, pool_f32, good); }, "k_pool must be BF16");
  }
  {
    Tensor flat = gpu().alloc(DType::BF16, {h.num_blocks * 16, 2, 128});
    expect_error([&] { gpu().paged_attention(out, d.q, flat, flat, good); }, "[num_blocks, block_size, Hkv, D]");
  }
  {
    PagedAttentionBatch b = good;
    b.block_size = 8;
    expect_error([&] { gpu().paged_attention(out, d.q, d.k, d.v, b); }, "block size 16 is not the batch's 8");
  }
  {
    PagedAttentionBatch b = good;
    b.max_context_len = 16 * h.max_blocks + 1;
    expect_error([&] { gpu().paged_attention(out, d.q, d.k, d.v, b); }, "max_blocks * block_size >= max_context_len");
  }
  {
    PagedAttentionBatch b = good;
    b.query_start = nullptr;
    expect_error([&] { gpu().paged_attention(out, d.q, d.k, d.v, b); }, "has no query_start");
  }
  {
    PagedAttentionBatch b = good;
    const Tensor host_lens = Tensor::zeros(DType::I32, {2});
    b.context_len = &host_lens;
    expect_error([&] { gpu().paged_attention(out, d.q, d.k, d.v, b); }, "context_len is a host tensor");
  }
  {
    PagedAttentionBatch b = good;
    b.num_seqs = 3;
    expect_error([&] { gpu().paged_attention(out, d.q, d.k, d.v, b); }, "query_start");
  }
  {
    Tensor k = gpu().alloc(DType::BF16, {2, 2, 128});
    Tensor slots = upload_i32(gpu(), {0, 1, 2});
    Tensor k_pool = d.k, v_pool = d.v;
    expect_error([&] { gpu().store_kv(k_pool, v_pool, k, k, slots); }, "one row per slot");
  }
  {
    Tensor x = gpu().alloc(DType::BF16, {4, 8});
    Tensor small = gpu().alloc(DType::BF16, {2, 4});
    expect_error([&] { gpu().gather_rows(small, x, upload_i32(gpu(), {0, 1})); }, "cannot hold 2 rows");
  }
}

}  // namespace
}  // namespace roofline::test
