//===- Depfile.cpp --------------------------------------------------------===//
#include "vindex/Support/Depfile.h"

#include "vindex/Support/AtomicOutput.h"

#include "llvm/Support/raw_ostream.h"

using namespace llvm;

namespace vindex {

static void writeEscaped(raw_ostream &OS, StringRef Path) {
  for (char C : Path) {
    if (C == ' ' || C == '#' || C == '\\')
      OS << '\\';
    else if (C == '$')
      OS << '$';
    OS << C;
  }
}

Error writeDepfile(StringRef DepfilePath, StringRef Target,
                   ArrayRef<std::string> Deps) {
  std::string Text;
  raw_string_ostream OS(Text);
  writeEscaped(OS, Target);
  OS << ':';
  for (const std::string &Dep : Deps) {
    OS << " \\\n  ";
    writeEscaped(OS, Dep);
  }
  OS << '\n';
  return writeFileAtomically(DepfilePath, Text);
}

} // namespace vindex
