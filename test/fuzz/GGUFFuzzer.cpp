//===- GGUFFuzzer.cpp - the GGUF reader -----------------------------------===//
//
// Any bytes as a .gguf file: header, KVs (scalars, strings, arrays), tensor
// infos, alignment and the data layout; every tensor's data of a file that
// opens is read through (its slice must lie in the mapping).
//
//===----------------------------------------------------------------------===//
#include "FuzzInput.h"

#include "vindex/Formats/GGUF.h"

using namespace vindex;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size) {
  std::string Path = fuzz::writeScratch("in.gguf", fuzz::asText(Data, Size));
  llvm::Expected<std::unique_ptr<GGUFFile>> G = GGUFFile::open(Path);
  if (!G) {
    llvm::consumeError(G.takeError());
    return 0;
  }
  volatile uint8_t Sink = 0;
  for (const GGUFTensorInfo &T : (*G)->tensors()) {
    llvm::ArrayRef<uint8_t> D = (*G)->data(T);
    if (!D.empty())
      Sink = Sink ^ D.front() ^ D.back();
  }
  for (const GGUFKV &KV : (*G)->kvs())
    (void)KV.Value.asFloat();
  return 0;
}
