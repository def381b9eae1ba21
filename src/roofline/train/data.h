// Training data: token shards on disk and the loader that samples windows from them.
//
// Shard file (little-endian): a 32-byte header, then `count` tokens of `token_bytes` each.
//   char magic[8] = "RLTOKENS"; uint32 version = 1; uint32 token_bytes (2: u16 when the vocabulary fits,
//   else 4: u32); uint64 count; uint64 vocab_size
// A data directory holds train-NNNNN.bin, val-NNNNN.bin, manifest.json and tokenizer/ (a copy of the
// tokenizer files, so that training needs nothing else).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "roofline/core/mapped_file.h"
#include "roofline/core/thread_pool.h"

namespace roofline::train {

inline constexpr char kShardMagic[8] = {'R', 'L', 'T', 'O', 'K', 'E', 'N', 'S'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderBytes = 32;

struct PrepareOptions {
  std::string tokenizer;            // tokenizer.json, or a directory holding one (a model directory)
  std::vector<std::string> inputs;  // text files; each is one document (BOS/EOS as the tokenizer adds them)
  std::string output;               // the data directory (created)
  double val_fraction = 0.05;       // the tail of the token stream that becomes validation data
  int64_t shard_tokens = 100'000'000;
};

struct PrepareSummary {
  int64_t train_tokens = 0, val_tokens = 0;
  int64_t input_bytes = 0;
  int train_shards = 0, val_shards = 0;
  int token_bytes = 2;
  int64_t vocab_size = 0;
  double seconds = 0;
};

// Tokenizes the inputs (in parallel, by pieces cut at line ends) and writes the shards, the manifest and the
// tokenizer copy, each file atomically. Throws roofline::Error with the file and the problem.
PrepareSummary prepare_data(const PrepareOptions& options, ThreadPool& pool);

// Writes one shard file atomically.
void write_shard(const std::string& path, const std::vector<int32_t>& tokens, int64_t vocab_size);

// One mapped shard.
class TokenShard {
 public:
  explicit TokenShard(const std::string& path);
  int64_t size() const { return count_; }
  int64_t vocab_size() const { return vocab_size_; }
  // tokens [begin, begin + n) as int32
  void read(int64_t begin, int64_t n, int32_t* out) const;

 private:
  MappedFile file_;
  int64_t count_ = 0, vocab_size_ = 0;
  int token_bytes_ = 2;
};

// The shards of one split ("train" or "val") of a data directory, from its manifest.
class DataSplit {
 public:
  DataSplit(const std::string& dir, const std::string& split);
  // Shards given directly (tests).
  explicit DataSplit(std::vector<std::string> shard_paths);
  int64_t tokens() const;
  int64_t vocab_size() const;
  bool empty() const { return shards_.empty() || tokens() == 0; }
  // Number of distinct window starts for windows of `window` tokens (windows never cross shards).
  int64_t window_starts(int64_t window) const;
  // The window starting at global start index `start` (0 <= start < window_starts(window)).
  void read_window(int64_t start, int64_t window, int32_t* out) const;
  // Window number `index` of the consecutive, non-overlapping windows (validation); false past the end.
  bool read_sequential(int64_t index, int64_t window, int32_t* out) const;

 private:
  std::vector<TokenShard> shards_;
};

// Batches of B windows of T+1 tokens, sampled uniformly (with replacement) from the split by a counter-based
// hash of (seed, sample index): batch n is the same whatever happened before, so the loader's whole state is
// the index of the next batch, and save/restore is exact. A thread prefetches the next batches.
// Batches the loader's thread keeps ready by default; with the one being trained, kLoaderPrefetch + 1 batches
// are alive at once.
inline constexpr int kLoaderPrefetch = 2;

class DataLoader {
 public:
  DataLoader(const DataSplit& split, int64_t B, int64_t T, uint64_t seed, int64_t next_batch = 0,
             int prefetch = kLoaderPrefetch);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // The next batch [B, T+1]; advances position().
  std::vector<int32_t> next();
  int64_t position() const { return next_batch_; }
  // Batch n, computed directly (what next() returns for position n).
  std::vector<int32_t> batch(int64_t n) const;

 private:
  void produce();

  const DataSplit& split_;
  int64_t B_, T_;
  uint64_t seed_;
  int64_t next_batch_;
  int prefetch_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::pair<int64_t, std::vector<int32_t>>> ready_;
  int64_t produced_;
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace roofline::train
