// safetensors reader: the header is parsed and validated in full before any tensor is handed out, so a
// truncated or malicious file gets an Error naming the file (and the tensor), never a crash.
// Tensor data is used in place from the memory map (zero-copy).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "roofline/core/mapped_file.h"
#include "roofline/core/tensor.h"

namespace roofline {

// Header limit of the reference implementation (safetensors' MAX_HEADER_SIZE); larger means corrupt.
inline constexpr size_t kSafetensorsMaxHeaderBytes = 100'000'000;

struct SafetensorsEntry {
  std::string name;
  // Files may hold dtypes roofline has no DType for (F8_E4M3, I16, U32, ...): they are validated and listed,
  // and asking for such a tensor is an Error naming its dtype. `dtype` is meaningful only when `supported`.
  DType dtype = DType::U8;
  bool supported = true;
  std::string dtype_name;  // as written in the header, e.g. "BF16"
  Shape shape;
  size_t begin = 0, end = 0;  // byte offsets relative to the start of the data section
  size_t nbytes() const { return end - begin; }
};

class SafetensorsFile {
 public:
  // Maps and validates `path`. Throws roofline::Error on any problem.
  explicit SafetensorsFile(const std::string& path);
  // Validates an in-memory image (the fuzz target and tests use this); `label` names it in errors.
  // The bytes must outlive the object.
  SafetensorsFile(const uint8_t* bytes, size_t size, std::string label);

  const std::string& path() const { return label_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const;
  // A zero-copy, read-only view (the pages are mapped read-only); the view keeps the mapping alive.
  // A tensor stored at an offset misaligned for its dtype comes back as an aligned copy instead.
  // Throws if the name is absent or its dtype is unsupported.
  Tensor tensor(const std::string& name) const;
  // The stored bytes of any tensor, whatever its dtype. Throws if the name is absent.
  std::span<const uint8_t> raw_bytes(const std::string& name) const;

 private:
  void parse(const uint8_t* bytes, size_t size);
  const SafetensorsEntry& entry(const std::string& name) const;
  std::shared_ptr<MappedFile> file_;
  std::string label_;
  const uint8_t* data_section_ = nullptr;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint directory: model.safetensors, or shards listed in model.safetensors.index.json.
class Checkpoint {
 public:
  explicit Checkpoint(const std::string& model_dir);
  bool contains(const std::string& name) const;
  Tensor tensor(const std::string& name) const;  // Error names the directory when absent
  std::vector<std::string> tensor_names() const;
  const std::string& dir() const { return dir_; }
  size_t total_bytes() const;

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> owner_;  // tensor name -> index into files_
};

// Writes tensors to a safetensors file atomically (PATH.tmp.<pid>, fsync, rename, fsync the directory), data
// in the given order (put the widest dtypes first, as Hugging Face does, so that every tensor stays aligned
// and loads zero-copy). The header is padded with spaces to a multiple of 8 bytes, as Hugging Face does, so
// the data section starts 8-byte aligned. Used by tests, tools and checkpoints.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace roofline
