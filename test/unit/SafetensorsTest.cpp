//===- SafetensorsTest.cpp ------------------------------------------------===//
#include "vindex/Formats/Safetensors.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Endian.h"

#include "gtest/gtest.h"

using namespace vindex;
using namespace llvm;

static std::vector<uint8_t> file(StringRef Header, size_t DataBytes) {
  std::vector<uint8_t> F(8);
  support::endian::write64le(F.data(), Header.size());
  F.insert(F.end(), Header.begin(), Header.end());
  F.resize(F.size() + DataBytes, 0xAB);
  return F;
}

static std::string parse(StringRef Header, size_t DataBytes,
                         std::vector<SafetensorsEntry> *Out = nullptr) {
  std::vector<SafetensorsEntry> Entries;
  Metadata Meta;
  Error E = parseSafetensorsHeader("f.safetensors", file(Header, DataBytes),
                                   Entries, Meta);
  if (Out)
    *Out = Entries;
  return E ? toString(std::move(E)) : "";
}

TEST(Safetensors, ParsesAndOrdersByOffset) {
  std::vector<SafetensorsEntry> E;
  EXPECT_EQ(parse(R"({"z":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("a":{"dtype":"BF16","shape":[1,3],"data_offsets":[8,14]},)"
                  R"("__metadata__":{"format":"pt"}})",
                  14, &E),
            "");
  ASSERT_EQ(E.size(), 2u);
  EXPECT_EQ(E[0].Name, "z");
  EXPECT_EQ(E[1].Name, "a");
  EXPECT_EQ(E[1].Type, DType::BF16);
  EXPECT_EQ(E[1].Dims, (Shape{1, 3}));
  EXPECT_EQ(E[1].Length, 6u);
}

TEST(Safetensors, ZeroSizedTensorsAreFine) {
  EXPECT_EQ(parse(R"({"e":{"dtype":"F16","shape":[0,4],"data_offsets":[0,0]},)"
                  R"("s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})",
                  4),
            "");
}

TEST(Safetensors, RejectsBadOffsets) {
  EXPECT_EQ(
      parse(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4),
      "f.safetensors: tensor 'a': data_offsets [4, 0] end before they "
      "begin");
  EXPECT_EQ(
      parse(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", 4),
      "f.safetensors: tensor 'a': 'data_offsets' must have 2 entries, "
      "not 3");
  EXPECT_EQ(
      parse(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
      "f.safetensors: data bytes [0, 4) before tensor 'a' belong to no "
      "tensor");
}

TEST(Safetensors, RejectsOverflowingShapes) {
  EXPECT_EQ(parse(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],)"
                  R"("data_offsets":[0,4]}})",
                  4),
            "f.safetensors: tensor 'a': shape [4294967296, 4294967296] is too "
            "large");
}

TEST(Safetensors, RejectsBadMetadata) {
  EXPECT_EQ(parse(R"({"__metadata__":{"n":1}})", 0),
            "f.safetensors: '__metadata__' value of 'n' must be a string");
}

TEST(Safetensors, WriterHeaderIsReadBack) {
  SafetensorsWriter W({{"x", DType::F16, {2, 2}}, {"b", DType::F32, {3}}},
                      {{"format", "pt"}});
  EXPECT_EQ((W.header().size() - 8) % 8, 0u);
  EXPECT_EQ(W.totalSize(), W.header().size() + 8 + 12);
  std::vector<uint8_t> F(W.header().begin(), W.header().end());
  F.resize(W.totalSize());
  std::vector<SafetensorsEntry> E;
  Metadata Meta;
  ASSERT_FALSE(bool(parseSafetensorsHeader("w", F, E, Meta)));
  ASSERT_EQ(E.size(), 2u);
  EXPECT_EQ(E[0].Name, "x");
  EXPECT_EQ(E[0].Offset, W.header().size());
  EXPECT_EQ(E[1].Offset, W.header().size() + 8);
  EXPECT_EQ(Meta, (Metadata{{"format", "pt"}}));
}
