// GPT-2's byte <-> printable character mapping (bytes_to_unicode): every byte becomes one visible code
// point, so byte-level BPE vocabularies are plain strings ("Ġ" is the space byte 0x20).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace roofline::tok {

class ByteLevelMap {
 public:
  static const ByteLevelMap& get();

  char32_t byte_to_char(uint8_t b) const { return byte_to_char_[b]; }
  // UTF-8 of byte_to_char(b): 1 or 2 bytes.
  std::string_view byte_to_utf8(uint8_t b) const { return {utf8_[b].data(), utf8_len_[b]}; }
  // The byte a mapped character stands for, or -1 for a character outside the 256-character alphabet.
  int char_to_byte(char32_t c) const { return c < char_to_byte_.size() ? char_to_byte_[c] : -1; }

  // Appends the mapped form of raw bytes.
  void map_bytes(std::string_view raw, std::string& out) const;
  // Inverse of map_bytes for a whole string; false (out untouched) when any character is unmapped.
  bool unmap(std::string_view mapped, std::string& out) const;

 private:
  ByteLevelMap();
  std::array<char32_t, 256> byte_to_char_{};
  std::array<std::array<char, 2>, 256> utf8_{};
  std::array<uint8_t, 256> utf8_len_{};
  std::array<int16_t, 324> char_to_byte_{};  // mapped code points are all below U+0144
};

}  // namespace roofline::tok
