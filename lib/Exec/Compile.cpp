//===- Compile.cpp - COMPILE CURRENT INTO VINDEX | MODEL ------------------===//
//
// The current state of the V-index (its view: the input with every patch
// applied so far) is written as a V-index, the patches materialised into
// the payloads, or compiled to a model in the FORMAT the statement names, with
// the same writers as vindex-compile (atomic outputs; an earlier output of the
// same kind may be replaced, the input never). Paths are relative to the
// working directory, as make expects.
//
//===----------------------------------------------------------------------===//
#include "ResultTable.h"

#include "vindex/Convert/Compile.h"
#include "vindex/Dialect/Larql/LarqlOps.h"
#include "vindex/Exec/Executor.h"
#include "vindex/Store/Copy.h"
#include "vindex/Store/TensorView.h"
#include "vindex/Store/Vindex.h"

#include "llvm/Support/FileSystem.h"

using namespace llvm;

namespace vindex::lql {

/// Bytes under Path (a file, or a directory's regular files).
static uint64_t bytesAt(StringRef Path) {
  sys::fs::file_status St;
  if (sys::fs::status(Path, St))
    return 0;
  if (!sys::fs::is_directory(St))
    return St.getSize();
  uint64_t Total = 0;
  std::error_code EC;
  for (sys::fs::recursive_directory_iterator It(Path, EC), End;
       It != End && !EC; It.increment(EC))
    if (ErrorOr<sys::fs::basic_file_status> S = It->status();
        S && S->type() == sys::fs::file_type::regular_file)
      Total += S->getSize();
  return Total;
}

Error Executor::compile(mlir::Operation &Op) {
  auto C = cast<larql::CompileOp>(Op);
  std::string Path = C.getPath().str();
  std::string Format =
      C.getTarget() == "vindex" ? "vindex" : C.getFormat().value_or("").str();
  Error E = Error::success();
  if (Format == "vindex")
    E = copyVindex(*View, Path, PatchMode::Materialise);
  else if (Format == "gguf")
    E = compileGGUF(*View, Path,
                    parseGGUFOutputType(C.getType().value_or("auto"))
                        .value_or(GGUFOutputType::Auto), // verified
                    Threads);
  else if (Format == "safetensors")
    E = compileSafetensors(*View, Path, Threads);
  else
    E = createStringError(inconvertibleErrorCode(),
                          "COMPILE INTO MODEL needs FORMAT gguf or "
                          "safetensors");
  if (E)
    return E;
  ResultTable R;
  R.Statement = "COMPILE";
  R.Columns = {"path", "format", "bytes"};
  R.Rows.push_back({Path, Format, int64_t(bytesAt(Path))});
  printResult(R, this->Format, OS);
  return Error::success();
}

} // namespace vindex::lql
