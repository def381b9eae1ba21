// Deterministic parallel reductions over rows: the rows are cut into a fixed number of chunks (never the
// thread count), each chunk sums into its own buffer, and the chunks are added in order. So parameter
// gradients such as a norm weight's (a sum over every token) repeat bit for bit on any number of threads.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "roofline/core/thread_pool.h"

namespace roofline::train {

inline constexpr int64_t kReduceChunks = 16;
// Chunks (each one `width` floats of partial sums, allocated per call) a reduction over `rows` rows uses.
constexpr int64_t reduce_chunks(int64_t rows) { return std::min<int64_t>(kReduceChunks, std::max<int64_t>(rows, 1)); }

// out[0..width) += sum over rows r of contribution(r, partial) where contribution adds row r's share into
// `partial` (width floats, zeroed per chunk). Rows of one chunk run in order.
inline void reduce_rows(ThreadPool& pool, int64_t rows, int64_t width, float* out,
                        const std::function<void(int64_t row_begin, int64_t row_end, float* partial)>& body) {
  const int64_t chunks = reduce_chunks(rows);
  std::vector<float> partials(size_t(chunks * width), 0.0f);
  pool.parallel_for(size_t(chunks), 1, [&](size_t b, size_t e) {
    for (size_t c = b; c < e; ++c) {
      const int64_t r0 = rows * int64_t(c) / chunks, r1 = rows * int64_t(c + 1) / chunks;
      body(r0, r1, partials.data() + int64_t(c) * width);
    }
  });
  for (int64_t c = 0; c < chunks; ++c)
    for (int64_t j = 0; j < width; ++j) out[j] += partials[size_t(c * width + j)];
}

// Runs body(begin, end) over [0, n) rows in parallel; for element-wise work whose result does not depend
// on the split.
inline void for_rows(ThreadPool& pool, int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  pool.parallel_for(size_t(n), size_t(std::max<int64_t>(grain, 1)),
                    [&](size_t b, size_t e) { body(int64_t(b), int64_t(e)); });
}

}  // namespace roofline::train
