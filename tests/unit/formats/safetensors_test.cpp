// Round trips through real files: write_safetensors, then SafetensorsFile / Checkpoint read the bytes back.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "formats_test_util.h"
#include "roofline/core/dtype.h"
#include "roofline/formats/safetensors.h"

namespace roofline {
namespace {

using test::error_of;
using test::TempDir;

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 2.0f);
  std::vector<float> out(n);
  for (float& v : out) v = dist(rng);
  return out;
}

Tensor from_floats(DType dtype, Shape shape, const std::vector<float>& values) {
  Tensor t = Tensor::empty(dtype, std::move(shape));
  convert_from_f32(dtype, values.data(), t.data(), values.size());
  return t;
}

std::vector<float> to_floats(const Tensor& t) {
  std::vector<float> out(size_t(t.numel()));
  convert_to_f32(t.dtype(), t.data(), out.data(), out.size());
  return out;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
}

TEST(Safetensors, RoundTripsF32F16Bf16WithMetadata) {
  TempDir dir;
  std::string path = dir.file("model.safetensors");
  std::vector<float> values = random_floats(6 * 5, 1);
  Tensor f32 = from_floats(DType::F32, {6, 5}, values);
  Tensor f16 = from_floats(DType::F16, {5, 6}, values);
  Tensor bf16 = from_floats(DType::BF16, {30}, values);
  write_safetensors(path, {{"w.f32", f32}, {"w.f16", f16}, {"w.bf16", bf16}}, {{"format", "pt"}});

  SafetensorsFile file(path);
  EXPECT_EQ(file.path(), path);
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  ASSERT_EQ(file.entries().size(), 3u);
  // Entries come in data order, which is the order they were written in.
  EXPECT_EQ(file.entries()[0].name, "w.f32");
  EXPECT_EQ(file.entries()[1].name, "w.f16");
  EXPECT_EQ(file.entries()[2].name, "w.bf16");
  EXPECT_EQ(file.entries()[1].begin, 120u);
  EXPECT_EQ(file.entries()[1].end, 180u);

  Tensor r32 = file.tensor("w.f32"), r16 = file.tensor("w.f16"), rb16 = file.tensor("w.bf16");
  EXPECT_EQ(r32.dtype(), DType::F32);
  EXPECT_EQ(r32.shape(), (Shape{6, 5}));
  EXPECT_EQ(r16.dtype(), DType::F16);
  EXPECT_EQ(r16.shape(), (Shape{5, 6}));
  EXPECT_EQ(rb16.dtype(), DType::BF16);
  EXPECT_EQ(rb16.shape(), (Shape{30}));
  EXPECT_TRUE(same_bytes(r32, f32));
  EXPECT_TRUE(same_bytes(r16, f16));
  EXPECT_TRUE(same_bytes(rb16, bf16));
  EXPECT_EQ(to_floats(r32), values);
  EXPECT_EQ(to_floats(r16), to_floats(f16));
  EXPECT_EQ(to_floats(rb16), to_floats(bf16));
  EXPECT_TRUE(file.contains("w.f16"));
  EXPECT_FALSE(file.contains("w.f8"));
}

TEST(Safetensors, RoundTripsEveryDTypeAndEmptyAndScalarShapes) {
  TempDir dir;
  std::string path = dir.file("all.safetensors");
  std::vector<std::pair<std::string, Tensor>> tensors;
  int n = 0;
  for (DType d : {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I32, DType::I64, DType::U8, DType::I8,
                  DType::Bool}) {
    Tensor t = Tensor::empty(d, {3, 2});
    for (size_t i = 0; i < t.nbytes(); ++i) t.ptr<uint8_t>()[i] = uint8_t(n * 31 + int(i));
    tensors.emplace_back(std::string(dtype_name(d)), t);
    ++n;
  }
  tensors.emplace_back("empty", Tensor::empty(DType::F32, {0, 4}));
  Tensor scalar = Tensor::empty(DType::F32, {});
  *scalar.ptr<float>() = 2.5f;
  tensors.emplace_back("scalar", scalar);
  write_safetensors(path, tensors);

  SafetensorsFile file(path);
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    Tensor r = file.tensor(name);
    EXPECT_EQ(r.dtype(), t.dtype());
    EXPECT_EQ(r.shape(), t.shape());
    EXPECT_TRUE(same_bytes(r, t));
  }
  EXPECT_EQ(*file.tensor("scalar").ptr<float>(), 2.5f);
}

TEST(Safetensors, MisalignedTensorComesBackAsAlignedCopy) {
  TempDir dir;
  std::string path = dir.file("odd.safetensors");
  Tensor byte = Tensor::zeros(DType::U8, {1});
  std::vector<float> values = random_floats(5, 6);
  Tensor f32 = from_floats(DType::F32, {5}, values);
  write_safetensors(path, {{"byte", byte}, {"f32", f32}});  // f32 starts 1 byte into the data section
  SafetensorsFile file(path);
  Tensor r = file.tensor("f32");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(r.data()) % 4, 0u);
  EXPECT_NE(r.ptr<uint8_t>(), file.raw_bytes("f32").data());
  EXPECT_EQ(to_floats(r), values);
  EXPECT_EQ(r.shape(), (Shape{5}));
}

TEST(Safetensors, HeaderIsPaddedWithSpacesToEightBytes) {
  TempDir dir;
  std::string path = dir.file("pad.safetensors");
  write_safetensors(path, {{"a", Tensor::zeros(DType::F32, {1})}});
  std::string bytes = test::read_file(path);
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | uint8_t(bytes[size_t(i)]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + n + 4);
  std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  size_t close = header.rfind('}');
  EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos);
}

TEST(Safetensors, ViewIsZeroCopyAndKeepsTheMappingAlive) {
  TempDir dir;
  std::string path = dir.file("alive.safetensors");
  std::vector<float> values = random_floats(1024, 2);
  write_safetensors(path, {{"x", from_floats(DType::F32, {1024}, values)}});
  Tensor view;
  {
    SafetensorsFile file(path);
    view = file.tensor("x");
    EXPECT_EQ(file.tensor("x").data(), view.data());  // the same bytes, not a copy
    EXPECT_EQ(file.raw_bytes("x").data(), view.ptr<uint8_t>());
  }
  // The SafetensorsFile is gone; the view's storage still holds the mapping.
  EXPECT_EQ(to_floats(view), values);
}

TEST(Safetensors, WriterReplacesAtomicallyAndLeavesNoTempFile) {
  TempDir dir;
  std::string path = dir.file("w.safetensors");
  write_safetensors(path, {{"a", Tensor::zeros(DType::F32, {4})}});
  write_safetensors(path, {{"b", Tensor::zeros(DType::BF16, {2})}});
  SafetensorsFile file(path);
  EXPECT_FALSE(file.contains("a"));
  EXPECT_TRUE(file.contains("b"));
  for (const auto& e : std::filesystem::directory_iterator(dir.str()))
    EXPECT_EQ(e.path().filename(), "w.safetensors") << "stray file " << e.path();
}

TEST(Safetensors, WriterErrorsNameThePath) {
  TempDir dir;
  std::string missing_dir = dir.file("no/such/dir/x.safetensors");
  EXPECT_NE(error_of([&] { write_safetensors(missing_dir, {{"a", Tensor::zeros(DType::F32, {1})}}); })
                .find(missing_dir),
            std::string::npos);
  std::string path = dir.file("dup.safetensors");
  std::string msg = error_of([&] {
    write_safetensors(path, {{"a", Tensor::zeros(DType::F32, {1})}, {"a", Tensor::zeros(DType::F32, {1})}});
  });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("'a'"), std::string::npos) << msg;
  msg = error_of([&] { write_safetensors(path, {{"__metadata__", Tensor::zeros(DType::F32, {1})}}); });
  EXPECT_NE(msg.find("reserved"), std::string::npos) << msg;
  EXPECT_FALSE(std::filesystem::exists(path));
}

// ---- Checkpoint ------------------------------------------------------------------------------------------

TEST(Checkpoint, SingleFile) {
  TempDir dir;
  write_safetensors(dir.file("model.safetensors"),
                    {{"b", Tensor::zeros(DType::F32, {2, 2})}, {"a", Tensor::zeros(DType::BF16, {3})}});
  Checkpoint ckpt(dir.str());
  EXPECT_EQ(ckpt.dir(), dir.str());
  EXPECT_EQ(ckpt.tensor_names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(ckpt.total_bytes(), 16u + 6u);
  EXPECT_TRUE(ckpt.contains("a"));
  EXPECT_EQ(ckpt.tensor("a").shape(), (Shape{3}));
}

void write_sharded(const TempDir& dir, const std::vector<float>& values) {
  write_safetensors(dir.file("model-00001-of-00002.safetensors"),
                    {{"embed.weight", from_floats(DType::BF16, {4, 8}, values)}, {"layers.0.w", Tensor::zeros(DType::F32, {8})}});
  write_safetensors(dir.file("model-00002-of-00002.safetensors"),
                    {{"layers.1.w", from_floats(DType::F16, {32}, values)}, {"norm.weight", Tensor::zeros(DType::F32, {8})}});
}

const char* kIndex = R"({
  "metadata": {"total_size": 160},
  "weight_map": {
    "embed.weight": "model-00001-of-00002.safetensors",
    "layers.0.w": "model-00001-of-00002.safetensors",
    "layers.1.w": "model-00002-of-00002.safetensors",
    "norm.weight": "model-00002-of-00002.safetensors"
  }
})";

TEST(Checkpoint, ShardedWithIndex) {
  TempDir dir;
  std::vector<float> values = random_floats(32, 3);
  write_sharded(dir, values);
  test::write_file(dir.file("model.safetensors.index.json"), kIndex);
  Tensor embed, layer1;
  {
    Checkpoint ckpt(dir.str());
    EXPECT_EQ(ckpt.tensor_names(), (std::vector<std::string>{"embed.weight", "layers.0.w", "layers.1.w", "norm.weight"}));
    EXPECT_EQ(ckpt.total_bytes(), 64u + 32u + 64u + 32u);
    embed = ckpt.tensor("embed.weight");
    layer1 = ckpt.tensor("layers.1.w");
  }
  EXPECT_EQ(embed.dtype(), DType::BF16);
  EXPECT_EQ(embed.shape(), (Shape{4, 8}));
  EXPECT_EQ(to_floats(embed), to_floats(from_floats(DType::BF16, {32}, values)));
  EXPECT_EQ(to_floats(layer1), to_floats(from_floats(DType::F16, {32}, values)));
}

TEST(Checkpoint, MissingShardNamesDirectoryAndShard) {
  TempDir dir;
  write_sharded(dir, random_floats(32, 4));
  std::filesystem::remove(dir.file("model-00002-of-00002.safetensors"));
  test::write_file(dir.file("model.safetensors.index.json"), kIndex);
  std::string msg = error_of([&] { Checkpoint c(dir.str()); });
  EXPECT_NE(msg.find(dir.str()), std::string::npos) << msg;
  EXPECT_NE(msg.find("model-00002-of-00002.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
}

TEST(Checkpoint, IndexedNameAbsentFromShardNamesDirectoryAndTensor) {
  TempDir dir;
  write_sharded(dir, random_floats(32, 5));
  std::string index = kIndex;
  index.replace(index.find("\"norm.weight\""), 13, "\"final_norm.weight\"");
  test::write_file(dir.file("model.safetensors.index.json"), index);
  std::string msg = error_of([&] { Checkpoint c(dir.str()); });
  EXPECT_NE(msg.find(dir.str()), std::string::npos) << msg;
  EXPECT_NE(msg.find("'final_norm.weight'"), std::string::npos) << msg;
}

TEST(Checkpoint, ShardPathOutsideTheDirectoryIsRejected) {
  TempDir dir;
  test::write_file(dir.file("model.safetensors.index.json"), R"({"weight_map": {"w": "../model.safetensors"}})");
  std::string msg = error_of([&] { Checkpoint c(dir.str()); });
  EXPECT_NE(msg.find(dir.str()), std::string::npos) << msg;
  EXPECT_NE(msg.find("not a plain file name"), std::string::npos) << msg;
}

TEST(Checkpoint, BadIndexNamesDirectory) {
  TempDir dir;
  test::write_file(dir.file("model.safetensors.index.json"), R"({"weight_map": [1, 2]})");
  std::string msg = error_of([&] { Checkpoint c(dir.str()); });
  EXPECT_NE(msg.find(dir.str()), std::string::npos) << msg;
  EXPECT_NE(msg.find("weight_map"), std::string::npos) << msg;
  test::write_file(dir.file("model.safetensors.index.json"), "{not json");
  msg = error_of([&] { Checkpoint c(dir.str()); });
  EXPECT_NE(msg.find("not valid JSON"), std::string::npos) << msg;
}

TEST(Checkpoint, EmptyDirectoryAndAbsentTensorNameTheDirectory) {
  TempDir dir;
  std::string msg = error_of([&] { Checkpoint c(dir.str()); });
  EXPECT_NE(msg.find(dir.str()), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;

  write_safetensors(dir.file("model.safetensors"), {{"a", Tensor::zeros(DType::F32, {1})}});
  Checkpoint ckpt(dir.str());
  msg = error_of([&] { ckpt.tensor("lm_head.weight"); });
  EXPECT_NE(msg.find(dir.str()), std::string::npos) << msg;
  EXPECT_NE(msg.find("'lm_head.weight'"), std::string::npos) << msg;
}

}  // namespace
}  // namespace roofline
