#include "roofline/train/data.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "roofline/core/atomic_file.h"
#include "roofline/core/error.h"
#include "roofline/tokenizer/tokenizer.h"

namespace roofline::train {
namespace fs = std::filesystem;

namespace {

std::string read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot read", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Pieces of about `target` bytes, each ending just after a newline (or at the end of the text).
std::vector<std::string_view> split_pieces(std::string_view text, size_t target) {
  std::vector<std::string_view> out;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = std::min(text.size(), begin + target);
    if (end < text.size()) {
      size_t nl = text.find('\n', end);
      end = nl == std::string_view::npos ? text.size() : nl + 1;
    }
    out.push_back(text.substr(begin, end - begin));
    begin = end;
  }
  return out;
}

void copy_tokenizer_files(const std::string& source, const fs::path& dest) {
  fs::create_directories(dest);
  auto copy = [&](const fs::path& from, const std::string& name) {
    write_file_atomically((dest / name).string(), read_whole(from.string()));
  };
  if (fs::is_directory(source)) {
    bool any = false;
    for (const char* name : {"tokenizer.json", "tokenizer_config.json", "encoder.json", "vocab.bpe", "vocab.json",
                             "merges.txt", "special_tokens_map.json"})
      if (fs::exists(fs::path(source) / name)) {
        copy(fs::path(source) / name, name);
        any = true;
      }
    if (!any) fail("{}: no tokenizer files (tokenizer.json, or encoder.json + vocab.bpe)", source);
  } else {
    copy(source, "tokenizer.json");
  }
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

void write_shard(const std::string& path, const std::vector<int32_t>& tokens, int64_t vocab_size) {
  const uint32_t token_bytes = vocab_size <= 65536 ? 2 : 4;
  std::string header(kShardHeaderBytes, '\0');
  std::memcpy(header.data(), kShardMagic, 8);
  std::memcpy(header.data() + 8, &kShardVersion, 4);
  std::memcpy(header.data() + 12, &token_bytes, 4);
  const uint64_t count = tokens.size(), vocab = uint64_t(vocab_size);
  std::memcpy(header.data() + 16, &count, 8);
  std::memcpy(header.data() + 24, &vocab, 8);
  std::string body(tokens.size() * token_bytes, '\0');
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab_size) fail("{}: token {} outside the vocabulary ({})", path, tokens[i], vocab_size);
    if (token_bytes == 2) {
      const uint16_t t = uint16_t(tokens[i]);
      std::memcpy(body.data() + i * 2, &t, 2);
    } else {
      const uint32_t t = uint32_t(tokens[i]);
      std::memcpy(body.data() + i * 4, &t, 4);
    }
  }
  const std::string_view chunks[] = {header, body};
  write_file_atomically(path, chunks);
}

PrepareSummary prepare_data(const PrepareOptions& o, ThreadPool& pool) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.inputs.empty()) fail("data prepare: no --input files");
  if (!(o.val_fraction >= 0.0 && o.val_fraction < 1.0)) fail("data prepare: --val-fraction must be in [0, 1), got {}", o.val_fraction);
  if (o.shard_tokens <= 0) fail("data prepare: shard size must be positive");
  if (!fs::exists(o.tokenizer)) fail("{}: tokenizer not found", o.tokenizer);
  Tokenizer tok = Tokenizer::from_path(o.tokenizer);
  PrepareSummary summary;
  summary.vocab_size = tok.vocab_size();
  summary.token_bytes = summary.vocab_size <= 65536 ? 2 : 4;

  // BOS-style prefix and an EOS id, as the tokenizer's own post-processing and config give them.
  const std::vector<int32_t> prefix = tok.encode("", true);
  std::optional<int32_t> eos;
  if (!tok.config().eos_token.empty()) eos = tok.token_to_id(tok.config().eos_token);
  if (!eos) eos = tok.token_to_id("<|endoftext|>");

  std::vector<int32_t> all;
  for (const std::string& input : o.inputs) {
    if (!fs::is_regular_file(input)) fail("{}: input file not found", input);
    const std::string text = read_whole(input);
    summary.input_bytes += int64_t(text.size());
    std::vector<std::string_view> pieces = split_pieces(text, 1 << 16);
    std::vector<std::vector<int32_t>> ids(pieces.size());
    pool.parallel_for(pieces.size(), 1, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) ids[i] = tok.encode(pieces[i], false);
    });
    all.insert(all.end(), prefix.begin(), prefix.end());
    for (const auto& p : ids) all.insert(all.end(), p.begin(), p.end());
    if (eos && (prefix.empty() || prefix.back() != *eos)) all.push_back(*eos);
  }
  const int64_t total = int64_t(all.size());
  int64_t val = int64_t(double(total) * o.val_fraction);
  if (o.val_fraction > 0 && val == 0 && total > 1) val = 1;
  const int64_t train = total - val;
  if (train <= 1) fail("data prepare: only {} tokens of training data; give more text", train);

  fs::create_directories(o.output);
  copy_tokenizer_files(o.tokenizer, fs::path(o.output) / "tokenizer");
  nlohmann::ordered_json manifest;
  manifest["format"] = "roofline-tokens";
  manifest["version"] = kShardVersion;
  manifest["vocab_size"] = summary.vocab_size;
  manifest["token_dtype"] = summary.token_bytes == 2 ? "u16" : "u32";
  manifest["tokenizer"] = "tokenizer";
  manifest["inputs"] = o.inputs;
  manifest["val_fraction"] = o.val_fraction;
  auto write_split = [&](const char* name, int64_t begin, int64_t end, int& shards) {
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (int64_t s = begin; s < end; s += o.shard_tokens) {
      const int64_t e = std::min(end, s + o.shard_tokens);
      const std::string file = fmt::format("{}-{:05d}.bin", name, shards++);
      write_shard((fs::path(o.output) / file).string(), std::vector<int32_t>(all.begin() + s, all.begin() + e),
                  summary.vocab_size);
      list.push_back({{"file", file}, {"tokens", e - s}});
    }
    manifest[name] = list;
    manifest[std::string(name) + "_tokens"] = end - begin;
  };
  write_split("train", 0, train, summary.train_shards);
  write_split("val", train, total, summary.val_shards);
  write_file_atomically((fs::path(o.output) / "manifest.json").string(), manifest.dump(2) + "\n");
  summary.train_tokens = train;
  summary.val_tokens = val;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return summary;
}

TokenShard::TokenShard(const std::string& path) : file_(path) {
  if (file_.size() < kShardHeaderBytes || std::memcmp(file_.data(), kShardMagic, 8) != 0)
    fail("{}: not a roofline token shard (bad magic)", path);
  uint32_t version = 0, token_bytes = 0;
  uint64_t count = 0, vocab = 0;
  std::memcpy(&version, file_.data() + 8, 4);
  std::memcpy(&token_bytes, file_.data() + 12, 4);
  std::memcpy(&count, file_.data() + 16, 8);
  std::memcpy(&vocab, file_.data() + 24, 8);
  if (version != kShardVersion) fail("{}: shard version {} is not supported (expected {})", path, version, kShardVersion);
  if (token_bytes != 2 && token_bytes != 4) fail("{}: token size {} bytes is not 2 or 4", path, token_bytes);
  if (count > (file_.size() - kShardHeaderBytes) / token_bytes || file_.size() != kShardHeaderBytes + count * token_bytes)
    fail("{}: truncated or oversized: header says {} tokens, file has {} bytes", path, count, file_.size());
  count_ = int64_t(count);
  vocab_size_ = int64_t(vocab);
  token_bytes_ = int(token_bytes);
}

void TokenShard::read(int64_t begin, int64_t n, int32_t* out) const {
  const uint8_t* p = file_.data() + kShardHeaderBytes;
  if (token_bytes_ == 2) {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t t;
      std::memcpy(&t, p + (begin + i) * 2, 2);
      out[i] = int32_t(t);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      uint32_t t;
      std::memcpy(&t, p + (begin + i) * 4, 4);
      out[i] = int32_t(t);
    }
  }
}

DataSplit::DataSplit(const std::string& dir, const std::string& split) {
  const fs::path manifest_path = fs::path(dir) / "manifest.json";
  if (!fs::exists(manifest_path)) fail("{}: no manifest.json (make one with `roofline data prepare`)", dir);
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(read_whole(manifest_path.string()));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", manifest_path.string(), e.what());
  }
  if (!m.contains(split) || !m[split].is_array()) fail("{}: no '{}' list", manifest_path.string(), split);
  for (const auto& entry : m[split]) {
    if (!entry.is_object() || !entry.contains("file") || !entry["file"].is_string())
      fail("{}: each '{}' entry must be an object with a \"file\" name", manifest_path.string(), split);
    const std::string file = entry["file"].get<std::string>();
    // Shards live in the data directory: a name that climbs out of it is not one prepare wrote.
    const fs::path name(file);
    if (file.empty() || name.is_absolute() || std::ranges::any_of(name, [](const fs::path& part) { return part == ".."; }))
      fail("{}: shard name '{}' is not a file inside {}", manifest_path.string(), file, dir);
    shards_.emplace_back((fs::path(dir) / file).string());
  }
}

DataSplit::DataSplit(std::vector<std::string> shard_paths) {
  for (const std::string& p : shard_paths) shards_.emplace_back(p);
}

int64_t DataSplit::tokens() const {
  int64_t n = 0;
  for (const TokenShard& s : shards_) n += s.size();
  return n;
}

int64_t DataSplit::vocab_size() const { return shards_.empty() ? 0 : shards_[0].vocab_size(); }

int64_t DataSplit::window_starts(int64_t window) const {
  int64_t n = 0;
  for (const TokenShard& s : shards_) n += std::max<int64_t>(0, s.size() - window + 1);
  return n;
}

void DataSplit::read_window(int64_t start, int64_t window, int32_t* out) const {
  for (const TokenShard& s : shards_) {
    const int64_t starts = std::max<int64_t>(0, s.size() - window + 1);
    if (start < starts) return s.read(start, window, out);
    start -= starts;
  }
  fail("data: window start out of range");
}

bool DataSplit::read_sequential(int64_t index, int64_t window, int32_t* out) const {
  // Consecutive windows overlap by one token so that every token is a target once.
  const int64_t stride = window - 1;
  for (const TokenShard& s : shards_) {
    const int64_t count = s.size() >= window ? (s.size() - 1) / stride : 0;
    if (index < count) {
      s.read(index * stride, window, out);
      return true;
    }
    index -= count;
  }
  return false;
}

DataLoader::DataLoader(const DataSplit& split, int64_t B, int64_t T, uint64_t seed, int64_t next_batch, int prefetch)
    : split_(split), B_(B), T_(T), seed_(seed), next_batch_(next_batch), prefetch_(std::max(prefetch, 0)),
      produced_(next_batch) {
  if (split.window_starts(T + 1) <= 0)
    fail("data: {} tokens are too few for one window of {} (--seq {} + 1)", split.tokens(), T + 1, T);
  if (prefetch_ > 0) thread_ = std::thread([this] { produce(); });
}

DataLoader::~DataLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::vector<int32_t> DataLoader::batch(int64_t n) const {
  const int64_t window = T_ + 1, starts = split_.window_starts(window);
  std::vector<int32_t> out(size_t(B_ * window));
  for (int64_t b = 0; b < B_; ++b) {
    const uint64_t h = splitmix64(seed_ ^ splitmix64(uint64_t(n * B_ + b)));
    split_.read_window(int64_t(h % uint64_t(starts)), window, out.data() + b * window);
  }
  return out;
}

void DataLoader::produce() {
  try {
    while (true) {
      int64_t n;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stop_ || int(ready_.size()) < prefetch_; });
        if (stop_) return;
        n = produced_++;
      }
      std::vector<int32_t> b = batch(n);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ready_.emplace_back(n, std::move(b));
      }
      cv_.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::current_exception();
    cv_.notify_all();
  }
}

std::vector<int32_t> DataLoader::next() {
  if (prefetch_ == 0) return batch(next_batch_++);
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [&] { return !ready_.empty() || error_; });
  if (error_) std::rethrow_exception(error_);
  auto [n, b] = std::move(ready_.front());
  ready_.pop_front();
  lock.unlock();
  cv_.notify_all();
  if (n != next_batch_) fail("data: prefetched batch {} where {} was expected", n, next_batch_);
  ++next_batch_;
  return b;
}

}  // namespace roofline::train
