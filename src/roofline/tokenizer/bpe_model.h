// The BPE model of HF `tokenizers` (models/bpe): a word becomes one symbol per character (with
// continuing_subword_prefix / end_of_word_suffix, byte_fallback to <0xAB> tokens, unk fusing), then the
// lowest-ranked adjacent pair is merged until none is left (leftmost first among equal ranks).
//
// Byte-level input: when the pre-tokenizer chain ends with ByteLevel, words arrive as raw bytes and the
// model reads them through the GPT-2 byte map without materializing the mapped string.
//
// Speed: merges are looked up in an open-addressing (left id, right id) -> (rank, merged id) table;
// short words merge by scanning their pair ranks, long ones through HF's heap; results are cached per word.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "roofline/tokenizer/flat_map.h"

namespace roofline::tok {

// The largest token id a tokenizer file may use (16.7M; the largest vocabularies in use have ~256k tokens):
// tables indexed by id are as long as the largest id, and a file must not be able to ask for gigabytes.
constexpr int32_t kMaxTokenId = (1 << 24) - 1;

// A word as the cache sees it: its bytes, its hash and, when short, its bytes zero-padded to 24 so that
// comparing keys is three word compares.
struct WordKey {
  explicit WordKey(std::string_view word);
  std::string_view bytes;
  uint64_t hash;
  uint64_t padded[3] = {0, 0, 0};
  bool is_short() const { return bytes.size() <= sizeof(padded); }
};

// Bounded word -> ids cache (cleared when full), with a direct-mapped front of one cache line per entry
// for the hottest short words. Not thread-safe: BpeModel hands it out under a lock.
class WordCache {
 public:
  explicit WordCache(size_t capacity);
  // Appends the cached ids of key to out; false when absent.
  bool lookup(const WordKey& key, std::vector<int32_t>& out);
  void insert(const WordKey& key, const int32_t* ids, size_t n);

 private:
  struct alignas(64) HotEntry {
    uint64_t key[3] = {0, 0, 0};
    uint64_t hash = 0;
    uint8_t key_len = 0xFF;  // 0xFF: empty
    uint8_t n_ids = 0;
    int32_t ids[6];
  };
  static constexpr size_t kHotEntries = 8192;  // 512 KiB
  static constexpr size_t kHotMaxIds = 6;
  void put_hot(const WordKey& key, const int32_t* ids, size_t n);

  struct Slot {
    uint64_t hash = 0;
    uint32_t key_offset = 0, key_len = ~uint32_t(0);
    uint32_t ids_offset = 0, ids_len = 0;
  };
  size_t capacity_;
  size_t count_ = 0;
  std::vector<HotEntry> hot_;
  std::vector<Slot> slots_;
  std::string keys_;
  std::vector<int32_t> ids_;
};

struct BpeOptions {
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class BpeModel {
 public:
  // Word-cache capacity in words (the cache starts over when full).
  static constexpr size_t kDefaultCacheCapacity = 1 << 16;
  // Longest word (in bytes) the cache stores.
  static constexpr size_t kMaxCachedWordBytes = 256;

  BpeModel(std::vector<std::pair<std::string, int32_t>> vocab, std::vector<std::pair<std::string, std::string>> merges,
           BpeOptions options, const std::string& where);
  // tokenizer.json "model" of type BPE.
  static std::unique_ptr<BpeModel> from_json(const nlohmann::json& j, const std::string& where);

  // Call once when words will arrive as raw bytes to be read through the ByteLevel map.
  void enable_byte_level_input();

  // Per-call state: the cache lease (when the shared cache was free) and merge buffers.
  class Session {
   public:
    explicit Session(const BpeModel& model);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

   private:
    friend class BpeModel;
    WordCache* cache();
    const BpeModel& model_;
    WordCache* cache_ = nullptr;
    size_t uncached_words_ = 0;
    std::unique_ptr<WordCache> local_cache_;
    std::vector<int32_t> ids_;
    std::vector<uint32_t> ranks_;
    std::vector<int32_t> new_ids_;
    std::string mapped_;
  };

  // Appends the ids of one pre-tokenized word (HF's Model::tokenize).
  void tokenize(std::string_view word, std::vector<int32_t>& out, Session& session) const;
  // Same for a word given as raw bytes whose ByteLevel-mapped form is the real word.
  void tokenize_byte_level(std::string_view raw, std::vector<int32_t>& out, Session& session) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(int32_t id) const;  // null when no token has this id
  int32_t max_id() const { return int32_t(id_to_token_.size()) - 1; }
  size_t vocab_size() const { return vocab_.size(); }
  const PairMap& merges() const { return merges_; }

 private:
  void tokenize_word(std::string_view word, std::vector<int32_t>& out, Session& session) const;
  // Builds the initial symbols of a word (HF's merge_word before merge_all) into ids.
  void initial_symbols(std::string_view word, std::vector<int32_t>& ids) const;
  // Merges ids in place (HF's Word::merge_all without dropout).
  void merge(std::vector<int32_t>& ids, Session& session) const;
  void merge_with_heap(std::vector<int32_t>& ids) const;
  int32_t unk_id() const;

  StringIdMap vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_token_;
  PairMap merges_;
  BpeOptions options_;
  std::string where_;
  int32_t unk_id_ = -1;
  bool split_at_metaspace_ = false;  // words may be cut before a "▁" that follows another character

  // Byte-level input.
  bool byte_level_input_ = false;
  bool byte_level_fast_ = false;        // every mapped byte is a vocab token and there are no affixes
  std::array<int32_t, 256> byte_ids_{};  // id of the mapped character of each byte
  StringIdMap raw_vocab_;                 // raw bytes -> id, for ignore_merges

  // The shared word cache; a session holds it exclusively (try_lock), or works with a local one.
  mutable std::mutex cache_mutex_;
  mutable std::unique_ptr<WordCache> cache_;
};

}  // namespace roofline::tok
