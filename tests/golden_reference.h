// The float64 transformers references of the fixture models (tests/fixtures/make_fixtures.py): prompt,
// greedy continuation with its top-2 margins, and the logits of every prompt position. Shared by the CPU
// golden tests and the GPU decoder tests.
#pragma once
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "roofline/formats/safetensors.h"
#include "test_support.h"

namespace roofline {

struct Reference {
  std::vector<int32_t> prompt, greedy;
  std::vector<double> margins;
  std::vector<double> logits;  // [T, V] row-major
  int64_t T = 0, V = 0;
};

inline Reference load_reference(const std::string& name) {
  const std::string base = test::fixtures_dir() + "/references/" + name;
  std::ifstream in(base + ".json");
  EXPECT_TRUE(in.good()) << "missing reference " << base << ".json";
  nlohmann::json j = nlohmann::json::parse(in);
  Reference r;
  r.prompt = j["prompt_ids"].get<std::vector<int32_t>>();
  r.greedy = j["greedy_ids"].get<std::vector<int32_t>>();
  r.margins = j["greedy_margins"].get<std::vector<double>>();
  SafetensorsFile file(base + ".safetensors");
  Tensor logits = file.tensor("logits");
  EXPECT_EQ(logits.dtype(), DType::F64);
  r.T = logits.dim(0);
  r.V = logits.dim(1);
  r.logits.assign(logits.ptr<double>(), logits.ptr<double>() + logits.numel());
  return r;
}

}  // namespace roofline

#include <algorithm>
#include <numeric>
#include <random>

#include "roofline/model/decoder.h"

namespace roofline {

// The reference prompt run as two sequences of one paged batch, over shuffled blocks of 4 positions:
// step 1 holds all of A and the first 5 tokens of B, step 2 the rest of B (a chunked prefill next to
// another sequence). Returns A's and B's logits, each [T, V] in the reference's layout, on the host.
struct BatchedLogits {
  std::vector<float> a, b;
};

inline std::vector<float> host_rows(Decoder& decoder, const Tensor& logits, int64_t begin, int64_t end) {
  Tensor host = Tensor::empty(DType::F32, logits.shape());
  decoder.backend().download(logits, host);
  const int64_t V = logits.dim(1);
  return std::vector<float>(host.ptr<float>() + begin * V, host.ptr<float>() + end * V);
}

inline BatchedLogits batched_paged_logits(Decoder& decoder, const std::vector<int32_t>& prompt) {
  const int64_t T = int64_t(prompt.size()), bs = 4, per_seq = (T + bs - 1) / bs, split = 5;
  KvPool pool = decoder.new_pool(2 * per_seq + 3, bs);
  std::vector<int32_t> ids(size_t(pool.num_blocks));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), std::mt19937(11));
  const std::vector<int32_t> table_a(ids.begin(), ids.begin() + per_seq);
  const std::vector<int32_t> table_b(ids.begin() + per_seq, ids.begin() + 2 * per_seq);
  const std::span<const int32_t> all(prompt);
  BatchedLogits out;
  const SequenceStep step1[] = {{all, 0, table_a, true}, {all.subspan(0, split), 0, table_b, true}};
  const Tensor& l1 = decoder.step(step1, pool, /*all_logits=*/true);
  out.a = host_rows(decoder, l1, 0, T);
  out.b = host_rows(decoder, l1, T, T + split);
  const SequenceStep step2[] = {{all.subspan(split), split, table_b, true}};
  const Tensor& l2 = decoder.step(step2, pool, /*all_logits=*/true);
  const std::vector<float> rest = host_rows(decoder, l2, 0, T - split);
  out.b.insert(out.b.end(), rest.begin(), rest.end());
  return out;
}

// A decode batch of three sequences (padded to four rows inside the decoder): each is prefilled with
// a different prefix of the reference prompt, then all three decode the prompt's next tokens together for
// `steps` steps. Returns, per decode step and sequence, the logits row next to the reference row of the
// same position, both flattened: the padding row must change nothing.
struct DecodeBatchLogits {
  std::vector<float> got;
  std::vector<double> want;
};

inline DecodeBatchLogits padded_decode_batch_logits(Decoder& decoder, const std::vector<double>& ref_logits,
                                                    const std::vector<int32_t>& prompt, int64_t steps) {
  const int64_t bs = 4, starts[] = {3, 5, 8}, T = int64_t(prompt.size()), V = int64_t(ref_logits.size()) / T;
  const int64_t per_seq = (T + bs - 1) / bs;
  EXPECT_LE(starts[2] + steps, T) << "the prompt has too few tokens for that many steps";
  KvPool pool = decoder.new_pool(3 * per_seq, bs);
  std::vector<std::vector<int32_t>> tables(3);
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t b = 0; b < per_seq; ++b) tables[size_t(i)].push_back(int32_t(b * 3 + i));  // interleaved
  const std::span<const int32_t> all(prompt);
  for (int64_t i = 0; i < 3; ++i) {
    const SequenceStep prefill[] = {{all.subspan(0, size_t(starts[i])), 0, tables[size_t(i)], true}};
    decoder.step(prefill, pool);
  }
  DecodeBatchLogits out;
  for (int64_t k = 0; k < steps; ++k) {
    std::vector<SequenceStep> batch;
    for (int64_t i = 0; i < 3; ++i) {
      const int64_t p = starts[i] + k;
      batch.push_back({all.subspan(size_t(p), 1), p, tables[size_t(i)], true});
    }
    const Tensor& logits = decoder.step(batch, pool);
    EXPECT_EQ(logits.dim(0), 3) << "one logits row per sequence, padding cut";
    const std::vector<float> rows = host_rows(decoder, logits, 0, 3);
    out.got.insert(out.got.end(), rows.begin(), rows.end());
    for (int64_t i = 0; i < 3; ++i) {
      const int64_t p = starts[i] + k;
      out.want.insert(out.want.end(), ref_logits.begin() + p * V, ref_logits.begin() + (p + 1) * V);
    }
  }
  return out;
}

}  // namespace roofline
