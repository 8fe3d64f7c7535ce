//===- SafetensorsFuzzer.cpp - safetensors header and index.json ----------===//
//
// First byte even: the rest is a whole .safetensors file, parsed by the
// header reader (length prefix, JSON, dtypes, shapes, offsets, layout).
// Odd: the rest is a model.safetensors.index.json, opened as a checkpoint
// beside a config.json and a shard of the tiny-llama fixture (the shard
// names it maps must stay in the directory and cover the shard's tensors).
//
//===----------------------------------------------------------------------===//
#include "FuzzInput.h"

#include "vindex/Formats/Checkpoint.h"
#include "vindex/Formats/Safetensors.h"

#include "llvm/Support/FileSystem.h"

using namespace vindex;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size) {
  if (Size < 1)
    return 0;
  llvm::ArrayRef<uint8_t> Rest(Data + 1, Size - 1);
  if (Data[0] % 2 == 0) {
    std::vector<SafetensorsEntry> Entries;
    Metadata Meta;
    if (llvm::Error E =
            parseSafetensorsHeader("fuzz.safetensors", Rest, Entries, Meta))
      llvm::consumeError(std::move(E));
    return 0;
  }
  static const bool Ready = [] {
    std::string Fixture = VINDEX_FUZZ_FIXTURE_DIR "/models/tiny-llama";
    std::string Dir = fuzz::scratchDir();
    llvm::sys::fs::copy_file(Fixture + "/config.json", Dir + "/config.json");
    llvm::sys::fs::create_link(Fixture + "/model.safetensors",
                               Dir + "/model.safetensors");
    return true;
  }();
  (void)Ready;
  std::string Index = fuzz::writeScratch("model.safetensors.index.json",
                                         fuzz::asText(Rest.data(), Rest.size()));
  if (auto C = Checkpoint::open(Index); !C)
    llvm::consumeError(C.takeError());
  return 0;
}
