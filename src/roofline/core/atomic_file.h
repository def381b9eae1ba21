// Files are replaced atomically: write a temp file beside the target, fsync it, rename it over the
// target, fsync the directory. A crash at any point leaves either the old file or the new one.
#pragma once
#include <string>
#include <string_view>

namespace roofline {

void write_file_atomically(const std::string& path, std::string_view contents);

}  // namespace roofline
