//===- Codec.h - Tensor payload codecs --------------------------*- C++ -*-===//
//
// ZstdShuffle: the decoded payload is cut into chunks of a fixed size; each
// chunk is byte-plane shuffled (for bf16: all low bytes, then all high bytes),
// which groups the slowly varying exponent bytes, and compressed as one
// independent zstd frame. Independent frames let a reader stream a tensor
// and let a writer compress chunks in any order.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_STORE_CODEC_H
#define VINDEX_STORE_CODEC_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/Error.h"

namespace vindex {

/// Decoded bytes per zstd frame; also the checksum chunk (kChecksumChunk).
constexpr uint64_t kCodecChunk = 4u << 20;
constexpr int kDefaultZstdLevel = 3;

/// Byte-plane shuffle of Raw (whole elements of ElemSize bytes) into Out.
void shuffleBytePlanes(llvm::ArrayRef<uint8_t> Raw, unsigned ElemSize,
                       uint8_t *Out);
/// The inverse of shuffleBytePlanes.
void unshuffleBytePlanes(llvm::ArrayRef<uint8_t> Planes, unsigned ElemSize,
                         uint8_t *Out);

/// Reusable state for compressing chunks on one thread.
class ZstdShuffleEncoder {
public:
  explicit ZstdShuffleEncoder(int Level = kDefaultZstdLevel);
  ~ZstdShuffleEncoder();
  /// Compresses one chunk; the frame is valid until the next call.
  llvm::Expected<llvm::ArrayRef<uint8_t>> encode(llvm::ArrayRef<uint8_t> Raw,
                                                 unsigned ElemSize);

private:
  void *Ctx;
  int Level;
  llvm::SmallVector<uint8_t, 0> Shuffled, Frame;
};

/// The fewest stored bytes that can hold a ZstdShuffle payload of Length
/// decoded bytes in chunks of Chunk (saturating at UINT64_MAX): a reader
/// refuses a claimed length its stored bytes cannot hold before sizing
/// anything by that length.
uint64_t minZstdShuffleStored(uint64_t Length, uint64_t Chunk);

/// Decodes a ZstdShuffle payload of Length decoded bytes, calling Sink once
/// per chunk (in order) with the decoded bytes. Chunk is at most
/// kCodecChunk, which bounds what a frame may ask to allocate.
llvm::Error decodeZstdShuffle(
    llvm::ArrayRef<uint8_t> Stored, uint64_t Length, uint64_t Chunk,
    unsigned ElemSize,
    llvm::function_ref<llvm::Error(llvm::ArrayRef<uint8_t>)> Sink);

} // namespace vindex

#endif // VINDEX_STORE_CODEC_H
