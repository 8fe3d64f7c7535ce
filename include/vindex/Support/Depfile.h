//===- Depfile.h - make-style dependency files ------------------*- C++ -*-===//
#ifndef VINDEX_SUPPORT_DEPFILE_H
#define VINDEX_SUPPORT_DEPFILE_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <string>

namespace vindex {

/// Writes "Target: Dep1 Dep2 ..." (make syntax, spaces and '$' escaped) to
/// DepfilePath atomically, so that `make` re-runs a tool when an input changes.
llvm::Error writeDepfile(llvm::StringRef DepfilePath, llvm::StringRef Target,
                         llvm::ArrayRef<std::string> Deps);

} // namespace vindex

#endif // VINDEX_SUPPORT_DEPFILE_H
