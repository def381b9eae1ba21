// Open-addressing hash tables for the BPE hot path: (left id, right id) -> (rank, merged id), and
// byte string -> id. Linear probing over a power-of-two table kept at most half full; no deletion.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace roofline::tok {

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ULL;
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ULL;
  x ^= x >> 32;
  return x;
}

// Byte-string hash for the tables below. Short strings are read with (overlapping) fixed-size loads:
// byte-wise copies into a word would stall on store forwarding in the hot path.
inline uint64_t hash_bytes(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  auto load64 = [](const unsigned char* q) {
    uint64_t v;
    std::memcpy(&v, q, 8);
    return v;
  };
  auto load32 = [](const unsigned char* q) {
    uint32_t v;
    std::memcpy(&v, q, 4);
    return uint64_t(v);
  };
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ (n * 0xff51afd7ed558ccdULL);
  uint64_t a, b;
  if (n >= 8) {
    for (size_t i = 0; i + 8 < n; i += 8) h = (h ^ mix64(load64(p + i))) * 0x9E3779B97F4A7C15ULL;
    a = load64(p + n - 8);
    b = n;
  } else if (n >= 4) {
    a = load32(p);
    b = load32(p + n - 4);
  } else if (n > 0) {
    a = (uint64_t(p[0]) << 16) | (uint64_t(p[n >> 1]) << 8) | p[n - 1];
    b = 0;
  } else {
    a = b = 0;
  }
  return mix64(h ^ (a * 0xa0761d6478bd642fULL) ^ ((b + 0xe7037ed1a0b428dbULL) * 0x8ebc6af09c88c6e3ULL));
}

inline size_t table_size_for(size_t count) {
  size_t size = 16;
  while (size < count * 2) size <<= 1;
  return size;
}

struct MergeInfo {
  uint32_t rank;   // position in the merges list (lower merges first)
  int32_t new_id;  // id of the merged token
};

class PairMap {
 public:
  void reserve(size_t count) {
    slots_.assign(table_size_for(count), Slot{kEmpty, {0, 0}});
    mask_ = slots_.size() - 1;
    count_ = 0;
  }
  static uint64_t key(int32_t left, int32_t right) { return (uint64_t(uint32_t(left)) << 32) | uint32_t(right); }
  // Inserts or overwrites (a repeated merge keeps its last rank, as HF's HashMap collect does).
  void insert_or_assign(uint64_t k, MergeInfo v) {
    if ((count_ + 1) * 2 > slots_.size()) grow();
    size_t i = mix64(k) & mask_;
    while (slots_[i].key != kEmpty && slots_[i].key != k) i = (i + 1) & mask_;
    if (slots_[i].key == kEmpty) ++count_;
    slots_[i] = Slot{k, v};
  }
  const MergeInfo* find(uint64_t k) const {
    size_t i = mix64(k) & mask_;
    while (true) {
      const Slot& s = slots_[i];
      if (s.key == k) return &s.value;
      if (s.key == kEmpty) return nullptr;
      i = (i + 1) & mask_;
    }
  }
  const MergeInfo* find(int32_t left, int32_t right) const { return find(key(left, right)); }
  size_t size() const { return count_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  struct Slot {
    uint64_t key;
    MergeInfo value;
  };
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    reserve(old.empty() ? 8 : old.size());
    for (const Slot& s : old)
      if (s.key != kEmpty) insert_or_assign(s.key, s.value);
  }
  std::vector<Slot> slots_ = std::vector<Slot>(16, Slot{kEmpty, {0, 0}});
  size_t mask_ = 15;
  size_t count_ = 0;
};

// byte string -> int32 value; keys are copied into an arena.
class StringIdMap {
 public:
  void reserve(size_t count) {
    slots_.assign(table_size_for(count), Slot{});
    mask_ = slots_.size() - 1;
  }
  // Returns false (and keeps the old value) when the key is present already.
  bool insert(std::string_view key, int32_t value) {
    if ((count_ + 1) * 2 > slots_.size()) grow();
    uint64_t h = hash_bytes(key);
    size_t i = h & mask_;
    while (slots_[i].len != kEmptyLen) {
      if (slots_[i].hash == h && view(slots_[i]) == key) return false;
      i = (i + 1) & mask_;
    }
    slots_[i] = Slot{h, uint32_t(arena_.size()), uint32_t(key.size()), value};
    arena_.append(key);
    ++count_;
    return true;
  }
  const int32_t* find(std::string_view key) const {
    uint64_t h = hash_bytes(key);
    size_t i = h & mask_;
    while (true) {
      const Slot& s = slots_[i];
      if (s.len == kEmptyLen) return nullptr;
      if (s.hash == h && view(s) == key) return &s.value;
      i = (i + 1) & mask_;
    }
  }
  size_t size() const { return count_; }

 private:
  static constexpr uint32_t kEmptyLen = ~uint32_t(0);
  struct Slot {
    uint64_t hash = 0;
    uint32_t offset = 0, len = kEmptyLen;
    int32_t value = 0;
  };
  std::string_view view(const Slot& s) const { return std::string_view(arena_).substr(s.offset, s.len); }
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 16 : old.size() * 2, Slot{});
    mask_ = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.len == kEmptyLen) continue;
      size_t i = s.hash & mask_;
      while (slots_[i].len != kEmptyLen) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }
  std::vector<Slot> slots_ = std::vector<Slot>(16);
  size_t mask_ = 15;
  size_t count_ = 0;
  std::string arena_;
};

}  // namespace roofline::tok
