#include "roofline/tokenizer/byte_level.h"

#include "roofline/tokenizer/unicode.h"

namespace roofline::tok {

const ByteLevelMap& ByteLevelMap::get() {
  static const ByteLevelMap map;  // immutable after construction
  return map;
}

ByteLevelMap::ByteLevelMap() {
  // Printable Latin-1 bytes map to themselves; the other 68 bytes map to U+0100.. in byte order.
  auto kept = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
  char_to_byte_.fill(-1);
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    char32_t c = kept(b) ? char32_t(b) : next++;
    byte_to_char_[b] = c;
    char_to_byte_[c] = int16_t(b);
    std::string u;
    append_utf8(u, c);
    utf8_len_[b] = uint8_t(u.size());
    for (size_t i = 0; i < u.size(); ++i) utf8_[b][i] = u[i];
  }
}

void ByteLevelMap::map_bytes(std::string_view raw, std::string& out) const {
  for (unsigned char b : raw) out.append(utf8_[b].data(), utf8_len_[b]);
}

bool ByteLevelMap::unmap(std::string_view mapped, std::string& out) const {
  std::string bytes;
  bytes.reserve(mapped.size());
  size_t i = 0;
  while (i < mapped.size()) {
    unsigned char lead = static_cast<unsigned char>(mapped[i]);
    size_t len = utf8_len(lead);
    if (i + len > mapped.size()) return false;
    char32_t c = decode_utf8(mapped, i, len);
    int b = char_to_byte(c);
    if (b < 0) return false;
    bytes.push_back(char(b));
    i += len;
  }
  out.append(bytes);
  return true;
}

}  // namespace roofline::tok
