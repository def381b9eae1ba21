// safetensors reader: the header is parsed and validated in full before any tensor is handed out, so a
// truncated or malicious file gets an Error naming the file (and the tensor), never a crash.
// Tensor data is used in place from the memory map (zero-copy).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "roofline/core/mapped_file.h"
#include "roofline/core/tensor.h"

namespace roofline {

struct SafetensorsEntry {
  std::string name;
  DType dtype;
  Shape shape;
  size_t begin = 0, end = 0;  // byte offsets relative to the start of the data section
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
  // A zero-copy view; the view keeps the mapping alive. Throws if the name is absent.
  Tensor tensor(const std::string& name) const;

 private:
  void parse(const uint8_t* bytes, size_t size);
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

// Writes tensors to a safetensors file atomically (temp file, fsync, rename). Used by tests and tools.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace roofline
