//===- Error.h - Error helpers shared by every library ----------*- C++ -*-===//
//
// Errors travel as llvm::Error. Messages follow the diagnostic convention of
// the tools: "<file>: <what> : <problem>", so that a user can find the
// offending file (and, for binary formats, the byte offset) without a
// debugger.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_SUPPORT_ERROR_H
#define VINDEX_SUPPORT_ERROR_H

#include "llvm/Support/Error.h"
#include "llvm/Support/FormatVariadic.h"

namespace vindex {

/// An error whose message is formatted with llvm::formatv.
template <typename... Ts> llvm::Error makeError(const char *Fmt, Ts &&...Vals) {
  return llvm::createStringError(
      llvm::inconvertibleErrorCode(),
      llvm::formatv(Fmt, std::forward<Ts>(Vals)...).str());
}

/// An error about a file: "<File>: <message>".
template <typename... Ts>
llvm::Error fileError(llvm::StringRef File, const char *Fmt, Ts &&...Vals) {
  return llvm::createStringError(
      llvm::inconvertibleErrorCode(),
      (File + ": " + llvm::formatv(Fmt, std::forward<Ts>(Vals)...).str())
          .str());
}

/// Prefixes an error's message with the file it came from (unless it is
/// already there).
llvm::Error inFile(llvm::StringRef File, llvm::Error E);

/// Prints "<Tool>: error: <message>" on stderr, coloured on a terminal.
void printError(llvm::StringRef Tool, llvm::Error E);

} // namespace vindex

#endif // VINDEX_SUPPORT_ERROR_H
