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

}  // namespace roofline
