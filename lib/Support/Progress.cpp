//===- Progress.cpp -------------------------------------------------------===//
#include "vindex/Support/Progress.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;

namespace vindex {

Progress::Progress(StringRef Label, uint64_t TotalBytes)
    : Label(Label.str()), Total(TotalBytes),
      Enabled(sys::Process::StandardErrIsDisplayed()) {}

Progress::Progress(StringRef Label, uint64_t Total, StringRef Unit)
    : Progress(Label, Total) {
  this->Unit = Unit.str();
}

Progress::~Progress() { finish(); }

void Progress::advance(uint64_t Bytes) {
  Done += Bytes;
  draw(/*Force=*/false);
}

void Progress::finish() {
  if (!Enabled)
    return;
  draw(/*Force=*/true);
  errs() << "\n";
  Enabled = false;
}

void Progress::draw(bool Force) {
  if (!Enabled)
    return;
  std::unique_lock<std::mutex> Lock(DrawMutex, std::try_to_lock);
  if (!Lock.owns_lock())
    return;
  auto Now = std::chrono::steady_clock::now();
  if (!Force && Now - LastDraw < std::chrono::milliseconds(100))
    return;
  LastDraw = Now;
  uint64_t D = Done.load();
  double Pct = Total ? 100.0 * D / Total : 100.0;
  errs() << "\r" << Label << "  ";
  if (Unit.empty())
    errs() << format("%.2f/%.2f GB  %3.0f%%", D / 1e9, Total / 1e9, Pct);
  else
    errs() << D << "/" << Total << " " << Unit << format("  %3.0f%%", Pct);
  errs().flush();
}

} // namespace vindex
