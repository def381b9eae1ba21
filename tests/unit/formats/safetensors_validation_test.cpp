// One test per validation rule of the safetensors reader. Each writes a hand-made file and checks that the
// Error names the file and, where there is one, the tensor.
#include <gtest/gtest.h>

#include "formats_test_util.h"
#include "roofline/formats/safetensors.h"

namespace roofline {
namespace {

using test::safetensors_image;

// Writes `bytes` to a file, opens it and returns the error; the message must name the file.
std::string open_error(const std::string& bytes) {
  test::TempDir dir;
  std::string path = dir.file("bad.safetensors");
  test::write_file(path, bytes);
  std::string msg = test::error_of([&] { SafetensorsFile f(path); });
  EXPECT_NE(msg.find(path + ": "), std::string::npos) << msg;
  return msg;
}

std::string entry_error(const std::string& entry_json, size_t data_bytes) {
  return open_error(safetensors_image(R"({"layers.0.w":)" + entry_json + "}", data_bytes));
}

#define EXPECT_HAS(msg, part) EXPECT_NE((msg).find(part), std::string::npos) << (msg)

TEST(SafetensorsValidation, FileShorterThanLengthField) {
  std::string msg = open_error(std::string("\x10\0\0", 3));
  EXPECT_HAS(msg, "3 bytes, too short");
  EXPECT_HAS(open_error(""), "0 bytes");
}

TEST(SafetensorsValidation, HeaderLengthBeyondFile) {
  EXPECT_HAS(open_error(safetensors_image("{}", 0, 64)), "header length 64 bytes exceeds the 2 bytes");
}

TEST(SafetensorsValidation, HeaderLengthAbsurd) {
  EXPECT_HAS(open_error(safetensors_image("{}", 0, uint64_t(1) << 40)), "over the 100000000-byte limit");
  EXPECT_HAS(open_error(safetensors_image("{}", 0, ~uint64_t(0))), "limit");
}

TEST(SafetensorsValidation, HeaderNotJson) {
  EXPECT_HAS(open_error(safetensors_image(R"({"a": {"dtype": "F32")", 0)), "header is not valid JSON");
  EXPECT_HAS(open_error(safetensors_image("", 0)), "header is not valid JSON");
}

TEST(SafetensorsValidation, HeaderNotObject) {
  EXPECT_HAS(open_error(safetensors_image("[1, 2]", 0)), "header must be a JSON object, got array");
}

TEST(SafetensorsValidation, HeaderNestsTooDeep) {
  EXPECT_HAS(open_error(safetensors_image(std::string(40, '[') + std::string(40, ']'), 0)), "nests deeper");
}

TEST(SafetensorsValidation, MetadataMustBeObjectOfStrings) {
  EXPECT_HAS(open_error(safetensors_image(R"({"__metadata__": ["x"]})", 0)), "__metadata__ must be an object");
  std::string msg = open_error(safetensors_image(R"({"__metadata__": {"format": "pt", "step": 3}})", 0));
  EXPECT_HAS(msg, "'step' must be a string");
}

TEST(SafetensorsValidation, EntryNotObject) {
  EXPECT_HAS(entry_error("[1]", 0), "tensor 'layers.0.w': entry must be a JSON object");
}

TEST(SafetensorsValidation, MissingDtype) {
  EXPECT_HAS(entry_error(R"({"shape": [1], "data_offsets": [0, 4]})", 4), "tensor 'layers.0.w': missing \"dtype\"");
}

TEST(SafetensorsValidation, DtypeNotString) {
  EXPECT_HAS(entry_error(R"({"dtype": 4, "shape": [1], "data_offsets": [0, 4]})", 4),
             "tensor 'layers.0.w': dtype must be a string");
}

TEST(SafetensorsValidation, UnknownDtype) {
  EXPECT_HAS(entry_error(R"({"dtype": "F12", "shape": [1], "data_offsets": [0, 4]})", 4),
             "tensor 'layers.0.w': unknown dtype 'F12'");
}

TEST(SafetensorsValidation, MissingShape) {
  EXPECT_HAS(entry_error(R"({"dtype": "F32", "data_offsets": [0, 4]})", 4), "tensor 'layers.0.w': missing \"shape\"");
}

TEST(SafetensorsValidation, ShapeNotArray) {
  EXPECT_HAS(entry_error(R"({"dtype": "F32", "shape": 4, "data_offsets": [0, 4]})", 4),
             "tensor 'layers.0.w': shape must be an array");
}

TEST(SafetensorsValidation, ShapeNegativeDimension) {
  EXPECT_HAS(entry_error(R"({"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]})", 4),
             "tensor 'layers.0.w': shape value -1 is negative");
}

TEST(SafetensorsValidation, ShapeNonIntegerDimension) {
  EXPECT_HAS(entry_error(R"({"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]})", 4),
             "tensor 'layers.0.w': shape must hold non-negative integers, got 1.5");
  EXPECT_HAS(entry_error(R"({"dtype": "F32", "shape": ["1"], "data_offsets": [0, 4]})", 4), "got \"1\"");
}

TEST(SafetensorsValidation, ShapeDimensionTooLarge) {
  EXPECT_HAS(entry_error(R"({"dtype": "U8", "shape": [18446744073709551615], "data_offsets": [0, 0]})", 0),
             "tensor 'layers.0.w': shape value 18446744073709551615 is too large");
}

TEST(SafetensorsValidation, ShapeProductOverflows) {
  // 2^32 * 2^32 wraps to 0 in 64 bits, which would match empty offsets without the overflow check.
  EXPECT_HAS(entry_error(R"({"dtype": "U8", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]})", 0),
             "tensor 'layers.0.w': shape [4294967296,4294967296] has more elements than fit in 64 bits");
  // The element count fits, the byte count does not: 2^62 F32 elements.
  EXPECT_HAS(entry_error(R"({"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 0]})", 0),
             "tensor 'layers.0.w': shape [4611686018427387904] of F32 is too large");
}

TEST(SafetensorsValidation, MissingDataOffsets) {
  EXPECT_HAS(entry_error(R"({"dtype": "F32", "shape": [1]})", 4), "tensor 'layers.0.w': missing \"data_offsets\"");
}

TEST(SafetensorsValidation, DataOffsetsNotAPair) {
  EXPECT_HAS(entry_error(R"({"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]})", 8),
             "tensor 'layers.0.w': data_offsets must be [begin, end]");
  EXPECT_HAS(entry_error(R"({"dtype": "F32", "shape": [1], "data_offsets": [0, -4]})", 8),
             "tensor 'layers.0.w': data_offsets value -4 is negative");
}

TEST(SafetensorsValidation, DataOffsetsEndBeforeBegin) {
  EXPECT_HAS(entry_error(R"({"dtype": "F32", "shape": [1], "data_offsets": [8, 4]})", 8),
             "tensor 'layers.0.w': data_offsets [8, 4]: end is before begin");
}

TEST(SafetensorsValidation, DataOffsetsBeyondDataSection) {
  // The message the brief gives as the model, word for word (in-memory image, labelled like the file).
  std::string image = safetensors_image(
      R"({"model.embed_tokens.weight": {"dtype": "U8", "shape": [999999], "data_offsets": [0, 999999]}})", 4096);
  std::string msg = test::error_of([&] {
    SafetensorsFile f(reinterpret_cast<const uint8_t*>(image.data()), image.size(), "model.safetensors");
  });
  EXPECT_EQ(msg,
            "model.safetensors: tensor 'model.embed_tokens.weight': data_offsets [0, 999999] exceed the data section "
            "(4096 bytes)");
  EXPECT_HAS(entry_error(R"({"dtype": "F32", "shape": [1], "data_offsets": [4, 8]})", 7),
             "tensor 'layers.0.w': data_offsets [4, 8] exceed the data section (7 bytes)");
}

TEST(SafetensorsValidation, ByteSizeDiffersFromShape) {
  EXPECT_HAS(entry_error(R"({"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 16]})", 16),
             "tensor 'layers.0.w': data_offsets [0, 16] hold 16 bytes but shape [2, 3] of BF16 needs 12");
}

TEST(SafetensorsValidation, SubByteDtypeMustFillWholeBytes) {
  EXPECT_HAS(entry_error(R"({"dtype": "F4", "shape": [3], "data_offsets": [0, 2]})", 2),
             "tensor 'layers.0.w': 3 elements of F4 do not fill whole bytes");
}

TEST(SafetensorsValidation, OverlappingTensors) {
  std::string msg = open_error(safetensors_image(
      R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
          "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
      12));
  EXPECT_HAS(msg, "tensor 'b': data_offsets [4, 12] overlap tensor 'a' [0, 8]");
}

TEST(SafetensorsValidation, EmptyTensorsNeverOverlap) {
  std::string image = safetensors_image(
      R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
          "e": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}})",
      8);
  SafetensorsFile f(reinterpret_cast<const uint8_t*>(image.data()), image.size(), "mem");
  EXPECT_EQ(f.tensor("e").numel(), 0);
}

TEST(SafetensorsValidation, DuplicateTensorName) {
  std::string msg = open_error(safetensors_image(
      R"({"layers.0.w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
          "layers.0.w": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}})",
      2));
  EXPECT_HAS(msg, "header lists 'layers.0.w' twice");
}

TEST(SafetensorsValidation, DuplicateKeyInsideEntry) {
  EXPECT_HAS(entry_error(R"({"dtype": "U8", "dtype": "F32", "shape": [1], "data_offsets": [0, 1]})", 4),
             "tensor 'layers.0.w': key 'dtype' appears twice");
}

TEST(SafetensorsValidation, UnsupportedDtypeIsListedButNotViewable) {
  std::string image = safetensors_image(
      R"({"scales": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}})", 4);
  SafetensorsFile f(reinterpret_cast<const uint8_t*>(image.data()), image.size(), "fp8.safetensors");
  ASSERT_EQ(f.entries().size(), 1u);
  EXPECT_FALSE(f.entries()[0].supported);
  EXPECT_EQ(f.entries()[0].dtype_name, "F8_E4M3");
  EXPECT_EQ(f.raw_bytes("scales").size(), 4u);
  std::string msg = test::error_of([&] { f.tensor("scales"); });
  EXPECT_HAS(msg, "fp8.safetensors: tensor 'scales' has dtype F8_E4M3, which roofline does not support");
  EXPECT_HAS(msg, "supported: F32, F16, BF16");
}

TEST(SafetensorsValidation, AbsentTensorNamesFileAndTensor) {
  std::string image = safetensors_image("{}", 0);
  SafetensorsFile f(reinterpret_cast<const uint8_t*>(image.data()), image.size(), "empty.safetensors");
  EXPECT_TRUE(f.entries().empty());
  EXPECT_HAS(test::error_of([&] { f.tensor("lm_head.weight"); }), "empty.safetensors: no tensor named 'lm_head.weight'");
  EXPECT_HAS(test::error_of([&] { f.raw_bytes("x"); }), "no tensor named 'x'");
}

TEST(SafetensorsValidation, MissingFileNamesPath) {
  EXPECT_HAS(test::error_of([] { SafetensorsFile f("/nonexistent/dir/model.safetensors"); }),
             "/nonexistent/dir/model.safetensors: cannot open");
}

}  // namespace
}  // namespace roofline
