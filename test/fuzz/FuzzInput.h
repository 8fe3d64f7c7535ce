//===- FuzzInput.h - Helpers shared by the libFuzzer targets ----*- C++ -*-===//
//
// The readers under test open paths (they map files), so a target writes
// its input to a scratch file of its own process and opens that. Targets
// that fuzz several readers take the first byte as the choice of reader
// (utils/fuzz-seeds.py writes the seeds with that byte in front).
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_TEST_FUZZ_FUZZINPUT_H
#define VINDEX_TEST_FUZZ_FUZZINPUT_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <cstdlib>
#include <string>

namespace vindex::fuzz {

/// A directory of this process's own (under $TMPDIR), made once.
inline const std::string &scratchDir() {
  static const std::string Dir = [] {
    llvm::SmallString<128> P;
    llvm::sys::path::system_temp_directory(/*ErasedOnReboot=*/true, P);
    llvm::sys::path::append(
        P, "vindex-fuzz-" + std::to_string(llvm::sys::Process::getProcessId()));
    llvm::sys::fs::create_directories(P);
    return std::string(P);
  }();
  return Dir;
}

/// Writes Bytes to scratchDir()/Name (replacing it) and returns its path.
inline std::string writeScratch(llvm::StringRef Name, llvm::StringRef Bytes) {
  std::string Path = scratchDir() + "/" + Name.str();
  std::error_code EC;
  llvm::raw_fd_ostream OS(Path, EC);
  if (EC)
    std::abort(); // the harness, not the input: stop loudly
  OS << Bytes;
  return Path;
}

inline llvm::StringRef asText(const uint8_t *Data, size_t Size) {
  return llvm::StringRef(reinterpret_cast<const char *>(Data), Size);
}

} // namespace vindex::fuzz

#endif // VINDEX_TEST_FUZZ_FUZZINPUT_H
