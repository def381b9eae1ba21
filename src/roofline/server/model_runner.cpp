#include "roofline/server/model_runner.h"

#include <algorithm>
#include <unordered_map>

#include "roofline/core/error.h"

namespace roofline::server {
namespace {

class PagedKvRunner final : public ModelRunner {
 public:
  PagedKvRunner(Decoder& decoder, int64_t num_blocks, int64_t block_size)
      : decoder_(decoder), pool_(decoder.new_pool(num_blocks, block_size)) {}

  int64_t vocab_size() const override { return decoder_.spec().vocab_size; }
  bool shares_kv_blocks() const override { return true; }

  void execute(std::span<const RunRequest> batch, std::vector<std::span<const float>>& logits,
               std::vector<int32_t>& chosen) override {
    logits.assign(batch.size(), {});
    chosen.assign(batch.size(), -1);
    if (batch.empty()) return;
    steps_.clear();
    for (const RunRequest& r : batch) {
      ROOFLINE_CHECK(r.plan != nullptr, "model runner: request {} has no scheduler plan", r.id);
      std::vector<int32_t>& table = tables_[r.id];
      if (r.plan->starts_table) table.clear();
      table.insert(table.end(), r.plan->new_blocks.ids.begin(), r.plan->new_blocks.ids.end());
      steps_.push_back({r.tokens, int64_t(r.start), table, r.wants_logits});
    }
    const PhaseScope phase(step_phase(steps_));  // choosing the tokens belongs to the step (profile)
    const Tensor& out = decoder_.step(steps_, pool_, /*all_logits=*/false);  // one row per sampling request
    if (out.numel() == 0) return;
    Backend& backend = decoder_.backend();
    const int64_t V = vocab_size();
    // On a device, rows that allow it are chosen there (one argmax over every row, then a draw for each
    // sampled row), and the full rows cross to the host only when some request needs them.
    bool host_rows = backend.device() == Device::CPU;
    for (const RunRequest& r : batch) host_rows = host_rows || (r.wants_logits && r.sampling == nullptr);
    if (!host_rows) {
      const int64_t rows = out.dim(0);
      if (!ids_.defined() || ids_.dim(0) < rows) {
        ids_ = backend.alloc(DType::I32, {std::max<int64_t>(rows, 64)});
        host_ids_ = Tensor::empty(DType::I32, {ids_.dim(0)});
      }
      Tensor ids = ids_.rows(0, rows), host_ids = host_ids_.rows(0, rows);
      backend.argmax(ids, out);
      int64_t row = 0;
      for (const RunRequest& r : batch) {
        if (!r.wants_logits) continue;
        const SamplingParams& p = *r.sampling;
        if (p.temperature > 0.0 && p.top_k != 1) {
          Tensor one = ids.rows(row, row + 1);
          backend.sample(one, out.rows(row, row + 1), p.on_device(r.sample_step));
        }
        ++row;
      }
      backend.download(ids, host_ids);
      row = 0;
      for (size_t i = 0; i < batch.size(); ++i)
        if (batch[i].wants_logits) chosen[i] = host_ids.ptr<int32_t>()[row++];
      return;
    }
    host_.resize(size_t(out.numel()));
    Tensor host(DType::F32, out.shape(), host_.data());
    backend.download(out, host);
    int64_t row = 0;
    for (size_t i = 0; i < batch.size(); ++i)
      if (batch[i].wants_logits) logits[i] = std::span<const float>(host_.data() + row++ * V, size_t(V));
  }

  // Preempted: its blocks went back to the scheduler; it is re-admitted with a new table.
  void preempt(serving::RequestId id) override { tables_.erase(id); }
  void release(serving::RequestId id) override { tables_.erase(id); }

 private:
  Decoder& decoder_;
  KvPool pool_;
  std::unordered_map<serving::RequestId, std::vector<int32_t>> tables_;
  std::vector<SequenceStep> steps_;
  std::vector<float> host_;  // [sampling requests][V]: the logits handed out by the last execute
  Tensor ids_, host_ids_;    // tokens chosen on the device, and their host copy
};

}  // namespace

std::unique_ptr<ModelRunner> make_paged_kv_runner(Decoder& decoder, int64_t num_blocks, int64_t block_size) {
  return std::make_unique<PagedKvRunner>(decoder, num_blocks, block_size);
}

}  // namespace roofline::server
