//===- larql-opt.cpp - LQL driver and query shell -------------------------===//
//
// The LQL front end, the larql and vindex MLIR dialects and their passes
// arrive with their own issue; until then the tool teaches its command line
// and refuses to pretend.
//
//===----------------------------------------------------------------------===//
#include "vindex/Support/Error.h"
#include "vindex/Support/ToolMain.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"

using namespace llvm;
using namespace vindex;

static cl::list<std::string> Inputs(cl::Positional,
                                    cl::desc("[IN.vindex] [SCRIPT.lql|IR.mlir ...]"));
static cl::list<std::string> Statements("e", cl::desc("Run one LQL statement"),
                                        cl::value_desc("STMT"));
static cl::opt<std::string> Output("o", cl::desc("Write the patched V-index"),
                                   cl::value_desc("OUT.vindex"));
static cl::opt<std::string> ResultFormat("format",
                                         cl::desc("Results as table, json or "
                                                  "csv"),
                                         cl::init("table"));

static const char *Overview = R"(larql-opt: run LQL against a V-index

Parses LQL scripts into the larql MLIR dialect, runs passes that lower edits
to the vindex dialect, and applies them; queries print tables, JSON lines or
CSV.

Usage:
  larql-opt [IN.vindex] [SCRIPT.lql|IR.mlir ...] [-e 'STMT']... [-o OUT.vindex]
            [--format=table|json|csv] [--emit=mlir] [--pass-pipeline=...]

Examples:
  larql-opt model.vindex -e "DESCRIBE 'France'"
  larql-opt model.vindex edits.lql -o patched.vindex
  larql-opt edits.lql --emit=mlir        # lint a patch script without a model

Status: the LQL front end is not implemented yet in this build.
)";

int main(int argc, char **argv) {
  InitLLVM X(argc, argv);
  parseToolCommandLine(argc, argv, Overview);
  return exitWith("larql-opt", makeError("LQL is not implemented yet in this "
                                         "build (see --help)"));
}
