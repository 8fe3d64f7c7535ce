//===- larql-opt.cpp - LQL driver and query shell -------------------------===//
//
// larql-opt [IN.vindex] [SCRIPT.lql ...] [-e 'STMT']... [--format=...]
//
// Without a V-index the scripts are only parsed and checked (a linter for
// CI); with one they run against it, the model being loaded once. Today the
// language is INFER and WALK; the rest of LQL, the MLIR dialects and the
// passes arrive with their own issue.
//
//===----------------------------------------------------------------------===//
#include "vindex/Formats/Tokenizer.h"
#include "vindex/LQL/Executor.h"
#include "vindex/LQL/Parser.h"
#include "vindex/Model/Engine.h"
#include "vindex/Store/Vindex.h"
#include "vindex/Support/Error.h"
#include "vindex/Support/ToolMain.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

using namespace llvm;
using namespace vindex;

static cl::list<std::string>
    Inputs(cl::Positional, cl::desc("[IN.vindex] [SCRIPT.lql ...]"));
static cl::list<std::string> Statements("e",
                                        cl::desc("Run one LQL statement "
                                                 "(repeatable)"),
                                        cl::value_desc("STMT"));
static cl::opt<lql::ResultFormat> Format(
    "format", cl::desc("How results are printed"),
    cl::values(clEnumValN(lql::ResultFormat::Table, "table",
                          "aligned tables (default)"),
               clEnumValN(lql::ResultFormat::JSON, "json",
                          "one JSON object per statement result per line"),
               clEnumValN(lql::ResultFormat::CSV, "csv", "CSV rows")),
    cl::init(lql::ResultFormat::Table));
static cl::opt<unsigned> Jobs("jobs",
                              cl::desc("Threads of the forward pass (results "
                                       "do not depend on it)"),
                              cl::init(1));

static const char *Overview = R"(larql-opt: run LQL against a V-index

Statements come from scripts (.lql) and -e, in that order, separated by ';'.
Keywords are case-insensitive; strings take '...' or "..."; -- and /* */ are
comments. Without a V-index the statements are only parsed and checked.

Statements available in this build:
  INFER 'prompt' [TOP n] [GENERATE m]   next-token distribution; greedy
                                        continuation of m tokens (whole words)
  WALK 'prompt' [TOP n] [WITH K k]      the same through the walk FFN: per
                                        layer only the k features with the
                                        highest gate scores fire (default F/4)

Examples:
  larql-opt tiny.vindex -e "INFER 'The capital of France is' TOP 5"
  larql-opt tiny.vindex -e "INFER 'The capital of Peru is' TOP 3 GENERATE 4" --format=json
  larql-opt tiny.vindex -e "WALK 'The capital of France is' TOP 5 WITH K 64"
  larql-opt checks.lql                  # lint a script without a model

Exit status: 0 success, 1 bad input or script, 2 bad command line.
)";

int main(int argc, char **argv) {
  InitLLVM X(argc, argv);
  parseToolCommandLine(argc, argv, Overview);
  const char *Tool = "larql-opt";

  std::string VindexDir;
  std::vector<std::string> Scripts;
  for (const std::string &In : Inputs) {
    bool First = VindexDir.empty() && Scripts.empty();
    if (First && (sys::fs::is_directory(In) || StringRef(In).ends_with(".vindex")))
      VindexDir = In;
    else
      Scripts.push_back(In);
  }
  if (!VindexDir.empty() && !sys::fs::is_directory(VindexDir))
    return exitWith(Tool, fileError(VindexDir, "no such V-index directory"));
  SourceMgr SM;
  // Diagnostics read "larql-opt: file:line:col: error: ..." (DESIGN 9).
  SM.setDiagHandler(
      [](const SMDiagnostic &D, void *Tool) {
        D.print(static_cast<const char *>(Tool), errs());
      },
      const_cast<char *>(Tool));
  for (const std::string &S : Scripts) {
    ErrorOr<std::unique_ptr<MemoryBuffer>> Buf = MemoryBuffer::getFile(S);
    if (!Buf)
      return exitWith(Tool, fileError(S, "cannot read: {0}",
                                      Buf.getError().message()));
    SM.AddNewSourceBuffer(std::move(*Buf), SMLoc());
  }
  for (size_t I = 0; I < Statements.size(); ++I)
    SM.AddNewSourceBuffer(
        MemoryBuffer::getMemBufferCopy(Statements[I],
                                       "<-e #" + std::to_string(I + 1) + ">"),
        SMLoc());
  if (SM.getNumBuffers() == 0) {
    errs() << Tool << ": error: no statements (give a script or -e)\n";
    return ExitUsageError;
  }

  // Parse everything first: a script with errors runs nothing.
  std::vector<lql::Statement> All;
  bool Failed = false;
  for (unsigned B = 1; B <= SM.getNumBuffers(); ++B) {
    std::optional<std::vector<lql::Statement>> Parsed =
        lql::parseScript(SM, B);
    if (!Parsed)
      Failed = true;
    else
      All.insert(All.end(), Parsed->begin(), Parsed->end());
  }
  if (Failed)
    return ExitUserError;
  if (VindexDir.empty())
    return ExitSuccess;

  Expected<std::unique_ptr<Vindex>> V = Vindex::open(VindexDir);
  if (!V)
    return exitWith(Tool, V.takeError());
  Expected<std::unique_ptr<Model>> M = Model::load(**V);
  if (!M)
    return exitWith(Tool, M.takeError());
  Expected<Tokenizer> Tok = Tokenizer::fromFile((*V)->path("tokenizer.json"));
  if (!Tok)
    return exitWith(Tool, Tok.takeError());
  if (Tok->vocabSize() > (*M)->config().VocabSize)
    return exitWith(Tool, fileError((*V)->path("tokenizer.json"),
                                    "{0} tokens but the model's vocabulary "
                                    "has {1}",
                                    Tok->vocabSize(),
                                    (*M)->config().VocabSize));
  lql::Executor Exec(**M, *Tok, outs(), Format, Jobs);
  for (const lql::Statement &S : All)
    if (Error E = Exec.run(S)) {
      SM.PrintMessage(S.Loc, SourceMgr::DK_Error, toString(std::move(E)));
      return ExitUserError;
    }
  return ExitSuccess;
}
