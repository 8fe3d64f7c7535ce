//===- Codec.cpp ----------------------------------------------------------===//
#include "vindex/Store/Codec.h"

#include "vindex/Support/Error.h"

#include "llvm/Support/MathExtras.h"

#include <zstd.h>

using namespace llvm;

namespace vindex {

void shuffleBytePlanes(ArrayRef<uint8_t> Raw, unsigned ElemSize, uint8_t *Out) {
  size_t N = Raw.size() / ElemSize;
  for (unsigned B = 0; B < ElemSize; ++B) {
    uint8_t *Plane = Out + B * N;
    for (size_t I = 0; I < N; ++I)
      Plane[I] = Raw[I * ElemSize + B];
  }
}

void unshuffleBytePlanes(ArrayRef<uint8_t> Planes, unsigned ElemSize,
                         uint8_t *Out) {
  size_t N = Planes.size() / ElemSize;
  for (unsigned B = 0; B < ElemSize; ++B) {
    const uint8_t *Plane = Planes.data() + B * N;
    for (size_t I = 0; I < N; ++I)
      Out[I * ElemSize + B] = Plane[I];
  }
}

ZstdShuffleEncoder::ZstdShuffleEncoder(int Level)
    : Ctx(ZSTD_createCCtx()), Level(Level) {}

ZstdShuffleEncoder::~ZstdShuffleEncoder() {
  ZSTD_freeCCtx(static_cast<ZSTD_CCtx *>(Ctx));
}

Expected<ArrayRef<uint8_t>> ZstdShuffleEncoder::encode(ArrayRef<uint8_t> Raw,
                                                       unsigned ElemSize) {
  Shuffled.resize_for_overwrite(Raw.size());
  shuffleBytePlanes(Raw, ElemSize, Shuffled.data());
  Frame.resize_for_overwrite(ZSTD_compressBound(Raw.size()));
  size_t N =
      ZSTD_compressCCtx(static_cast<ZSTD_CCtx *>(Ctx), Frame.data(),
                        Frame.size(), Shuffled.data(), Shuffled.size(), Level);
  if (ZSTD_isError(N))
    return makeError("zstd compression failed: {0}", ZSTD_getErrorName(N));
  return ArrayRef<uint8_t>(Frame.data(), N);
}

uint64_t minZstdShuffleStored(uint64_t Length, uint64_t Chunk) {
  // A lower bound, generous to every zstd version: a frame starts with a
  // 4-byte magic number, and a block decodes at most ZSTD_BLOCKSIZE_MAX
  // bytes from at least 4 (a 3-byte header and one RLE byte or more).
  constexpr uint64_t kMagic = 4, kMinBlock = 4;
  if (Chunk == 0)
    return Length ? UINT64_MAX : 0;
  bool Overflow = false;
  uint64_t Headers =
      SaturatingMultiply(divideCeil(Length, Chunk), kMagic, &Overflow);
  uint64_t Blocks = SaturatingMultiply(
      divideCeil(Length, uint64_t(ZSTD_BLOCKSIZE_MAX)), kMinBlock, &Overflow);
  return SaturatingAdd(Headers, Blocks, &Overflow);
}

Error decodeZstdShuffle(ArrayRef<uint8_t> Stored, uint64_t Length,
                        uint64_t Chunk, unsigned ElemSize,
                        function_ref<Error(ArrayRef<uint8_t>)> Sink) {
  if (Chunk == 0 || Chunk % ElemSize || Chunk > kCodecChunk)
    return makeError("invalid codec chunk size {0}", Chunk);
  if (Stored.size() < minZstdShuffleStored(Length, Chunk))
    return makeError("{0} stored bytes cannot hold {1} decoded bytes",
                     Stored.size(), Length);
  SmallVector<uint8_t, 0> Planes, Raw;
  uint64_t Done = 0;
  while (Done < Length) {
    uint64_t Want = std::min(Chunk, Length - Done);
    size_t FrameSize =
        ZSTD_findFrameCompressedSize(Stored.data(), Stored.size());
    if (ZSTD_isError(FrameSize))
      return makeError("corrupt zstd frame at decoded byte {0}: {1}", Done,
                       ZSTD_getErrorName(FrameSize));
    Planes.resize_for_overwrite(Want);
    size_t Got = ZSTD_decompress(Planes.data(), Want, Stored.data(), FrameSize);
    if (ZSTD_isError(Got))
      return makeError("corrupt zstd frame at decoded byte {0}: {1}", Done,
                       ZSTD_getErrorName(Got));
    if (Got != Want)
      return makeError("zstd frame at decoded byte {0} holds {1} bytes, "
                       "expected {2}",
                       Done, Got, Want);
    Raw.resize_for_overwrite(Want);
    unshuffleBytePlanes(Planes, ElemSize, Raw.data());
    if (Error E = Sink(Raw))
      return E;
    Stored = Stored.drop_front(FrameSize);
    Done += Want;
  }
  if (!Stored.empty())
    return makeError("{0} bytes after the last zstd frame", Stored.size());
  return Error::success();
}

} // namespace vindex
