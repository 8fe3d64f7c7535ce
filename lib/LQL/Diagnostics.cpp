//===- Diagnostics.cpp - LQL diagnostics through MLIR ---------------------===//
#include "vindex/LQL/Diagnostics.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/MLIRContext.h"

using namespace mlir;

namespace vindex::lql {

static constexpr llvm::StringLiteral TokenTag = "lql.token";

Location toLocation(MLIRContext &Ctx, const llvm::SourceMgr &SM,
                    llvm::SMLoc Loc) {
  unsigned Buf = Loc.isValid() ? SM.FindBufferContainingLoc(Loc) : 0;
  if (!Buf)
    return UnknownLoc::get(&Ctx);
  auto [Line, Col] = SM.getLineAndColumn(Loc, Buf);
  return FileLineColLoc::get(
      &Ctx, SM.getMemoryBuffer(Buf)->getBufferIdentifier(), Line, Col);
}

Location toLocation(MLIRContext &Ctx, const llvm::SourceMgr &SM,
                    llvm::SMRange Range) {
  Location Begin = toLocation(Ctx, SM, Range.Start);
  if (!Range.End.isValid() ||
      Range.End.getPointer() <= Range.Start.getPointer() + 1)
    return Begin;
  Location End = toLocation(Ctx, SM, Range.End);
  return FusedLoc::get(&Ctx, {Begin, End}, StringAttr::get(&Ctx, TokenTag));
}

/// The position of LOC in SM, if it is one of SM's buffers.
static llvm::SMLoc toSMLoc(llvm::SourceMgr &SM, FileLineColLoc Loc) {
  for (unsigned B = 1; B <= SM.getNumBuffers(); ++B)
    if (SM.getMemoryBuffer(B)->getBufferIdentifier() ==
        Loc.getFilename().getValue())
      return SM.FindLocForLineAndColumn(B, Loc.getLine(), Loc.getColumn());
  return llvm::SMLoc();
}

static llvm::SourceMgr::DiagKind toDiagKind(DiagnosticSeverity S) {
  switch (S) {
  case DiagnosticSeverity::Error:
    return llvm::SourceMgr::DK_Error;
  case DiagnosticSeverity::Warning:
    return llvm::SourceMgr::DK_Warning;
  case DiagnosticSeverity::Remark:
    return llvm::SourceMgr::DK_Remark;
  case DiagnosticSeverity::Note:
    break;
  }
  return llvm::SourceMgr::DK_Note;
}

ScriptDiagnosticPrinter::ScriptDiagnosticPrinter(MLIRContext &Ctx,
                                                 llvm::SourceMgr &SM,
                                                 llvm::StringRef Tool,
                                                 llvm::raw_ostream &OS)
    : Ctx(Ctx), SM(SM), Tool(Tool), OS(OS) {
  Handler = Ctx.getDiagEngine().registerHandler([this](Diagnostic &D) {
    if (D.getSeverity() == DiagnosticSeverity::Error)
      ++Errors;
    print(D.getLocation(), toDiagKind(D.getSeverity()), D.str());
    for (Diagnostic &Note : D.getNotes())
      print(Note.getLocation(), llvm::SourceMgr::DK_Note, Note.str());
    return success();
  });
}

ScriptDiagnosticPrinter::~ScriptDiagnosticPrinter() {
  Ctx.getDiagEngine().eraseHandler(Handler);
}

void ScriptDiagnosticPrinter::print(Location Loc,
                                    llvm::SourceMgr::DiagKind Kind,
                                    const llvm::Twine &Message) {
  llvm::SMLoc At;
  llvm::SmallVector<llvm::SMRange, 1> Ranges;
  if (auto Fused = dyn_cast<FusedLoc>(Loc)) {
    auto Tag = dyn_cast_or_null<StringAttr>(Fused.getMetadata());
    auto Parts = Fused.getLocations();
    if (Tag && Tag.getValue() == TokenTag && Parts.size() == 2 &&
        isa<FileLineColLoc>(Parts[0]) && isa<FileLineColLoc>(Parts[1])) {
      At = toSMLoc(SM, cast<FileLineColLoc>(Parts[0]));
      llvm::SMLoc End = toSMLoc(SM, cast<FileLineColLoc>(Parts[1]));
      // line:col does not round-trip past a lone '\r' (SourceMgr restarts
      // the column there but not the line), so a token spanning one can
      // map its end before its start: then only the caret is shown.
      if (At.isValid() && End.isValid() &&
          End.getPointer() > At.getPointer())
        Ranges.push_back(llvm::SMRange(At, End));
    }
  }
  if (!At.isValid())
    if (auto FL = Loc->findInstanceOf<FileLineColLoc>())
      At = toSMLoc(SM, FL);
  llvm::SMDiagnostic D = At.isValid()
                             ? SM.GetMessage(At, Kind, Message, Ranges)
                             : llvm::SMDiagnostic("", Kind, Message.str());
  D.print(Tool.c_str(), OS);
}

} // namespace vindex::lql
