//===- Executor.h - Running LQL statements against a model ------*- C++ -*-===//
#ifndef VINDEX_EXEC_EXECUTOR_H
#define VINDEX_EXEC_EXECUTOR_H

#include "vindex/LQL/AST.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

namespace vindex {
class Model;
class Tokenizer;
class Vindex;
} // namespace vindex

namespace vindex::lql {

enum class ResultFormat { Table, JSON, CSV };

/// Runs statements against one loaded model (loaded once per process) and
/// prints each result: an aligned table, one JSON object per line, or CSV.
class Executor {
public:
  /// V, when given, is the V-index M was loaded from (SHOW MODEL prints its
  /// path and provenance).
  Executor(const Model &M, const Tokenizer &Tok, llvm::raw_ostream &OS,
           ResultFormat Format, unsigned Threads, const Vindex *V = nullptr)
      : M(M), Tok(Tok), OS(OS), Format(Format), Threads(Threads), V(V) {}

  llvm::Error run(const Statement &S);

private:
  llvm::Error infer(llvm::StringRef Kind, llvm::StringRef Prompt, unsigned Top,
                    std::optional<unsigned> Generate, size_t WalkK);
  llvm::Error select(const SelectStmt &S); ///< Select.cpp
  llvm::Error show(const ShowStmt &S);     ///< Show.cpp
  llvm::Error compile(const CompileStmt &S); ///< Compile.cpp

  const Model &M;
  const Tokenizer &Tok;
  llvm::raw_ostream &OS;
  ResultFormat Format;
  unsigned Threads;
  const Vindex *V;
  bool CSVHeaderDone = false;
};

} // namespace vindex::lql

#endif // VINDEX_EXEC_EXECUTOR_H
