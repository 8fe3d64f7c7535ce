//===- larql-opt.cpp - LQL driver and query shell -------------------------===//
//
// larql-opt [IN.vindex] [SCRIPT.lql ...] [-e 'STMT']... [--format=...]
//
// larql-opt SCRIPT.lql --emit=mlir       print the lowered `larql` IR
// larql-opt X.mlir [-verify-diagnostics] [-split-input-file]
// larql-opt IN.vindex X.lql -o OUT.vindex --depfile OUT.vindex.d
//
// A script is parsed (lib/LQL), lowered to the `larql` dialect, verified
// and rewritten by a pass pipeline (--pass-pipeline; against a V-index
// without it, kDefaultPipeline); the module that comes out is the
// program. Without a V-index that is all (a linter for CI); with one its
// ops run against it (lib/Exec), the engine and tokenizer being loaded
// once, by the first op that needs them (INFER, WALK, NEAREST TO). A .mlir
// input (or `-`, standard input) is parsed, verified and printed back, as
// mlir-opt does.
//
//===----------------------------------------------------------------------===//
#include "vindex/Exec/Executor.h"
#include "vindex/LQL/Parser.h"
#include "vindex/LQL/ToIR.h"
#include "vindex/Model/Kernels.h"
#include "vindex/Model/VindexSession.h"
#include "vindex/Passes/Passes.h"
#include "vindex/RegisterAll.h"
#include "vindex/Store/Copy.h"
#include "vindex/Store/Patch.h"
#include "vindex/Store/TensorView.h"
#include "vindex/Store/Vindex.h"
#include "vindex/Support/Depfile.h"
#include "vindex/Support/Error.h"
#include "vindex/Support/ToolMain.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Support/Timing.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/LineEditor/LineEditor.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/SHA256.h"
#include "llvm/Support/SourceMgr.h"

#include <functional>

using namespace llvm;
using namespace vindex;

static cl::list<std::string> Inputs(cl::Positional,
                                    cl::desc("[IN.vindex] [SCRIPT.lql ...]"),
                                    cl::cat(toolOptions()));
static cl::list<std::string> Statements("e",
                                        cl::desc("Run one LQL statement "
                                                 "(repeatable)"),
                                        cl::value_desc("STMT"),
                                        cl::cat(toolOptions()));
static cl::opt<lql::ResultFormat> Format(
    "format", cl::desc("How results are printed"),
    cl::values(clEnumValN(lql::ResultFormat::Table, "table",
                          "aligned tables (default)"),
               clEnumValN(lql::ResultFormat::JSON, "json",
                          "one JSON object per statement result per line"),
               clEnumValN(lql::ResultFormat::CSV, "csv", "CSV rows")),
    cl::init(lql::ResultFormat::Table), cl::cat(toolOptions()));
static cl::opt<std::string>
    OutputPath("o",
               cl::desc("Write the V-index as the script leaves it to this "
                        "directory (atomically, only if every statement "
                        "succeeded)"),
               cl::value_desc("OUT.vindex"), cl::cat(toolOptions()));
static cl::opt<unsigned> Jobs("jobs",
                              cl::desc("Threads of the forward pass (results "
                                       "do not depend on it)"),
                              cl::init(1), cl::cat(toolOptions()));
static cl::alias JobsShort("j", cl::aliasopt(Jobs),
                           cl::desc("Alias for --jobs"),
                           cl::cat(toolOptions()));
static cl::opt<std::string> Depfile(
    "depfile",
    cl::desc("With -o: write a make dependency file naming the input "
             "V-index's files, the scripts and what they read (a corpus, "
             "a saved patch)"),
    cl::value_desc("FILE"), cl::cat(toolOptions()));

enum class Emit { None, MLIR };
static cl::opt<Emit>
    EmitKind("emit", cl::desc("What to print for LQL scripts"),
             cl::values(clEnumValN(Emit::None, "none", "nothing (default)"),
                        clEnumValN(Emit::MLIR, "mlir", "the lowered larql IR")),
             cl::init(Emit::None), cl::cat(toolOptions()));
static cl::opt<bool> VerifyDiagnostics(
    "verify-diagnostics",
    cl::desc("Check the diagnostics of a .mlir or .lql input against its "
             "expected-error/note comments, as mlir-opt does"),
    cl::init(false), cl::cat(toolOptions()));
static cl::opt<bool> Shell(
    "shell",
    cl::desc("Read statements interactively (the default when no script or "
             "-e is given and standard input is a terminal)"),
    cl::init(false), cl::cat(toolOptions()));
static cl::opt<bool> Verbose(
    "verbose",
    cl::desc("Explain the edits: the key statistics, each fact's layer, "
             "and the balancer's bounds and decisions (on standard error)"),
    cl::init(false), cl::cat(toolOptions()));
static cl::opt<bool> SplitInputFile(
    "split-input-file",
    cl::desc("Process each '// -----' chunk of a .mlir input on its own"),
    cl::init(false), cl::cat(toolOptions()));

static const char *Overview = R"(larql-opt: run LQL against a V-index

Statements come from scripts (.lql) and -e, in that order, separated by ';'.
Keywords are case-insensitive; strings take '...' or "..."; -- and /* */ are
comments. Without a V-index the statements are only parsed and checked.

Every statement of LQL parses, is checked and lowers to the larql dialect
(docs/lql.md); a pass pipeline rewrites that IR, and what comes out is what
runs (--emit=mlir prints it). Against a V-index the pipeline is by default
builtin.module(larql-resolve-relations,larql-lower-to-vindex,
larql-plan-edits); --pass-pipeline replaces it (--pass-pipeline=
'builtin.module()' runs none). Without a V-index only --pass-pipeline runs.
The engine and the tokenizer are loaded only by the passes and statements
that need them. Passes:
  larql-resolve-relations               give each fact edit its relation's
                                        prompts (CREATE RELATION)
  larql-lower-to-vindex                 DELETE of a feature ->
                                        vindex.remove_feature
  larql-plan-edits{corpus=F memit-...}  INSERT/DELETE/UPDATE of facts ->
                                        vindex ops: keys captured, slots or
                                        MEMIT updates planned and balanced
                                        (--verbose explains)
  larql-strip-queries                   drop the read-only queries
  larql-resolve-tokens                  annotate INFER/WALK with the ids of
                                        their prompt (needs a V-index)
Statements that run against a V-index in this build:
  SELECT cols|* FROM features [WHERE e] [ORDER BY col [DESC], ...] [LIMIT n]
                                        one row per (layer, feature): layer,
                                        feature, gate_norm, up_norm,
                                        down_norm, top_output, top_input
  SELECT ... FROM features NEAREST TO 'entity' [AT LAYER n] ...
                                        KNN of the entity's residual at layer
                                        n against its gates (column score)
  SELECT ... FROM edges | entities, DESCRIBE 'entity',
  SHOW RELATIONS | ENTITIES | FEATURES n
                                        the labels larql-probe wrote, and an
                                        entity's edges from the model
  SHOW LAYERS | SHOW MODEL              per-layer summary; model facts
  SHOW PATCHES                          the patches on the V-index: its own,
                                        then this run's edits
  INFER 'prompt' [TOP n] [GENERATE m]   next-token distribution; greedy
                                        continuation of m tokens (whole words)
  WALK 'prompt' [TOP n] [WITH K k]      the same through the walk FFN: per
                                        layer only the k features scoring
                                        highest (|act(gate)|*|up|*|down|)
                                        fire (default F/4)
  CREATE RELATION r AS 'prompt with {entity}'
                                        a relation's prompt (again for each
                                        paraphrase; the first is canonical)
  INSERT INTO edges VALUES (entity='e', relation='r', target='t') [, ...]
                 [AT LAYER n] [MODE slot|memit]
  DELETE FROM edges WHERE entity = 'e' AND relation = 'r'
  UPDATE edges SET target = 't' WHERE entity = 'e' AND relation = 'r'
                                        write facts into the weights
                                        (patches; docs/lql.md, "Methods")
  DELETE FROM edges WHERE layer = L AND feature = F
                                        zero the feature
  COMPILE CURRENT INTO VINDEX 'path'    write the V-index as it is now
  COMPILE CURRENT INTO MODEL 'path' FORMAT gguf|safetensors
                 [TYPE auto|f32|f16|bf16|q8_0]
                                        compile it, as vindex-compile does
  BEGIN PATCH 'name'; ...; SAVE PATCH ['p.mlir'|'p.mlirbc']
                                        also write the block's edits as
                                        vindex IR (text or bytecode)
  APPLY PATCH 'p.mlir'                  run a saved patch's edits

Examples:
  larql-opt tiny.vindex -e "INFER 'The capital of France is' TOP 5"
  larql-opt tiny.vindex -e "INFER 'The capital of Peru is' TOP 3 GENERATE 4" --format=json
  larql-opt tiny.vindex -e "WALK 'The capital of France is' TOP 5 WITH K 64"
  larql-opt tiny.vindex -e "SELECT * FROM features WHERE layer = 3 ORDER BY down_norm DESC LIMIT 5"
  larql-opt tiny.vindex queries.lql -o out.vindex
                                        # run a script, write the V-index it
                                        # leaves (its edits as patches/)
  larql-opt tiny.vindex -e "DELETE FROM edges WHERE layer = 1 AND feature = 2" -o out.vindex
  larql-opt tiny.vindex edits.lql -o out.vindex --depfile out.vindex.d
                                        # the make rule: out.vindex depends on
                                        # tiny.vindex, edits.lql and what it
                                        # read (a corpus, a patch file)
  larql-opt tiny.vindex q.lql --emit=mlir --pass-pipeline='builtin.module(larql-lower-to-vindex,larql-resolve-tokens)'
                                        # print (and run) the IR with the
                                        # prompts' token ids
  larql-opt tiny.vindex mixed.lql -o out.vindex --pass-pipeline='builtin.module(larql-strip-queries,larql-resolve-relations,larql-lower-to-vindex,larql-plan-edits)'

  larql-opt checks.lql                  # lint a script without a model
  larql-opt edits.lql --emit=mlir       # print the lowered larql IR
  larql-opt edits.mlir                  # parse, verify and print IR back
  larql-opt invalid.mlir -split-input-file -verify-diagnostics
  larql-opt edits.lql --emit=mlir --pass-pipeline='builtin.module(larql-lower-to-vindex)'

Inputs ending in .mlir, and `-` (standard input), are larql IR; the rest
are LQL scripts. IR after a V-index (larql-opt IN.vindex X.mlir) runs
against it as a script's IR does.

Exit status: 0 success, 1 bad input or script, 2 bad command line.
)";

static const char *ShellHelp = R"(Statements end with ';' and may span lines.
  .help        this text
  .quit        leave (so does end of input)
Without a V-index statements are only checked (add --emit=mlir to see the
IR). The language: docs/lql.md; e.g.
  INFER 'The capital of France is' TOP 3 GENERATE 1;
  SELECT layer, feature, down_norm FROM features ORDER BY down_norm DESC LIMIT 5;
)";

/// The interactive shell: LLVM's LineEditor (line editing and history in
/// ~/.larql_history on a terminal), statements gathered up to their ';',
/// each one checked and run as soon as it is complete. An error is reported
/// and the shell goes on; the exit status is 1 if any statement failed.
static int runShell(
    SourceMgr &SM,
    const std::function<mlir::OwningOpRef<mlir::ModuleOp>(unsigned)> &Check,
    const std::function<bool(mlir::ModuleOp)> &Run, StringRef VindexDir) {
  SmallString<256> History;
  if (sys::path::home_directory(History))
    sys::path::append(History, ".larql_history");
  LineEditor LE("larql-opt", History);
  const char *Prompt = "larql> ", *More = "   ...> ";
  LE.setPrompt(Prompt);
  if (sys::Process::StandardInIsUserInput())
    outs() << "larql-opt " << toolVersion()
           << (VindexDir.empty() ? " (no V-index: statements are only checked)"
                                 : (" on " + VindexDir).str())
           << "; .help for help\n";
  std::string Pending;
  unsigned Count = 0;
  bool AnyError = false; // the exit status says whether all went well
  auto Submit = [&] {
    SM.AddNewSourceBuffer(
        MemoryBuffer::getMemBufferCopy(
            Pending, "<shell #" + std::to_string(++Count) + ">"),
        SMLoc());
    Pending.clear();
    mlir::OwningOpRef<mlir::ModuleOp> Module = Check(SM.getNumBuffers());
    if (!Module || (Run && !Run(*Module)))
      AnyError = true;
    outs().flush();
  };
  while (std::optional<std::string> Line = LE.readLine()) {
    StringRef L = StringRef(*Line).trim();
    if (Pending.empty() && L.starts_with(".")) {
      if (L == ".quit" || L == ".exit")
        break;
      if (L == ".help")
        outs() << ShellHelp;
      else {
        errs() << "larql-opt: unknown command '" << L << "' (try .help)\n";
        AnyError = true;
      }
      continue;
    }
    if (Pending.empty() && L.empty())
      continue;
    Pending += *Line + "\n";
    bool Complete = L.ends_with(";");
    LE.setPrompt(Complete ? Prompt : More);
    if (Complete)
      Submit();
  }
  if (!StringRef(Pending).trim().empty())
    Submit();
  return AnyError ? ExitUserError : ExitSuccess;
}

/// What an edit's patch records of where it came from: the statement's text
/// (from its op's location to its ';') and the SHA-256 of its script (none
/// for -e and the shell, whose buffer names start with '<').
static PatchOrigin originOf(SourceMgr &SM, mlir::Operation &Op) {
  PatchOrigin O;
  auto FL = Op.getLoc()->findInstanceOf<mlir::FileLineColLoc>();
  if (!FL)
    return O;
  for (unsigned B = 1; B <= SM.getNumBuffers(); ++B) {
    const MemoryBuffer *Buf = SM.getMemoryBuffer(B);
    if (Buf->getBufferIdentifier() != FL.getFilename().getValue())
      continue;
    SMLoc At = SM.FindLocForLineAndColumn(B, FL.getLine(), FL.getColumn());
    if (!At.isValid())
      return O;
    StringRef Rest(At.getPointer(), Buf->getBufferEnd() - At.getPointer());
    // A statement ends at its ';', an op of IR at the end of its line.
    bool IR = Buf->getBufferIdentifier().ends_with(".mlir");
    O.Statement =
        Rest.take_until([&](char C) { return C == (IR ? '\n' : ';'); })
            .trim()
            .str();
    // A planned fact's balancer record follows as LQL comments, one per
    // line of it.
    if (auto B = Op.getAttrOfType<mlir::StringAttr>("balance")) {
      SmallVector<StringRef> Lines;
      B.getValue().split(Lines, '\n');
      for (StringRef L : Lines)
        O.Statement += ("\n-- balance: " + L).str();
    }
    if (!Buf->getBufferIdentifier().starts_with("<"))
      O.ScriptSha256 =
          toHex(SHA256::hash(arrayRefFromStringRef(Buf->getBuffer())),
                /*LowerCase=*/true);
    return O;
  }
  return O;
}

/// What -o's V-index depends on (--depfile): the input V-index's files, the
/// scripts (not standard input) and the files the passes and statements read
/// as they ran (a corpus, a saved patch).
static std::vector<std::string> dependencies(const Vindex &V,
                                             ArrayRef<std::string> Scripts,
                                             const VindexSession &Session) {
  std::vector<std::string> Deps = V.files();
  for (const std::string &S : Scripts)
    if (S != "-")
      Deps.push_back(S);
  llvm::append_range(Deps, Session.filesRead());
  return Deps;
}

/// A .mlir input processed alone: parsed, verified, rewritten by
/// --pass-pipeline and printed back, as mlir-opt does.
static int processIR(StringRef Tool, mlir::DialectRegistry &Registry,
                     mlir::PassPipelineCLParser &PassPipeline) {
  if (Inputs.size() != 1 || !Statements.empty()) {
    errs() << Tool << ": error: a .mlir input is processed alone\n";
    return ExitUsageError;
  }
  std::string ErrorMessage;
  std::unique_ptr<MemoryBuffer> Buf =
      mlir::openInputFile(Inputs.front(), &ErrorMessage);
  if (!Buf)
    return exitWith(
        Tool, fileError(Inputs.front(), "cannot read: {0}", ErrorMessage));
  mlir::MlirOptMainConfig Config;
  Config.verifyDiagnostics(VerifyDiagnostics);
  Config.setPassPipelineSetupFn([&](mlir::PassManager &PM) {
    return PassPipeline.addToPipeline(PM, [&](const Twine &Msg) {
      return mlir::emitError(mlir::UnknownLoc::get(PM.getContext()), Msg);
    });
  });
  if (SplitInputFile)
    Config.splitInputFile().outputSplitMarker();
  return failed(mlir::MlirOptMain(outs(), std::move(Buf), Registry, Config))
             ? ExitUserError
             : ExitSuccess;
}

/// The inputs of a run against scripts: the V-index (the first input, when
/// it is a directory or ends in .vindex) and the scripts, whose text (then
/// each -e statement's) is added to SM, one buffer each, in order.
struct ScriptInputs {
  std::string VindexDir;
  std::vector<std::string> Scripts;
};

static Expected<ScriptInputs> readInputs(SourceMgr &SM) {
  ScriptInputs In;
  for (const std::string &Path : Inputs) {
    bool First = In.VindexDir.empty() && In.Scripts.empty();
    if (First &&
        (sys::fs::is_directory(Path) || StringRef(Path).ends_with(".vindex")))
      In.VindexDir = Path;
    else
      In.Scripts.push_back(Path);
  }
  if (!In.VindexDir.empty() && !sys::fs::is_directory(In.VindexDir))
    return fileError(In.VindexDir, "no such V-index directory");
  for (const std::string &S : In.Scripts) {
    ErrorOr<std::unique_ptr<MemoryBuffer>> Buf =
        S == "-" ? MemoryBuffer::getSTDIN() : MemoryBuffer::getFile(S);
    if (!Buf)
      return fileError(S, "cannot read: {0}", Buf.getError().message());
    SM.AddNewSourceBuffer(std::move(*Buf), SMLoc());
  }
  for (size_t I = 0; I < Statements.size(); ++I)
    SM.AddNewSourceBuffer(
        MemoryBuffer::getMemBufferCopy(Statements[I],
                                       "<-e #" + std::to_string(I + 1) + ">"),
        SMLoc());
  return std::move(In);
}

/// What -o, --depfile and the statements need of the inputs; false (the
/// usage error printed) when they are not there.
static bool checkUsage(StringRef Tool, const ScriptInputs &In, bool Interactive,
                       unsigned NumBuffers) {
  if (!OutputPath.empty() && (In.VindexDir.empty() || Interactive)) {
    errs() << Tool << ": error: -o writes the V-index a script leaves: it "
           << "needs an input V-index and a script or -e\n";
    return false;
  }
  if (!Depfile.empty() && (OutputPath.empty() || Interactive)) {
    errs() << Tool << ": error: --depfile names what -o OUT.vindex depends "
           << "on: give -o\n";
    return false;
  }
  if (!OutputPath.empty() && sys::fs::equivalent(In.VindexDir, OutputPath)) {
    errs() << Tool << ": error: -o " << OutputPath << " is the input "
           << "V-index; inputs are never modified (write to another path)\n";
    return false;
  }
  if (NumBuffers == 0 && !Interactive) {
    errs() << Tool << ": error: no statements (give a script or -e)\n";
    return false;
  }
  return true;
}

namespace {
/// Scripts (or IR) checked and run against a V-index. Every diagnostic,
/// the parser's, the verifiers' and the executor's, is an MLIR diagnostic
/// located in the script: printed as "larql-opt: file:line:col: error:
/// ..." with the token underlined (DESIGN 9), or checked against the
/// script's expected-error comments under -verify-diagnostics, as mlir-opt
/// does.
class ScriptDriver {
public:
  ScriptDriver(StringRef Tool, const mlir::DialectRegistry &Registry,
               SourceMgr &SM, mlir::PassPipelineCLParser &PassPipeline,
               VindexSession *Session, bool RunIR)
      : Tool(Tool), Ctx(Registry), SM(SM), PassPipeline(PassPipeline),
        Session(Session), RunIR(RunIR) {
    if (Session)
      Ctx.getOrLoadDialect<vx::VindexDialect>()->setSession(Session);
    // A verifier error names the statement's op; the op's generic form
    // (MLIR's "see current operation" note) would only repeat the script
    // line.
    Ctx.printOpOnDiagnostic(false);
    if (VerifyDiagnostics)
      Verifier.emplace(SM, &Ctx, errs());
    else
      Printer.emplace(Ctx, SM, Tool, errs());
    if (Session)
      Exec.emplace(*Session, outs(), Format, Jobs, [this](mlir::Operation &Op) {
        return originOf(this->SM, Op);
      });
  }

  /// The exit status; with -verify-diagnostics it says whether the
  /// diagnostics were exactly the expected ones.
  int finish(bool Ok) {
    if (Verifier)
      return succeeded(Verifier->verify()) ? ExitSuccess : ExitUserError;
    return Ok ? ExitSuccess : ExitUserError;
  }

  /// Parses buffers [First, last], lowers them to one larql module,
  /// verifies it and runs the pass pipeline over it: what comes out is the
  /// program (printed by --emit=mlir). Every error is reported and then
  /// nothing runs; statements that parsed cleanly are still lowered and
  /// verified when others failed. The AST ends here.
  mlir::OwningOpRef<mlir::ModuleOp> check(unsigned First) {
    mlir::OwningOpRef<mlir::ModuleOp> Module =
        RunIR ? mlir::parseSourceFile<mlir::ModuleOp>(SM,
                                                      mlir::ParserConfig(&Ctx))
              : lowerScripts(First);
    if (!Module || failed(runPipeline(*Module)))
      return nullptr;
    if (EmitKind == Emit::MLIR)
      Module->print(outs()), outs() << "\n";
    return Module;
  }

  /// Runs the ops of a checked module in order, up to the first failure: a
  /// statement's error is reported at its op (the script location), an
  /// error loading the V-index's engine or tokenizer as the tool's.
  bool run(mlir::ModuleOp Module) {
    for (mlir::Operation &Op : *Module.getBody())
      if (Error E = Exec->run(Op)) {
        bool Reported = false;
        handleAllErrors(
            std::move(E),
            [&](const lql::LoadError &L) {
              printError(Tool, createStringError(inconvertibleErrorCode(),
                                                 L.message()));
              Reported = true;
            },
            [&](const ErrorInfoBase &Info) {
              Op.emitError() << Info.message();
            });
        LoadFailed |= Reported;
        return false;
      }
    // The last statement's edits, as a patch (a shell line's too).
    if (Error E = Exec->flushEdits()) {
      printError(Tool, std::move(E));
      return false;
    }
    return true;
  }

  /// Runs the checked program and writes what -o and --depfile ask for.
  int runProgram(mlir::ModuleOp Program, const Vindex &V,
                 ArrayRef<std::string> Scripts) {
    if (!run(Program))
      return LoadFailed ? ExitUserError : finish(false);
    if (failed(Exec->finish()))
      return finish(false);
    // The V-index the script leaves: its input with the patches of the
    // view kept as patches (patches/ and their manifest records).
    if (!OutputPath.empty())
      if (Error E = copyVindex(Exec->view(), OutputPath, PatchMode::Keep))
        return exitWith(Tool, std::move(E));
    if (!Depfile.empty())
      if (Error E = writeDepfile(Depfile, OutputPath,
                                 dependencies(V, Scripts, *Session)))
        return exitWith(Tool, std::move(E));
    return finish(true);
  }

  /// The interactive shell over this driver (statements only checked
  /// without a V-index).
  int runShell(StringRef VindexDir) {
    int Status = ::runShell(
        SM, [&](unsigned First) { return check(First); },
        Exec ? std::function<bool(mlir::ModuleOp)>(
                   [&](mlir::ModuleOp M) { return run(M); })
             : std::function<bool(mlir::ModuleOp)>(),
        VindexDir);
    if (Exec && failed(Exec->finish()))
      return ExitUserError;
    return Status;
  }

private:
  mlir::OwningOpRef<mlir::ModuleOp> lowerScripts(unsigned First) {
    bool Failed = false;
    std::vector<lql::Statement> Clean;
    for (unsigned B = First; B <= SM.getNumBuffers(); ++B)
      if (!lql::parseScript(SM, B, Ctx, &Clean))
        Failed = true;
    mlir::OwningOpRef<mlir::ModuleOp> Module = lql::lowerToIR(Ctx, SM, Clean);
    bool Invalid = false;
    for (mlir::Operation &Op : *Module->getBody())
      Invalid |= failed(mlir::verify(&Op));
    if (Failed || Invalid || failed(mlir::verify(*Module)))
      return nullptr;
    return Module;
  }

  /// The pass pipeline (--pass-pipeline, --mlir-print-ir-after-all, ...)
  /// rewrites the module before it is printed and run. Against a V-index
  /// without --pass-pipeline, the default one lowers what it can, so that
  /// edits run as written; without a V-index (linting) nothing is run.
  /// --jobs reaches the planner through the session, so a pipeline of one's
  /// own gets it too.
  mlir::LogicalResult runPipeline(mlir::ModuleOp Module) {
    bool Default = !PassPipeline.hasAnyOccurrences() && Session;
    if (!PassPipeline.hasAnyOccurrences() && !Default)
      return mlir::success();
    mlir::PassManager PM(&Ctx);
    auto Report = [&](const Twine &Msg) {
      return mlir::emitError(mlir::UnknownLoc::get(&Ctx), Msg);
    };
    if (failed(mlir::applyPassManagerCLOptions(PM)) ||
        failed(Default ? mlir::parsePassPipeline(kDefaultPipeline, PM)
                       : PassPipeline.addToPipeline(PM, Report)))
      return mlir::failure();
    return PM.run(Module);
  }

  StringRef Tool;
  mlir::MLIRContext Ctx;
  SourceMgr &SM;
  mlir::PassPipelineCLParser &PassPipeline;
  VindexSession *Session;
  bool RunIR;
  std::optional<lql::ScriptDiagnosticPrinter> Printer;
  std::optional<mlir::SourceMgrDiagnosticVerifierHandler> Verifier;
  std::optional<lql::Executor> Exec;
  bool LoadFailed = false;
};
} // namespace

int main(int argc, char **argv) {
  InitLLVM X(argc, argv);
  mlir::registerAsmPrinterCLOptions();
  mlir::registerMLIRContextCLOptions();
  mlir::registerPassManagerCLOptions();
  mlir::registerDefaultTimingManagerCLOptions();
  registerAllPasses();
  // --pass-pipeline='builtin.module(larql-lower-to-vindex)' and one flag per
  // registered pass, as mlir-opt has.
  mlir::PassPipelineCLParser PassPipeline("", "Passes to run", "p");
  parseToolCommandLine(argc, argv, Overview,
                       {"pass-pipeline", "mlir-print-debuginfo",
                        "mlir-pretty-debuginfo", "mlir-print-op-generic",
                        "mlir-print-ir-after-all", "mlir-print-ir-before-all",
                        "mlir-timing"});
  const char *Tool = "larql-opt";
  // Edits, balancer decisions and labels are written from engine results:
  // they must not depend on the kernel path (VINDEX_KERNELS=avx512bf16 is
  // for read-only measurement).
  KernelPath Kernels = requireExactKernels();
  if (Verbose)
    errs() << Tool << ": kernels: " << kernelPathName(Kernels) << "\n";

  mlir::DialectRegistry Registry;
  registerAllDialects(Registry);

  // .mlir input: parse, verify and print back, as mlir-opt does; after a
  // V-index, run it against it (the IR is the program, whoever wrote it).
  auto IsIR = [](StringRef In) { return In == "-" || In.ends_with(".mlir"); };
  bool AnyMLIR = llvm::any_of(Inputs, IsIR);
  bool RunIR = AnyMLIR && Inputs.size() == 2 && Statements.empty() &&
               !SplitInputFile && !IsIR(Inputs[0]) &&
               sys::fs::is_directory(Inputs[0]) && IsIR(Inputs[1]);
  if (AnyMLIR && !RunIR)
    return processIR(Tool, Registry, PassPipeline);
  if (SplitInputFile) {
    errs() << Tool << ": error: -split-input-file applies to a .mlir input\n";
    return ExitUsageError;
  }

  SourceMgr SM;
  Expected<ScriptInputs> In = readInputs(SM);
  if (!In)
    return exitWith(Tool, In.takeError());
  bool Interactive = In->Scripts.empty() && Statements.empty() &&
                     (Shell || sys::Process::StandardInIsUserInput());
  if (!checkUsage(Tool, *In, Interactive, SM.getNumBuffers()))
    return ExitUsageError;

  // The V-index is mapped once, before the pipeline: the session loads the
  // engine and the tokenizer when a pass or a statement first needs them,
  // and passes find it on the context's vindex dialect.
  std::unique_ptr<Vindex> V;
  std::optional<VindexSession> Session;
  if (!In->VindexDir.empty()) {
    Expected<std::unique_ptr<Vindex>> OpenedV = Vindex::open(In->VindexDir);
    if (!OpenedV)
      return exitWith(Tool, OpenedV.takeError());
    V = std::move(*OpenedV);
    Session.emplace(*V);
    Session->setJobs(Jobs);
    if (Verbose)
      Session->setLog(&errs());
  }

  ScriptDriver Driver(Tool, Registry, SM, PassPipeline,
                      Session ? &*Session : nullptr, RunIR);
  // (The shell too checks the scripts' empty module first: a bad
  // --pass-pipeline is reported before the first prompt.)
  mlir::OwningOpRef<mlir::ModuleOp> Program = Driver.check(1);
  if (!Program)
    return Driver.finish(false);
  if (Interactive)
    return Driver.runShell(In->VindexDir);
  if (!V)
    return Driver.finish(true);
  return Driver.runProgram(*Program, *V, In->Scripts);
}
