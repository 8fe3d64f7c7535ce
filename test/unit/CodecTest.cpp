//===- CodecTest.cpp ------------------------------------------------------===//
#include "vindex/Store/Codec.h"
#include "vindex/Support/Transpose.h"

#include "gtest/gtest.h"

#include <vector>

using namespace vindex;
using namespace llvm;

TEST(Codec, ShuffleGroupsBytePlanes) {
  std::vector<uint8_t> Raw{0x01, 0xA1, 0x02, 0xA2, 0x03, 0xA3};
  std::vector<uint8_t> Planes(6);
  shuffleBytePlanes(Raw, 2, Planes.data());
  EXPECT_EQ(Planes, (std::vector<uint8_t>{1, 2, 3, 0xA1, 0xA2, 0xA3}));
  std::vector<uint8_t> Back(6);
  unshuffleBytePlanes(Planes, 2, Back.data());
  EXPECT_EQ(Back, Raw);
}

TEST(Codec, ZstdShuffleRoundTripsAcrossChunks) {
  std::vector<uint8_t> Raw(3 * 1000 + 8);
  for (size_t I = 0; I < Raw.size(); ++I)
    Raw[I] = uint8_t((I % 4 == 3) ? 0x3F : I * 7);
  const uint64_t Chunk = 1000; // small chunks: several frames
  ZstdShuffleEncoder Enc;
  std::vector<uint8_t> Stored;
  for (uint64_t Off = 0; Off < Raw.size(); Off += Chunk) {
    auto Frame = Enc.encode(
        ArrayRef(Raw).slice(Off, std::min<uint64_t>(Chunk, Raw.size() - Off)),
        4);
    ASSERT_TRUE(bool(Frame));
    Stored.insert(Stored.end(), Frame->begin(), Frame->end());
  }
  std::vector<uint8_t> Decoded;
  ASSERT_FALSE(bool(
      decodeZstdShuffle(Stored, Raw.size(), Chunk, 4, [&](ArrayRef<uint8_t> C) {
        Decoded.insert(Decoded.end(), C.begin(), C.end());
        return Error::success();
      })));
  EXPECT_EQ(Decoded, Raw);
}

TEST(Codec, CorruptFrameIsAnError) {
  std::vector<uint8_t> Raw(4096, 7);
  ZstdShuffleEncoder Enc;
  auto Frame = Enc.encode(Raw, 2);
  ASSERT_TRUE(bool(Frame));
  std::vector<uint8_t> Stored(Frame->begin(), Frame->end());
  Stored.resize(Stored.size() / 2);
  Error E =
      decodeZstdShuffle(Stored, Raw.size(), 4096, 2,
                        [](ArrayRef<uint8_t>) { return Error::success(); });
  ASSERT_TRUE(bool(E));
  EXPECT_NE(toString(std::move(E)).find("corrupt zstd frame"),
            std::string::npos);
}

// The bound a reader puts on a claimed decoded length holds for the most
// compressible chunks there are, and refuses what it must.
TEST(Codec, MinStoredBoundsRealFrames) {
  std::vector<uint8_t> Zeros(kCodecChunk + 1000, 0);
  ZstdShuffleEncoder Enc(19);
  std::vector<uint8_t> Stored;
  for (uint64_t Off = 0; Off < Zeros.size(); Off += kCodecChunk) {
    auto Frame = Enc.encode(
        ArrayRef(Zeros).slice(
            Off, std::min<uint64_t>(kCodecChunk, Zeros.size() - Off)),
        2);
    ASSERT_TRUE(bool(Frame));
    Stored.insert(Stored.end(), Frame->begin(), Frame->end());
  }
  EXPECT_GE(Stored.size(), minZstdShuffleStored(Zeros.size(), kCodecChunk));
  auto Ignore = [](ArrayRef<uint8_t>) { return Error::success(); };
  EXPECT_FALSE(
      bool(decodeZstdShuffle(Stored, Zeros.size(), kCodecChunk, 2, Ignore)));
  EXPECT_EQ(minZstdShuffleStored(0, kCodecChunk), 0u);
  EXPECT_EQ(minZstdShuffleStored(UINT64_MAX, 2), UINT64_MAX);
  // A claim the stored bytes cannot hold, and a chunk past kCodecChunk.
  Error E =
      decodeZstdShuffle(Stored, uint64_t(1) << 40, kCodecChunk, 2, Ignore);
  EXPECT_EQ(toString(std::move(E)),
            std::to_string(Stored.size()) +
                " stored bytes cannot hold 1099511627776 decoded bytes");
  E = decodeZstdShuffle(Stored, Zeros.size(), 2 * kCodecChunk, 2, Ignore);
  EXPECT_EQ(toString(std::move(E)), "invalid codec chunk size 8388608");
}

TEST(Layout, TransposeIsItsOwnInverse) {
  const uint64_t Rows = 70, Cols = 130; // not multiples of the block
  std::vector<uint16_t> A(Rows * Cols), T(Rows * Cols), B(Rows * Cols);
  for (size_t I = 0; I < A.size(); ++I)
    A[I] = uint16_t(I);
  transposeMatrix(reinterpret_cast<uint8_t *>(A.data()), Rows, Cols, 2,
                  reinterpret_cast<uint8_t *>(T.data()));
  EXPECT_EQ(T[5 * Rows + 3], A[3 * Cols + 5]);
  transposeMatrix(reinterpret_cast<uint8_t *>(T.data()), Cols, Rows, 2,
                  reinterpret_cast<uint8_t *>(B.data()));
  EXPECT_EQ(A, B);
}

TEST(Layout, TransposeMatchesScalarForBothElementSizes) {
  // Sizes with ragged edges around the 8x8 / 4x4 register blocks and the
  // 64x64 tiles.
  for (auto [Rows, Cols] : {std::pair<uint64_t, uint64_t>{1, 1},
                            {7, 9},
                            {8, 8},
                            {65, 130},
                            {128, 512},
                            {3, 200}}) {
    std::vector<uint16_t> A(Rows * Cols), T(Rows * Cols);
    std::vector<uint32_t> A4(Rows * Cols), T4(Rows * Cols);
    for (size_t I = 0; I < A.size(); ++I) {
      A[I] = uint16_t(I * 2654435761u);
      A4[I] = uint32_t(I * 2654435761u);
    }
    transposeMatrix(reinterpret_cast<uint8_t *>(A.data()), Rows, Cols, 2,
                    reinterpret_cast<uint8_t *>(T.data()));
    transposeMatrix(reinterpret_cast<uint8_t *>(A4.data()), Rows, Cols, 4,
                    reinterpret_cast<uint8_t *>(T4.data()));
    for (uint64_t R = 0; R < Rows; ++R)
      for (uint64_t C = 0; C < Cols; ++C) {
        ASSERT_EQ(T[C * Rows + R], A[R * Cols + C]) << Rows << "x" << Cols;
        ASSERT_EQ(T4[C * Rows + R], A4[R * Cols + C]) << Rows << "x" << Cols;
      }
  }
}
