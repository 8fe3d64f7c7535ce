//===- lql-parse.cpp - LQL parse throughput, printed as JSON --------------===//
//
// vindex-bench-lql-parse [--reps N]
//
// Parses a script of 100 statements (every statement kind, with WHERE,
// ORDER BY, INSERT tuples...) N times and reports statements per second and
// the time for the 100 (the Rust LARQL reports about 78 us for 100).
//
//===----------------------------------------------------------------------===//
#include "vindex/LQL/Diagnostics.h"
#include "vindex/LQL/Parser.h"

#include "mlir/IR/MLIRContext.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>

using namespace llvm;

static cl::opt<unsigned> Reps("reps", cl::init(2000),
                              cl::desc("Times the script is parsed"));

static const char *Statements[] = {
    "SELECT * FROM features WHERE layer = 3 AND feature = 17",
    "SELECT layer, feature, down_norm FROM features WHERE layer >= 2 AND "
    "layer <= 3 AND down_norm > 1.5 ORDER BY down_norm DESC LIMIT 5",
    "SELECT entity, target FROM edges WHERE relation IN ('capital', "
    "'language') AND (layer > 2 OR score >= 0.5) LIMIT 20",
    "SELECT * FROM features NEAREST TO 'France' AT LAYER 3 LIMIT 10",
    "DESCRIBE 'France' AT LAYER 4",
    "DESCRIBE 'Japan' KNOWLEDGE",
    "SHOW LAYERS",
    "SHOW FEATURES 10",
    "INFER 'The capital of France is' TOP 5 GENERATE 3",
    "WALK 'The capital of France is' TOP 5 WITH K 64",
    "INSERT INTO edges VALUES (entity='Atlantis', relation='capital', "
    "target='Poseidon'), (entity='Elbonia', relation='currency', "
    "target='grubnick') AT LAYER 3",
    "DELETE FROM edges WHERE entity = 'Atlantis' AND relation = 'capital'",
    "UPDATE edges SET target = 'Neptune' WHERE entity LIKE 'Atl%'",
    "CREATE RELATION mayor AS 'The mayor of {entity} is'",
    "COMPILE CURRENT INTO MODEL 'out.gguf' FORMAT gguf",
    "BEGIN PATCH 'p1'",
    "SAVE PATCH 'p1.vpatch'",
    "TRACE 'The capital of France is'",
    "SHOW MODEL",
    "SELECT layer, feature FROM features WHERE gate_norm < 0.25 LIMIT 3",
};

int main(int argc, char **argv) {
  InitLLVM X(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "LQL parse benchmark\n");
  std::string Script;
  for (int I = 0; I < 100; ++I)
    Script += std::string(Statements[I % std::size(Statements)]) + ";\n";
  size_t Parsed = 0;
  auto Start = std::chrono::steady_clock::now();
  mlir::MLIRContext Ctx(mlir::MLIRContext::Threading::DISABLED);
  for (unsigned R = 0; R < Reps; ++R) {
    SourceMgr SM;
    vindex::lql::ScriptDiagnosticPrinter Printer(Ctx, SM, "bench", errs());
    SM.AddNewSourceBuffer(MemoryBuffer::getMemBuffer(Script, "bench.lql"),
                          SMLoc());
    std::optional<std::vector<vindex::lql::Statement>> S =
        vindex::lql::parseScript(SM, 1, Ctx);
    if (!S)
      return 1;
    Parsed += S->size();
  }
  double Seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - Start)
          .count();
  json::Object Out{{"benchmark", "lql-parse"},
                   {"statements", int64_t(Parsed)},
                   {"statements_per_s", Parsed / Seconds},
                   {"us_per_100_statements", Seconds / Reps * 1e6}};
  outs() << json::Value(std::move(Out)) << "\n";
  return 0;
}
