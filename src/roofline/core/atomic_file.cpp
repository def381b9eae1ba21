#include "roofline/core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "roofline/core/error.h"

namespace roofline {

namespace {

void write_all(int fd, const char* p, size_t size, const std::string& path) {
  while (size > 0) {
    ssize_t n = ::write(fd, p, std::min<size_t>(size, size_t(1) << 30));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("{}: write failed: {}", path, std::strerror(errno));
    p += n;
    size -= size_t(n);
  }
}

// The temp file is removed unless the rename went through.
struct TempFile {
  std::string path;
  int fd = -1;
  bool renamed = false;
  ~TempFile() {
    if (fd >= 0) ::close(fd);
    if (!renamed) ::unlink(path.c_str());
  }
};

}  // namespace

void write_file_atomically(const std::string& path, std::span<const std::string_view> chunks) {
  TempFile tmp{path + ".tmp." + std::to_string(::getpid())};
  tmp.fd = ::open(tmp.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (tmp.fd < 0) fail("{}: cannot create {}: {}", path, tmp.path, std::strerror(errno));
  for (std::string_view chunk : chunks) write_all(tmp.fd, chunk.data(), chunk.size(), path);
  if (::fsync(tmp.fd) != 0) fail("{}: fsync failed: {}", path, std::strerror(errno));
  int fd = std::exchange(tmp.fd, -1);
  if (::close(fd) != 0) fail("{}: close failed: {}", path, std::strerror(errno));
  if (::rename(tmp.path.c_str(), path.c_str()) != 0)
    fail("{}: cannot rename {} into place: {}", path, tmp.path, std::strerror(errno));
  tmp.renamed = true;

  // The rename is durable only once the directory entry is on disk.
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::string dir = parent.empty() ? "." : parent.string();
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) fail("{}: cannot open directory {} to sync it: {}", path, dir, std::strerror(errno));
  int rc = ::fsync(dir_fd);
  int err = errno;
  ::close(dir_fd);
  // Some file systems cannot sync a directory (EINVAL); the data itself is already synced.
  if (rc != 0 && err != EINVAL) fail("{}: fsync of directory {} failed: {}", path, dir, std::strerror(err));
}

}  // namespace roofline
