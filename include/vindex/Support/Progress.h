//===- Progress.h - Progress on long work, on a terminal only ---*- C++ -*-===//
#ifndef VINDEX_SUPPORT_PROGRESS_H
#define VINDEX_SUPPORT_PROGRESS_H

#include "llvm/ADT/StringRef.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>

namespace vindex {

/// A one-line byte counter on stderr ("decompose  1.2/7.8 GB  15%"), redrawn
/// at most every 100 ms, shown only when stderr is a terminal: in make, CI
/// and tests the tools stay quiet. Thread-safe.
class Progress {
public:
  Progress(llvm::StringRef Label, uint64_t TotalBytes);
  /// Counts items of Unit ("facts", "layers") rather than bytes.
  Progress(llvm::StringRef Label, uint64_t Total, llvm::StringRef Unit);
  ~Progress();
  void advance(uint64_t Bytes);
  void finish();

private:
  void draw(bool Force);
  std::string Label;
  std::string Unit; ///< Empty: bytes.
  uint64_t Total;
  std::atomic<uint64_t> Done{0};
  bool Enabled;
  std::mutex DrawMutex;
  std::chrono::steady_clock::time_point LastDraw;
};

} // namespace vindex

#endif // VINDEX_SUPPORT_PROGRESS_H
