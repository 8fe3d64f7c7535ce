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

#include "vindex/Exec/Executor.h"
#include "vindex/Convert/Compile.h"
#include "vindex/Model/Engine.h"
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

Error Executor::compile(const CompileStmt &S) {
  if (!V)
    return createStringError(inconvertibleErrorCode(),
                             "COMPILE needs the V-index the model was "
                             "loaded from");
  std::string Format = S.Target == "vindex" ? "vindex" : S.Format.value_or("");
  // The store as the model sees it: with every patch applied so far.
  const TensorView &View = M.view();
  Error E = Error::success();
  if (Format == "vindex")
    E = copyVindex(View, S.Path, PatchMode::Materialise);
  else if (Format == "gguf")
    E = compileGGUF(View, S.Path, GGUFOutputType::Auto, Threads);
  else if (Format == "safetensors")
    E = compileSafetensors(View, S.Path, Threads);
  else
    E = createStringError(inconvertibleErrorCode(),
                          "COMPILE INTO MODEL needs FORMAT gguf or "
                          "safetensors");
  if (E)
    return E;
  ResultTable R;
  R.Statement = "COMPILE";
  R.Columns = {"path", "format", "bytes"};
  R.Rows.push_back({S.Path, Format, int64_t(bytesAt(S.Path))});
  printResult(R, this->Format, OS);
  return Error::success();
}

} // namespace vindex::lql
