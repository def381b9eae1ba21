// Files are replaced atomically: write a temp file beside the target, fsync it, rename it over the
// target, fsync the directory. A crash at any point leaves either the old file or the new one, and a
// failed write leaves no temp file behind.
#pragma once
#include <span>
#include <string>
#include <string_view>

namespace roofline {

// The file's contents are the chunks in order (so large files, e.g. checkpoints, need no joined copy).
void write_file_atomically(const std::string& path, std::span<const std::string_view> chunks);

inline void write_file_atomically(const std::string& path, std::string_view contents) {
  write_file_atomically(path, std::span<const std::string_view>(&contents, 1));
}

}  // namespace roofline
