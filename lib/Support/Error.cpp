//===- Error.cpp ----------------------------------------------------------===//
#include "vindex/Support/Error.h"

#include "llvm/Support/WithColor.h"

using namespace llvm;

namespace vindex {

Error inFile(StringRef File, Error E) {
  if (!E)
    return E;
  std::string Msg = toString(std::move(E));
  if (StringRef(Msg).starts_with(File))
    return createStringError(inconvertibleErrorCode(), Msg);
  return createStringError(inconvertibleErrorCode(), File + ": " + Msg);
}

void printError(StringRef Tool, Error E) {
  handleAllErrors(std::move(E), [&](const ErrorInfoBase &EI) {
    WithColor::error(errs(), Tool) << EI.message() << "\n";
  });
}

} // namespace vindex
