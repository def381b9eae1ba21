// Layout: u64 little-endian N, N bytes of JSON header, then the data section. Header offsets are relative to
// the data section. Nothing from the header is trusted until parse() has checked it, so every Tensor handed
// out lies inside the file.
#include "roofline/formats/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "roofline/core/atomic_file.h"
#include "roofline/core/error.h"

namespace roofline {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// Every dtype the safetensors format defines, with its width in bits. Those roofline has no DType for are
// still validated (their sizes must add up) but cannot be viewed as Tensors.
struct DTypeInfo {
  std::string_view name;
  int bits;
  bool supported;
  DType dtype;
};
constexpr DTypeInfo kDTypes[] = {
    {"F32", 32, true, DType::F32},      {"F16", 16, true, DType::F16},      {"BF16", 16, true, DType::BF16},
    {"F64", 64, true, DType::F64},      {"I32", 32, true, DType::I32},      {"I64", 64, true, DType::I64},
    {"U8", 8, true, DType::U8},         {"I8", 8, true, DType::I8},         {"BOOL", 8, true, DType::Bool},
    {"F8_E4M3", 8, false, DType::U8},   {"F8_E5M2", 8, false, DType::U8},   {"F8_E8M0", 8, false, DType::U8},
    {"I16", 16, false, DType::U8},      {"U16", 16, false, DType::U8},      {"U32", 32, false, DType::U8},
    {"U64", 64, false, DType::U8},      {"F4", 4, false, DType::U8},        {"F6_E2M3", 6, false, DType::U8},
    {"F6_E3M2", 6, false, DType::U8}};
constexpr std::string_view kSupportedList = "F32, F16, BF16, F64, I32, I64, U8, I8, BOOL";

// A header can legitimately nest only three levels (root / entry / shape); deeper is garbage, and the bound
// keeps pathological inputs cheap.
constexpr int kMaxJsonDepth = 16;

// Names and values from a hostile header can be megabytes long; error messages show a bounded prefix.
std::string clip(std::string_view text, size_t limit = 120) {
  if (text.size() <= limit) return std::string(text);
  return fmt::format("{}...({} bytes)", text.substr(0, limit), text.size());
}
std::string brief(const json& value) { return clip(value.dump(-1, ' ', false, json::error_handler_t::replace), 40); }

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

// nlohmann keeps the last of duplicate keys silently; a duplicate tensor name would let two entries claim
// one name, so the parse callback rejects duplicates at every level.
json parse_header_json(const char* begin, const char* end, const std::string& label) {
  struct OpenObject {
    std::string owner;  // the key this object is the value of ("" for the root)
    std::set<std::string> keys;
  };
  std::vector<OpenObject> open;
  std::string last_key;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth) fail("{}: header nests deeper than {} levels", label, kMaxJsonDepth);
        if (event == json::parse_event_t::object_start) open.push_back({depth == 0 ? "" : last_key, {}});
        break;
      case json::parse_event_t::object_end:
        if (!open.empty()) open.pop_back();
        break;
      case json::parse_event_t::key:
        last_key = parsed.get<std::string>();
        if (!open.empty() && !open.back().keys.insert(last_key).second) {
          if (open.size() == 1) fail("{}: header lists '{}' twice", label, clip(last_key));
          if (open.back().owner == "__metadata__") fail("{}: __metadata__ lists '{}' twice", label, clip(last_key));
          fail("{}: tensor '{}': key '{}' appears twice", label, clip(open.back().owner), clip(last_key));
        }
        break;
      default: break;
    }
    return true;
  };
  try {
    return json::parse(begin, end, callback);
  } catch (const json::exception& e) {
    fail("{}: header is not valid JSON: {}", label, e.what());
  }
}

// A non-negative JSON integer that fits int64 (shapes and offsets); anything else is an Error.
uint64_t read_index(const json& value, const std::string& label, const std::string& name, std::string_view what) {
  if (value.is_number_unsigned()) {
    uint64_t v = value.get<uint64_t>();
    if (v > uint64_t(std::numeric_limits<int64_t>::max()))
      fail("{}: tensor '{}': {} value {} is too large", label, clip(name), what, v);
    return v;
  }
  if (value.is_number_integer()) fail("{}: tensor '{}': {} value {} is negative", label, clip(name), what, brief(value));
  fail("{}: tensor '{}': {} must hold non-negative integers, got {}", label, clip(name), what, brief(value));
}

const json& require(const json& entry, const char* key, const std::string& label, const std::string& name) {
  auto it = entry.find(key);
  if (it == entry.end()) fail("{}: tensor '{}': missing \"{}\"", label, clip(name), key);
  return *it;
}

SafetensorsEntry parse_entry(const std::string& name, const json& value, size_t data_size, const std::string& label) {
  if (!value.is_object())
    fail("{}: tensor '{}': entry must be a JSON object, got {}", label, clip(name), value.type_name());
  SafetensorsEntry e;
  e.name = name;

  const json& dtype = require(value, "dtype", label, name);
  if (!dtype.is_string()) fail("{}: tensor '{}': dtype must be a string, got {}", label, clip(name), brief(dtype));
  const std::string& dtype_text = dtype.get_ref<const std::string&>();
  auto info = std::find_if(std::begin(kDTypes), std::end(kDTypes), [&](const DTypeInfo& d) { return d.name == dtype_text; });
  if (info == std::end(kDTypes)) fail("{}: tensor '{}': unknown dtype '{}'", label, clip(name), clip(dtype_text));
  e.dtype = info->dtype;
  e.supported = info->supported;
  e.dtype_name = std::string(info->name);

  const json& shape = require(value, "shape", label, name);
  if (!shape.is_array()) fail("{}: tensor '{}': shape must be an array, got {}", label, clip(name), brief(shape));
  uint64_t numel = 1;
  for (const json& dim : shape) {
    uint64_t d = read_index(dim, label, name, "shape");
    e.shape.push_back(int64_t(d));
    if (__builtin_mul_overflow(numel, d, &numel))
      fail("{}: tensor '{}': shape {} has more elements than fit in 64 bits", label, clip(name), brief(shape));
  }
  uint64_t bits = 0;
  if (__builtin_mul_overflow(numel, uint64_t(info->bits), &bits) || numel > uint64_t(std::numeric_limits<int64_t>::max()))
    fail("{}: tensor '{}': shape {} of {} is too large", label, clip(name), brief(shape), e.dtype_name);
  if (bits % 8 != 0)
    fail("{}: tensor '{}': {} elements of {} do not fill whole bytes", label, clip(name), numel, e.dtype_name);
  uint64_t expected_bytes = bits / 8;

  const json& offsets = require(value, "data_offsets", label, name);
  if (!offsets.is_array() || offsets.size() != 2)
    fail("{}: tensor '{}': data_offsets must be [begin, end], got {}", label, clip(name), brief(offsets));
  uint64_t begin = read_index(offsets[0], label, name, "data_offsets");
  uint64_t end = read_index(offsets[1], label, name, "data_offsets");
  if (begin > end) fail("{}: tensor '{}': data_offsets [{}, {}]: end is before begin", label, clip(name), begin, end);
  if (end > data_size)
    fail("{}: tensor '{}': data_offsets [{}, {}] exceed the data section ({} bytes)", label, clip(name), begin, end,
         data_size);
  if (end - begin != expected_bytes)
    fail("{}: tensor '{}': data_offsets [{}, {}] hold {} bytes but shape {} of {} needs {}", label, clip(name), begin,
         end, end - begin, shape_to_string(e.shape), e.dtype_name, expected_bytes);
  e.begin = size_t(begin);
  e.end = size_t(end);
  return e;
}

std::map<std::string, std::string> parse_metadata(const json& value, const std::string& label) {
  if (!value.is_object()) fail("{}: __metadata__ must be an object of strings, got {}", label, value.type_name());
  std::map<std::string, std::string> out;
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string()) fail("{}: __metadata__ value for '{}' must be a string, got {}", label, clip(key), brief(v));
    out.emplace(key, v.get<std::string>());
  }
  return out;
}

// Tensors must not share bytes: a writer bug or a crafted file could otherwise alias two weights.
// Empty tensors occupy no bytes and never overlap.
void check_no_overlap(const std::vector<SafetensorsEntry>& sorted, const std::string& label) {
  const SafetensorsEntry* previous = nullptr;
  for (const SafetensorsEntry& e : sorted) {
    if (e.begin == e.end) continue;
    if (previous && e.begin < previous->end)
      fail("{}: tensor '{}': data_offsets [{}, {}] overlap tensor '{}' [{}, {}]", label, clip(e.name), e.begin, e.end,
           clip(previous->name), previous->begin, previous->end);
    previous = &e;
  }
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(std::make_shared<MappedFile>(path)), label_(path) {
  parse(file_->data(), file_->size());
}

SafetensorsFile::SafetensorsFile(const uint8_t* bytes, size_t size, std::string label) : label_(std::move(label)) {
  parse(bytes, size);
}

void SafetensorsFile::parse(const uint8_t* bytes, size_t size) {
  if (size < 8) fail("{}: file is {} bytes, too short for a safetensors header (at least 8)", label_, size);
  uint64_t header_bytes = read_u64_le(bytes);
  if (header_bytes > kSafetensorsMaxHeaderBytes)
    fail("{}: header length {} bytes is over the {}-byte limit (not a safetensors file, or corrupt)", label_,
         header_bytes, kSafetensorsMaxHeaderBytes);
  if (header_bytes > size - 8)
    fail("{}: header length {} bytes exceeds the {} bytes after the length field (truncated file?)", label_,
         header_bytes, size - 8);
  const char* text = reinterpret_cast<const char*>(bytes + 8);
  json header = parse_header_json(text, text + header_bytes, label_);
  if (!header.is_object()) fail("{}: header must be a JSON object, got {}", label_, header.type_name());

  size_t data_size = size - 8 - size_t(header_bytes);
  std::vector<SafetensorsEntry> entries;
  std::map<std::string, std::string> metadata;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") metadata = parse_metadata(value, label_);
    else entries.push_back(parse_entry(key, value, data_size, label_));
  }
  // File order is the natural reading order, and the overlap check needs it.
  std::sort(entries.begin(), entries.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  check_no_overlap(entries, label_);

  std::map<std::string, size_t> index;
  for (size_t i = 0; i < entries.size(); ++i)
    if (!index.emplace(entries[i].name, i).second) fail("{}: header lists '{}' twice", label_, clip(entries[i].name));

  data_section_ = bytes + 8 + header_bytes;
  entries_ = std::move(entries);
  index_ = std::move(index);
  metadata_ = std::move(metadata);
}

bool SafetensorsFile::contains(const std::string& name) const { return index_.count(name) != 0; }

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("{}: no tensor named '{}' ({} tensors in the file)", label_, name, entries_.size());
  return entries_[it->second];
}

Tensor SafetensorsFile::tensor(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  if (!e.supported)
    fail("{}: tensor '{}' has dtype {}, which roofline does not support (supported: {})", label_, name, e.dtype_name,
         kSupportedList);
  const uint8_t* bytes = data_section_ + e.begin;
  // A writer that does not put the widest dtypes first (Hugging Face does) can leave a tensor at an offset
  // its dtype cannot be loaded from; kernels need aligned data, so such a tensor is copied (as candle does).
  if (reinterpret_cast<uintptr_t>(bytes) % dtype_size(e.dtype) != 0) {
    Tensor copy = Tensor::empty(e.dtype, e.shape);
    std::memcpy(copy.data(), bytes, e.nbytes());
    return copy;
  }
  // The mapping is read-only; the const_cast only satisfies Tensor's mutable data pointer.
  return Tensor(e.dtype, e.shape, const_cast<uint8_t*>(bytes), Device::CPU, file_);
}

std::span<const uint8_t> SafetensorsFile::raw_bytes(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  return {data_section_ + e.begin, e.nbytes()};
}

// ---- Checkpoint ----------------------------------------------------------------------------------------

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";

// name -> shard file name, from the index's "weight_map".
std::map<std::string, std::string> read_weight_map(const fs::path& index_path, const std::string& dir) {
  std::ifstream in(index_path, std::ios::binary);
  if (!in) fail("{}: cannot read {}: {}", dir, kIndexName, std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  json index;
  try {
    index = json::parse(text.str());
  } catch (const json::exception& e) {
    fail("{}: {} is not valid JSON: {}", dir, kIndexName, e.what());
  }
  if (!index.is_object()) fail("{}: {} must be a JSON object", dir, kIndexName);
  auto map = index.find("weight_map");
  if (map == index.end() || !map->is_object()) fail("{}: {} has no \"weight_map\" object", dir, kIndexName);
  std::map<std::string, std::string> out;
  for (const auto& [name, shard] : map->items()) {
    if (!shard.is_string()) fail("{}: {}: weight_map entry '{}' must name a shard file", dir, kIndexName, name);
    const std::string& file = shard.get_ref<const std::string&>();
    // Shards live in the directory itself; a path here could read files outside the checkpoint.
    if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos)
      fail("{}: {}: tensor '{}' names shard '{}', which is not a plain file name", dir, kIndexName, name, clip(file));
    out.emplace(name, file);
  }
  return out;
}

}  // namespace

Checkpoint::Checkpoint(const std::string& model_dir) : dir_(model_dir) {
  fs::path dir(model_dir);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("{}: not a directory", model_dir);
  fs::path index_path = dir / kIndexName;
  if (fs::exists(index_path, ec)) {
    std::map<std::string, size_t> shard_index;  // shard file -> index into files_
    for (const auto& [name, shard] : read_weight_map(index_path, model_dir)) {
      auto [it, inserted] = shard_index.emplace(shard, files_.size());
      if (inserted) {
        fs::path shard_path = dir / shard;
        if (!fs::is_regular_file(shard_path, ec))
          fail("{}: shard '{}' listed in {} is missing", model_dir, shard, kIndexName);
        files_.push_back(std::make_unique<SafetensorsFile>(shard_path.string()));
      }
      if (!files_[it->second]->contains(name))
        fail("{}: tensor '{}' is listed in {} under shard '{}' but that shard does not contain it", model_dir, name,
             kIndexName, shard);
      owner_.emplace(name, it->second);
    }
    return;
  }
  fs::path single = dir / "model.safetensors";
  if (!fs::exists(single, ec)) fail("{}: neither model.safetensors nor {} is present", model_dir, kIndexName);
  files_.push_back(std::make_unique<SafetensorsFile>(single.string()));
  for (const SafetensorsEntry& e : files_[0]->entries()) owner_.emplace(e.name, 0);
}

bool Checkpoint::contains(const std::string& name) const { return owner_.count(name) != 0; }

Tensor Checkpoint::tensor(const std::string& name) const {
  auto it = owner_.find(name);
  if (it == owner_.end()) fail("{}: checkpoint has no tensor named '{}'", dir_, name);
  return files_[it->second]->tensor(name);
}

std::vector<std::string> Checkpoint::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(owner_.size());
  for (const auto& [name, file] : owner_) names.push_back(name);
  return names;
}

size_t Checkpoint::total_bytes() const {
  size_t total = 0;
  for (const auto& [name, file] : owner_) total += files_[file]->raw_bytes(name).size();
  return total;
}

// ---- writer ------------------------------------------------------------------------------------------------

namespace {

std::string build_header(const std::vector<std::pair<std::string, Tensor>>& tensors,
                         const std::map<std::string, std::string>& metadata, const std::string& path) {
  // ordered_json keeps tensors in the given order, matching the data layout.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> names;
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail("{}: '__metadata__' is reserved and cannot name a tensor", path);
    if (!names.insert(name).second) fail("{}: tensor '{}' is given twice", path, name);
    if (t.device() != Device::CPU) fail("{}: tensor '{}' is not in host memory", path, name);
    if (!t.defined() && t.nbytes() != 0) fail("{}: tensor '{}' has no data", path, name);
    header[name] = {{"dtype", std::string(dtype_name(t.dtype()))},
                    {"shape", t.shape()},
                    {"data_offsets", nlohmann::ordered_json::array({offset, offset + t.nbytes()})}};
    offset += t.nbytes();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::string header = build_header(tensors, metadata, path);
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = uint8_t(uint64_t(header.size()) >> (8 * i));

  std::vector<std::string_view> chunks = {std::string_view(reinterpret_cast<const char*>(length), sizeof length),
                                          header};
  for (const auto& [name, t] : tensors)
    if (t.nbytes() > 0) chunks.emplace_back(static_cast<const char*>(t.data()), t.nbytes());
  write_file_atomically(path, chunks);
}

}  // namespace roofline
