//===- ToolMain.h - What every Vindex tool main shares ----------*- C++ -*-===//
//
// Exit codes are the contract of DESIGN section 9: 0 success, 1 user error
// (bad input), 2 usage error (bad command line).
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_SUPPORT_TOOLMAIN_H
#define VINDEX_SUPPORT_TOOLMAIN_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Error.h"

#include <string>

namespace vindex {

enum ExitCode : int { ExitSuccess = 0, ExitUserError = 1, ExitUsageError = 2 };

/// The version string printed by --version and recorded in provenance.
llvm::StringRef toolVersion();

/// The category every tool option belongs to: --help shows only these
/// (libLLVM registers hundreds of its own options in the general category).
llvm::cl::OptionCategory &toolOptions();

/// --jobs (-j) and --depfile as the file-to-file tools (vindex-decompose,
/// vindex-compile, larql-probe) declare them. Exactly one static instance a
/// tool: the options register themselves globally, and a second instance
/// aborts at startup ("registered more than once").
struct FileToolOptions {
  llvm::cl::opt<unsigned> Jobs{
      "jobs",
      llvm::cl::desc("Worker threads (default: all cores; the output does "
                     "not depend on it)"),
      llvm::cl::init(0), llvm::cl::cat(toolOptions())};
  llvm::cl::alias JobsShort{"j", llvm::cl::aliasopt(Jobs),
                            llvm::cl::desc("Alias for --jobs"),
                            llvm::cl::cat(toolOptions())};
  llvm::cl::opt<std::string> Depfile{
      "depfile", llvm::cl::desc("Write a make dependency file"),
      llvm::cl::value_desc("FILE"), llvm::cl::cat(toolOptions())};

  /// --jobs, or every core where it is 0.
  unsigned threads() const;
};

/// Parses the command line with llvm::cl; on a usage error prints it and
/// exits with ExitUsageError. --help shows the tool's options and AlsoShow
/// (options registered by a library, e.g. MLIR's printing flags).
void parseToolCommandLine(int Argc, const char *const *Argv,
                          llvm::StringRef Overview,
                          llvm::ArrayRef<llvm::StringRef> AlsoShow = {});

/// Reports E as "<tool>: error: ..." and returns ExitUserError (or
/// ExitSuccess when E is success).
int exitWith(llvm::StringRef Tool, llvm::Error E);

} // namespace vindex

#endif // VINDEX_SUPPORT_TOOLMAIN_H
