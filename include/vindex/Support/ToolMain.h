//===- ToolMain.h - What every Vindex tool main shares ----------*- C++ -*-===//
//
// Exit codes are the contract of DESIGN section 9: 0 success, 1 user error
// (bad input), 2 usage error (bad command line).
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_SUPPORT_TOOLMAIN_H
#define VINDEX_SUPPORT_TOOLMAIN_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>

namespace vindex {

enum ExitCode : int { ExitSuccess = 0, ExitUserError = 1, ExitUsageError = 2 };

/// The version string printed by --version and recorded in provenance.
llvm::StringRef toolVersion();

/// Parses the command line with llvm::cl; on a usage error prints it and
/// exits with ExitUsageError. Hides LLVM's own options from --help.
void parseToolCommandLine(int Argc, const char *const *Argv,
                          llvm::StringRef Overview);

/// Reports E as "<tool>: error: ..." and returns ExitUserError (or
/// ExitSuccess when E is success).
int exitWith(llvm::StringRef Tool, llvm::Error E);

} // namespace vindex

#endif // VINDEX_SUPPORT_TOOLMAIN_H
