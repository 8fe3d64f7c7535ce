//===- ConfigFuzzer.cpp - config.json -------------------------------------===//
//
// Any text as a Hugging Face config.json: parsed (architecture, sizes, RoPE
// scaling, token ids), its size invariants checked, and what parses written
// back as the config a compile emits.
//
//===----------------------------------------------------------------------===//
#include "FuzzInput.h"

#include "vindex/Formats/ModelConfig.h"

using namespace vindex;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size) {
  llvm::StringRef Text = fuzz::asText(Data, Size);
  llvm::Expected<ModelConfig> C = parseHFConfig(Text, "config.json");
  if (!C) {
    llvm::consumeError(C.takeError());
    return 0;
  }
  if (llvm::Error E = checkModelConfig(*C, "config.json")) {
    llvm::consumeError(std::move(E));
    return 0;
  }
  if (auto Out = writeHFConfig(*C, Text, "config.json"); !Out)
    llvm::consumeError(Out.takeError());
  return 0;
}
