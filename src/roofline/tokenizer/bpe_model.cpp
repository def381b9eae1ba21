#include "roofline/tokenizer/bpe_model.h"

#include <algorithm>
#include <queue>

#include <nlohmann/json.hpp>

#include "roofline/core/error.h"
#include "roofline/tokenizer/byte_level.h"
#include "roofline/tokenizer/json_util.h"
#include "roofline/tokenizer/unicode.h"

namespace roofline::tok {

// ---- WordCache ---------------------------------------------------------------------------------------

WordKey::WordKey(std::string_view word) : bytes(word) {
  if (is_short()) {
    std::memcpy(padded, word.data(), word.size());
    hash = mix64(padded[0] * 0x9E3779B97F4A7C15ULL ^ mix64(padded[1] ^ (uint64_t(word.size()) << 56)) ^
                 (padded[2] + 0xa0761d6478bd642fULL) * 0xe7037ed1a0b428dbULL);
  } else {
    hash = hash_bytes(word);
  }
}

WordCache::WordCache(size_t capacity) : capacity_(capacity), hot_(kHotEntries), slots_(table_size_for(capacity)) {}

void WordCache::put_hot(const WordKey& key, const int32_t* ids, size_t n) {
  if (!key.is_short() || n > kHotMaxIds) return;
  HotEntry& e = hot_[(key.hash >> 40) & (kHotEntries - 1)];
  std::memcpy(e.key, key.padded, sizeof(e.key));
  e.hash = key.hash;
  e.key_len = uint8_t(key.bytes.size());
  e.n_ids = uint8_t(n);
  if (n > 0) std::memcpy(e.ids, ids, n * sizeof(int32_t));  // (a word may encode to no ids; ids is null then)
}

bool WordCache::lookup(const WordKey& key, std::vector<int32_t>& out) {
  if (key.is_short()) {
    const HotEntry& e = hot_[(key.hash >> 40) & (kHotEntries - 1)];
    if (e.hash == key.hash && e.key_len == key.bytes.size() && e.key[0] == key.padded[0] &&
        e.key[1] == key.padded[1] && e.key[2] == key.padded[2]) {
      if (e.n_ids == 1) {
        out.push_back(e.ids[0]);
      } else {
        out.insert(out.end(), e.ids, e.ids + e.n_ids);
      }
      return true;
    }
  }
  size_t mask = slots_.size() - 1;
  size_t i = key.hash & mask;
  while (true) {
    const Slot& s = slots_[i];
    if (s.key_len == ~uint32_t(0)) return false;
    if (s.hash == key.hash && s.key_len == key.bytes.size() &&
        std::memcmp(keys_.data() + s.key_offset, key.bytes.data(), key.bytes.size()) == 0) {
      const int32_t* ids = ids_.data() + s.ids_offset;
      out.insert(out.end(), ids, ids + s.ids_len);
      put_hot(key, ids, s.ids_len);
      return true;
    }
    i = (i + 1) & mask;
  }
}

void WordCache::insert(const WordKey& key, const int32_t* ids, size_t n) {
  put_hot(key, ids, n);
  if (count_ >= capacity_) {  // full: start over rather than track recency
    std::fill(slots_.begin(), slots_.end(), Slot{});
    keys_.clear();
    ids_.clear();
    count_ = 0;
  }
  size_t mask = slots_.size() - 1;
  size_t i = key.hash & mask;
  while (slots_[i].key_len != ~uint32_t(0)) {
    if (slots_[i].hash == key.hash && slots_[i].key_len == key.bytes.size() &&
        std::memcmp(keys_.data() + slots_[i].key_offset, key.bytes.data(), key.bytes.size()) == 0)
      return;
    i = (i + 1) & mask;
  }
  slots_[i] = Slot{key.hash, uint32_t(keys_.size()), uint32_t(key.bytes.size()), uint32_t(ids_.size()), uint32_t(n)};
  keys_.append(key.bytes);
  ids_.insert(ids_.end(), ids, ids + n);
  ++count_;
}

// ---- construction ------------------------------------------------------------------------------------

BpeModel::BpeModel(std::vector<std::pair<std::string, int32_t>> vocab,
                   std::vector<std::pair<std::string, std::string>> merges, BpeOptions options,
                   const std::string& where)
    : options_(std::move(options)), where_(where) {
  vocab_.reserve(vocab.size());
  int32_t max_id = -1;
  for (const auto& [token, id] : vocab) {
    if (id < 0) fail("{}: vocab token '{}' has negative id {}", where, token, id);
    if (id > kMaxTokenId)
      fail("{}: vocab token '{}' has id {}, past the largest supported id {}", where, token, id, kMaxTokenId);
    max_id = std::max(max_id, id);
  }
  id_to_token_.resize(size_t(max_id + 1));
  has_token_.assign(size_t(max_id + 1), false);
  for (auto& [token, id] : vocab) {
    vocab_.insert(token, id);
    // Two strings with one id: the first keeps the id -> token direction.
    if (!has_token_[size_t(id)]) {
      id_to_token_[size_t(id)] = std::move(token);
      has_token_[size_t(id)] = true;
    }
  }

  const size_t prefix_len = options_.continuing_subword_prefix.size();
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    const int32_t* a_id = vocab_.find(a);
    const int32_t* b_id = vocab_.find(b);
    if (!a_id) fail("{}: merge {} ('{} {}'): token '{}' is not in the vocab", where, rank + 1, a, b, a);
    if (!b_id) fail("{}: merge {} ('{} {}'): token '{}' is not in the vocab", where, rank + 1, a, b, b);
    std::string merged = a + (b.size() >= prefix_len ? b.substr(prefix_len) : std::string());
    const int32_t* new_id = vocab_.find(merged);
    if (!new_id) fail("{}: merge {} ('{} {}'): merged token '{}' is not in the vocab", where, rank + 1, a, b, merged);
    merges_.insert_or_assign(PairMap::key(*a_id, *b_id), MergeInfo{uint32_t(rank), *new_id});
  }
  if (options_.unk_token) {
    if (const int32_t* id = vocab_.find(*options_.unk_token)) unk_id_ = *id;
  }
  cache_ = std::make_unique<WordCache>(kDefaultCacheCapacity);

  // SentencePiece-style vocabularies without a pre-tokenizer hand whole texts to the model as one word. When
  // "▁" only ever appears in tokens at their start or after another "▁", no merge spans the boundary
  // before a "▁" that follows another character, and BPE on the pieces equals BPE on the whole.
  const std::string meta = "\xE2\x96\x81";
  split_at_metaspace_ = options_.continuing_subword_prefix.empty() && options_.end_of_word_suffix.empty() &&
                        !options_.ignore_merges && vocab_.find(meta) != nullptr;
  for (size_t id = 0; split_at_metaspace_ && id < id_to_token_.size(); ++id) {
    const std::string& t = id_to_token_[id];
    for (size_t pos = t.find(meta, 1); pos != std::string::npos; pos = t.find(meta, pos + 1)) {
      if (pos < 3 || t.compare(pos - 3, 3, meta) != 0) {
        split_at_metaspace_ = false;
        break;
      }
    }
  }
}

std::unique_ptr<BpeModel> BpeModel::from_json(const nlohmann::json& j, const std::string& where) {
  if (j.contains("dropout") && !j["dropout"].is_null()) {
    const auto& d = j["dropout"];
    if (!d.is_number() || d.get<double>() != 0.0)
      fail("{}: BPE dropout {} is not supported (encoding must be deterministic; set it to null)", where, d.dump());
  }
  const auto& vocab_json = json_field(j, "vocab", where);
  if (!vocab_json.is_object()) fail("{}: 'vocab' must be an object of token -> id", where);
  std::vector<std::pair<std::string, int32_t>> vocab;
  vocab.reserve(vocab_json.size());
  for (auto it = vocab_json.begin(); it != vocab_json.end(); ++it) {
    if (!it.value().is_number_integer()) fail("{}: vocab id of '{}' is not an integer", where, it.key());
    vocab.emplace_back(it.key(), int32_t(it.value().get<int64_t>()));
  }

  std::vector<std::pair<std::string, std::string>> merges;
  if (j.contains("merges") && !j["merges"].is_null()) {
    const auto& list = j["merges"];
    if (!list.is_array()) fail("{}: 'merges' must be a list", where);
    merges.reserve(list.size());
    size_t rank = 0;
    for (const auto& m : list) {
      ++rank;
      if (m.is_string()) {
        const std::string& line = m.get_ref<const std::string&>();
        if (line.rfind("#version", 0) == 0) continue;
        size_t space = line.find(' ');
        if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
          fail("{}: merge {} '{}' is not two tokens separated by one space", where, rank, line);
        merges.emplace_back(line.substr(0, space), line.substr(space + 1));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        fail("{}: merge {} must be \"a b\" or [\"a\", \"b\"], got {}", where, rank, m.dump());
      }
    }
  }

  BpeOptions options;
  if (j.contains("unk_token") && !j["unk_token"].is_null()) options.unk_token = json_string(j, "unk_token", where);
  options.continuing_subword_prefix = json_string_or(j, "continuing_subword_prefix", where);
  options.end_of_word_suffix = json_string_or(j, "end_of_word_suffix", where);
  options.fuse_unk = json_bool(j, "fuse_unk", where, false);
  options.byte_fallback = json_bool(j, "byte_fallback", where, false);
  options.ignore_merges = json_bool(j, "ignore_merges", where, false);
  return std::make_unique<BpeModel>(std::move(vocab), std::move(merges), std::move(options), where);
}

void BpeModel::enable_byte_level_input() {
  if (byte_level_input_) return;
  byte_level_input_ = true;
  const auto& map = ByteLevelMap::get();
  bool all = options_.continuing_subword_prefix.empty() && options_.end_of_word_suffix.empty();
  for (int b = 0; b < 256; ++b) {
    const int32_t* id = vocab_.find(map.byte_to_utf8(uint8_t(b)));
    byte_ids_[size_t(b)] = id ? *id : -1;
    if (!id) all = false;
  }
  byte_level_fast_ = all;
  if (byte_level_fast_ && options_.ignore_merges) {
    raw_vocab_.reserve(vocab_.size());
    std::string raw;
    for (size_t id = 0; id < id_to_token_.size(); ++id) {
      if (!has_token_[id]) continue;
      raw.clear();
      if (map.unmap(id_to_token_[id], raw)) raw_vocab_.insert(raw, int32_t(id));
    }
    // Tokens whose string is shared with another id: the vocab map decides, as for mapped lookups.
  }
}

// ---- lookups -----------------------------------------------------------------------------------------

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  if (const int32_t* id = vocab_.find(token)) return *id;
  return std::nullopt;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || size_t(id) >= id_to_token_.size() || !has_token_[size_t(id)]) return nullptr;
  return &id_to_token_[size_t(id)];
}

int32_t BpeModel::unk_id() const {
  if (unk_id_ < 0) fail("{}: unk_token '{}' is not in the vocab", where_, options_.unk_token.value_or(""));
  return unk_id_;
}

// ---- session -----------------------------------------------------------------------------------------

BpeModel::Session::Session(const BpeModel& model) : model_(model) {
  if (model.cache_ && model.cache_mutex_.try_lock()) cache_ = model.cache_.get();
}

WordCache* BpeModel::Session::cache() {
  // The shared cache was busy: after enough words, a private cache pays for itself.
  if (!cache_ && ++uncached_words_ == 512) {
    local_cache_ = std::make_unique<WordCache>(1 << 13);
    cache_ = local_cache_.get();
  }
  return cache_;
}

BpeModel::Session::~Session() {
  if (cache_ && cache_ == model_.cache_.get()) model_.cache_mutex_.unlock();
}

// ---- tokenization ------------------------------------------------------------------------------------

void BpeModel::initial_symbols(std::string_view word, std::vector<int32_t>& ids) const {
  const bool affixes = !options_.continuing_subword_prefix.empty() || !options_.end_of_word_suffix.empty();
  int32_t pending_unk = -1;  // an unk symbol not yet added (fuse_unk grows it instead of adding another)
  std::string s;
  size_t i = 0;
  while (i < word.size()) {
    size_t len = utf8_len(static_cast<unsigned char>(word[i]));
    std::string_view ch = word.substr(i, len);
    bool first = i == 0, last = i + len >= word.size();
    i += len;
    std::string_view symbol = ch;
    if (affixes) {
      s.clear();
      if (!first) s += options_.continuing_subword_prefix;
      s += ch;
      if (last) s += options_.end_of_word_suffix;
      symbol = s;
    }
    if (const int32_t* id = vocab_.find(symbol)) {
      if (pending_unk >= 0) {
        ids.push_back(pending_unk);
        pending_unk = -1;
      }
      ids.push_back(*id);
      continue;
    }
    if (options_.byte_fallback) {
      size_t mark = ids.size();
      bool all = true;
      for (unsigned char b : symbol) {
        char code[8];
        static constexpr char kHex[] = "0123456789ABCDEF";
        code[0] = '<', code[1] = '0', code[2] = 'x', code[3] = kHex[b >> 4], code[4] = kHex[b & 15], code[5] = '>';
        const int32_t* id = vocab_.find(std::string_view(code, 6));
        if (!id) {
          all = false;
          break;
        }
        ids.push_back(*id);
      }
      if (all) continue;  // note: HF leaves a pending unk pending here
      ids.resize(mark);
    }
    if (options_.unk_token) {
      if (pending_unk >= 0 && !options_.fuse_unk) ids.push_back(pending_unk);
      if (pending_unk < 0 || !options_.fuse_unk) pending_unk = unk_id();
    }
    // Without an unk token the character is dropped, as in HF.
  }
  if (pending_unk >= 0) ids.push_back(pending_unk);
}

void BpeModel::merge(std::vector<int32_t>& ids, Session& session) const {
  const size_t n0 = ids.size();
  if (n0 < 2) return;
  if (n0 > 64) {
    merge_with_heap(ids);
    return;
  }
  // Short words: ranks[i] is the rank of the pair (ids[i], ids[i+1]); merge the first lowest.
  auto& ranks = session.ranks_;
  auto& new_ids = session.new_ids_;
  ranks.resize(n0 - 1);
  new_ids.resize(n0 - 1);
  auto set_pair = [&](size_t i) {
    const MergeInfo* m = merges_.find(ids[i], ids[i + 1]);
    ranks[i] = m ? m->rank : ~uint32_t(0);
    new_ids[i] = m ? m->new_id : -1;
  };
  for (size_t i = 0; i + 1 < n0; ++i) set_pair(i);
  size_t n = n0;
  while (n > 1) {
    uint32_t best = ~uint32_t(0);
    size_t at = 0;
    for (size_t i = 0; i + 1 < n; ++i) {
      if (ranks[i] < best) {
        best = ranks[i];
        at = i;
      }
    }
    if (best == ~uint32_t(0)) break;
    ids[at] = new_ids[at];
    ids.erase(ids.begin() + std::ptrdiff_t(at) + 1);
    ranks.erase(ranks.begin() + std::ptrdiff_t(at));
    new_ids.erase(new_ids.begin() + std::ptrdiff_t(at));
    --n;
    if (at > 0) set_pair(at - 1);
    if (at + 1 < n) set_pair(at);
  }
}

void BpeModel::merge_with_heap(std::vector<int32_t>& ids) const {
  // HF's Word::merge_all: a min-heap of (rank, position) over a doubly linked list of symbols; stale heap
  // entries are recognized by re-checking the pair they name.
  const size_t n = ids.size();
  std::vector<int32_t> prev(n), next(n);
  std::vector<uint8_t> alive(n, 1);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = int32_t(i) - 1;
    next[i] = i + 1 < n ? int32_t(i + 1) : -1;
  }
  struct Entry {
    uint32_t rank;
    uint32_t pos;
    int32_t new_id;
    bool operator>(const Entry& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  for (size_t i = 0; i + 1 < n; ++i) {
    if (const MergeInfo* m = merges_.find(ids[i], ids[i + 1])) heap.push({m->rank, uint32_t(i), m->new_id});
  }
  while (!heap.empty()) {
    Entry top = heap.top();
    heap.pop();
    size_t pos = top.pos;
    if (!alive[pos] || next[pos] < 0) continue;
    size_t right = size_t(next[pos]);
    const MergeInfo* m = merges_.find(ids[pos], ids[right]);
    if (!m || m->new_id != top.new_id) continue;
    ids[pos] = top.new_id;
    alive[right] = 0;
    next[pos] = next[right];
    if (next[right] >= 0) prev[size_t(next[right])] = int32_t(pos);
    if (prev[pos] >= 0) {
      size_t p = size_t(prev[pos]);
      if (const MergeInfo* pm = merges_.find(ids[p], ids[pos])) heap.push({pm->rank, uint32_t(p), pm->new_id});
    }
    if (next[pos] >= 0) {
      if (const MergeInfo* nm = merges_.find(ids[pos], ids[size_t(next[pos])]))
        heap.push({nm->rank, uint32_t(pos), nm->new_id});
    }
  }
  size_t out = 0;
  for (size_t i = 0; i < n; ++i)
    if (alive[i]) ids[out++] = ids[i];
  ids.resize(out);
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out, Session& session) const {
  if (!split_at_metaspace_ || word.size() <= 16) {
    tokenize_word(word, out, session);
    return;
  }
  // No merge can cross a "▁" that follows another character (see split_at_metaspace_), so the word is
  // tokenized piece by piece, each piece going through the word cache.
  static constexpr std::string_view kMeta = "\xE2\x96\x81";
  size_t start = 0, pos = 0;
  while ((pos = word.find(kMeta, pos + 1)) != std::string_view::npos) {
    if (pos >= 3 && word.compare(pos - 3, 3, kMeta) == 0) continue;  // "▁▁" may merge
    tokenize_word(word.substr(start, pos - start), out, session);
    start = pos;
  }
  tokenize_word(word.substr(start), out, session);
}

void BpeModel::tokenize_word(std::string_view word, std::vector<int32_t>& out, Session& session) const {
  if (word.empty()) return;
  WordCache* cache = word.size() <= kMaxCachedWordBytes ? session.cache() : nullptr;
  std::optional<WordKey> key;
  if (cache) {
    key.emplace(word);
    if (cache->lookup(*key, out)) return;
  }
  auto& ids = session.ids_;
  ids.clear();
  const int32_t* whole = options_.ignore_merges ? vocab_.find(word) : nullptr;
  if (whole) {
    ids.push_back(*whole);
  } else {
    initial_symbols(word, ids);
    merge(ids, session);
  }
  if (cache) cache->insert(*key, ids.data(), ids.size());
  out.insert(out.end(), ids.begin(), ids.end());
}

void BpeModel::tokenize_byte_level(std::string_view raw, std::vector<int32_t>& out, Session& session) const {
  if (raw.empty()) return;
  if (!byte_level_fast_) {
    session.mapped_.clear();
    ByteLevelMap::get().map_bytes(raw, session.mapped_);
    tokenize(session.mapped_, out, session);
    return;
  }
  WordCache* cache = raw.size() <= kMaxCachedWordBytes ? session.cache() : nullptr;
  std::optional<WordKey> key;
  if (cache) {
    key.emplace(raw);
    if (cache->lookup(*key, out)) return;
  }
  auto& ids = session.ids_;
  const int32_t* whole = options_.ignore_merges ? raw_vocab_.find(raw) : nullptr;
  if (whole) {
    ids.assign(1, *whole);
  } else {
    ids.resize(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) ids[i] = byte_ids_[static_cast<unsigned char>(raw[i])];
    merge(ids, session);
  }
  if (cache) cache->insert(*key, ids.data(), ids.size());
  out.insert(out.end(), ids.begin(), ids.end());
}

}  // namespace roofline::tok
