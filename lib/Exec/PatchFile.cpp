//===- PatchFile.cpp - BEGIN PATCH, SAVE PATCH, APPLY PATCH ---------------===//
//
// A saved patch is the `vindex` IR of the edits made between BEGIN PATCH
// and SAVE PATCH, exactly as they ran (after the pass pipeline): a module of
// vindex ops, written as MLIR text, or as MLIR bytecode when the path ends
// in .mlirbc. APPLY PATCH parses it back (either form), verifies it, checks
// that it holds vindex ops only and runs them as edits. Paths are relative
// to the working directory, as COMPILE's.
//
//===----------------------------------------------------------------------===//
#include "vindex/Dialect/Larql/LarqlOps.h"
#include "vindex/Dialect/Vindex/VindexOps.h"
#include "vindex/Exec/Executor.h"
#include "vindex/Model/VindexSession.h"

#include "mlir/Bytecode/BytecodeWriter.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/SourceMgr.h"

using namespace llvm;

namespace vindex::lql {

static Error opError(const Twine &Msg) {
  return createStringError(inconvertibleErrorCode(), Msg);
}

bool Executor::isEdit(mlir::Operation &Op) {
  return Op.getDialect() && isa<vx::VindexDialect>(Op.getDialect());
}

Error Executor::beginPatch(mlir::Operation &Op) {
  auto B = cast<larql::BeginPatchOp>(Op);
  if (Recording)
    return opError("patch '" + PatchName +
                   "' is still open (SAVE PATCH "
                   "ends it before another BEGIN PATCH)");
  Recording = mlir::ModuleOp::create(Op.getLoc());
  PatchName = B.getName().str();
  return Error::success();
}

Error Executor::edit(mlir::Operation &Op) {
  if (Error E = applyEdit(Op))
    return E;
  if (Recording) {
    mlir::OpBuilder Builder = mlir::OpBuilder::atBlockEnd(Recording->getBody());
    Builder.clone(Op);
  }
  return Error::success();
}

Error Executor::savePatch(mlir::Operation &Op) {
  auto S = cast<larql::SavePatchOp>(Op);
  if (!Recording)
    return opError("SAVE PATCH needs an open patch (BEGIN PATCH 'name')");
  std::string Path = S.getPath() ? S.getPath()->str() : PatchName + ".mlir";
  // Written next to its final name and renamed: a reader never sees half
  // a patch, and a failed write leaves nothing.
  Expected<sys::fs::TempFile> Tmp =
      sys::fs::TempFile::create(Path + ".tmp-%%%%%%");
  if (!Tmp)
    return opError("cannot write patch '" + Path +
                   "': " + toString(Tmp.takeError()));
  {
    raw_fd_ostream OS(Tmp->FD, /*shouldClose=*/false);
    if (StringRef(Path).ends_with(".mlirbc")) {
      if (failed(mlir::writeBytecodeToFile(*Recording, OS)))
        return joinErrors(opError("cannot write patch '" + Path + "'"),
                          Tmp->discard());
    } else {
      Recording->print(OS);
      OS << "\n";
    }
    OS.flush();
    if (OS.has_error()) {
      std::string Msg = OS.error().message();
      OS.clear_error();
      return joinErrors(opError("cannot write patch '" + Path + "': " + Msg),
                        Tmp->discard());
    }
  }
  if (Error E = Tmp->keep(Path))
    return opError("cannot write patch '" + Path +
                   "': " + toString(std::move(E)));
  Recording = nullptr;
  PatchName.clear();
  return Error::success();
}

mlir::LogicalResult Executor::finish() {
  if (PendingLoc) {
    mlir::Location At = *PendingLoc;
    if (Error E = flushEdits()) {
      mlir::emitError(At) << toString(std::move(E));
      return mlir::failure();
    }
  }
  if (!Recording)
    return mlir::success();
  mlir::emitError(Recording->getLoc())
      << "patch '" << PatchName << "' is never saved (SAVE PATCH ends it)";
  return mlir::failure();
}

Error Executor::applyPatch(mlir::Operation &Op) {
  auto A = cast<larql::ApplyPatchOp>(Op);
  std::string Path = A.getPath().str();
  if (!sys::fs::exists(Path))
    return opError("no such patch file '" + Path + "'");
  VS.noteFileRead(Path);
  // The file's own errors (syntax, verifier) are reported at their place in
  // it, then the statement fails.
  SourceMgr SM;
  mlir::SourceMgrDiagnosticHandler Handler(SM, Op.getContext(), errs());
  mlir::ParserConfig Config(Op.getContext());
  mlir::OwningOpRef<mlir::ModuleOp> Patch =
      mlir::parseSourceFile<mlir::ModuleOp>(Path, SM, Config);
  if (!Patch)
    return opError("'" + Path + "' is not a valid patch (vindex IR)");
  for (mlir::Operation &E : *Patch->getBody())
    if (!isEdit(E))
      return opError("'" + Path + "' holds '" + E.getName().getStringRef() +
                     "': a patch holds vindex ops only");
  for (mlir::Operation &E : *Patch->getBody())
    if (Error Err = edit(E))
      return opError("'" + Path + "': " + toString(std::move(Err)));
  return Error::success();
}

} // namespace vindex::lql
