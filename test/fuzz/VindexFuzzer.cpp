//===- VindexFuzzer.cpp - the V-index open path ---------------------------===//
//
// First byte 0: the rest is a manifest.vfb, opened as a V-index whose
// payload files are those of a V-index made from the tiny-llama fixture
// (VINDEX_FUZZ_VINDEX, which utils/fuzz.sh makes: probed, with labels, and
// a patch overlay of appended, installed and deleted features): flatbuffer
// verification, the config's size invariants, every tensor record against
// its payload file, labels and patches listed. 1: a labels file, read and
// checked against that V-index's manifest. 2: a patch file, read.
//
//===----------------------------------------------------------------------===//
#include "FuzzInput.h"

#include "vindex/Store/Labels.h"
#include "vindex/Store/Manifest.h"
#include "vindex/Store/Patch.h"
#include "vindex/Store/Vindex.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cstdlib>
#include <vector>

using namespace vindex;

namespace {

/// A copy of the seed V-index whose files are links to the original, so
/// that the manifest can be replaced; and the original's manifest.
struct Base {
  std::string Dir;
  std::optional<Manifest> M;
};

const Base &base() {
  static const Base B = [] {
    Base R;
    const char *Src = std::getenv("VINDEX_FUZZ_VINDEX");
    if (!Src)
      return R;
    R.Dir = fuzz::scratchDir() + "/v.vindex";
    llvm::sys::fs::create_directories(R.Dir);
    std::error_code EC;
    for (llvm::sys::fs::directory_iterator It(Src, EC), End; It != End && !EC;
         It.increment(EC)) {
      llvm::StringRef Name = llvm::sys::path::filename(It->path());
      if (Name != "manifest.vfb")
        llvm::sys::fs::create_link(It->path(), R.Dir + "/" + Name.str());
    }
    auto Bytes = llvm::MemoryBuffer::getFile(std::string(Src) + "/manifest.vfb");
    if (Bytes) {
      llvm::ArrayRef<uint8_t> A(
          reinterpret_cast<const uint8_t *>((*Bytes)->getBufferStart()),
          (*Bytes)->getBufferSize());
      if (auto M = parseManifest(A, "manifest.vfb"))
        R.M = std::move(*M);
      else
        llvm::consumeError(M.takeError());
    }
    return R;
  }();
  return B;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size) {
  if (Size < 1)
    return 0;
  // The rest in a buffer of its own: flatbuffers (like the tools, which map
  // files or read them into aligned buffers) expects the buffer's start to
  // be aligned, and Data + 1 is not (UBSan's misaligned access, a harness
  // artifact, was the first thing this target found).
  std::vector<uint8_t> Copy(Data + 1, Data + Size);
  llvm::ArrayRef<uint8_t> Rest(Copy);
  switch (Data[0] % 3) {
  case 0: {
    auto M = parseManifest(Rest, "manifest.vfb");
    if (!M) {
      llvm::consumeError(M.takeError());
      return 0;
    }
    if (base().Dir.empty())
      return 0;
    std::string Path = base().Dir + "/manifest.vfb";
    llvm::sys::fs::remove(Path);
    {
      std::error_code EC;
      llvm::raw_fd_ostream OS(Path, EC);
      OS << fuzz::asText(Rest.data(), Rest.size());
    }
    if (auto V = Vindex::open(base().Dir); !V)
      llvm::consumeError(V.takeError());
    return 0;
  }
  case 1: {
    auto L = readLabels(Rest, "labels.vfb");
    if (!L) {
      llvm::consumeError(L.takeError());
      return 0;
    }
    if (base().M)
      if (llvm::Error E = checkLabels(*L, *base().M, "labels.vfb"))
        llvm::consumeError(std::move(E));
    return 0;
  }
  default:
    if (auto P = readPatchFile(Rest, "p.vpatch"); !P)
      llvm::consumeError(P.takeError());
    return 0;
  }
}
