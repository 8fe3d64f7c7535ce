//===- VindexSession.h - A V-index, its engine loaded lazily -*- C++ -*-===//
//
// What running IR against a V-index needs, and the one place it is loaded:
// the opened V-index, its TensorView (the patch overlay every consumer reads
// through), and the engine (Model) and tokenizer, each loaded the first
// time something asks for it, so that work that needs neither (SHOW MODEL,
// COMPILE, -o) runs on a V-index the engine cannot.
//
// larql-opt makes one per V-index before the pass pipeline runs; passes
// that need the model (passes/ResolveTokens.cpp, later key capture and
// planning) reach it through the vindex dialect of the MLIRContext
// (VindexDialect::session()), and lib/Exec runs the module against the
// same session, so both see the same engine and the same edits.
//
//===----------------------------------------------------------------------===//
#ifndef VINDEX_MODEL_VINDEXSESSION_H
#define VINDEX_MODEL_VINDEXSESSION_H

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace llvm {
class raw_ostream;
}

namespace vindex {

class Model;
class TensorView;
class Tokenizer;
class Vindex;

class VindexSession {
public:
  explicit VindexSession(const Vindex &V);
  ~VindexSession();

  const Vindex &vindex() const { return V; }
  /// The V-index as the edits so far left it.
  TensorView &view() { return *View; }
  const TensorView &view() const { return *View; }

  /// The engine, loaded on first use and rebound to the view's patches
  /// when edits came since; its vocabulary must hold every id of the
  /// tokenizer (loaded with it).
  llvm::Expected<const Model &> model();
  /// The engine if something loaded it already (rebound like model()), else
  /// null: readers that can do without it (the features queries) use it
  /// rather than a second copy of the weights.
  llvm::Expected<const Model *> loadedModel();
  /// The tokenizer of tokenizer.json, loaded on first use.
  llvm::Expected<const Tokenizer &> tokenizer();

  /// Relation prompts given by CREATE RELATION (name -> templates, in the
  /// order given): kept for the session, so that a later statement (the
  /// shell's next line) still knows them.
  std::map<std::string, std::vector<std::string>> &relations() {
    return Relations;
  }
  /// Where passes that explain themselves (the balancer's decisions) write;
  /// null unless the driver was asked (--verbose).
  llvm::raw_ostream *log() const { return Log; }
  void setLog(llvm::raw_ostream *OS) { Log = OS; }
  /// The threads the driver was given (larql-opt's --jobs): what passes
  /// use unless their own option says otherwise.
  unsigned jobs() const { return Jobs; }
  void setJobs(unsigned N) { Jobs = N ? N : 1; }
  /// Files outside the V-index that passes and statements read (a corpus,
  /// a saved patch), each once, in the order first read: larql-opt's
  /// --depfile names them beside the scripts and the V-index's own files.
  const std::vector<std::string> &filesRead() const { return FilesRead; }
  void noteFileRead(llvm::StringRef Path) {
    if (!llvm::is_contained(FilesRead, Path))
      FilesRead.push_back(Path.str());
  }

private:
  const Vindex &V;
  std::unique_ptr<TensorView> View;
  std::unique_ptr<Model> M;
  std::unique_ptr<Tokenizer> Tok;
  std::map<std::string, std::vector<std::string>> Relations;
  llvm::raw_ostream *Log = nullptr;
  unsigned Jobs = 1;
  std::vector<std::string> FilesRead;
};

} // namespace vindex

#endif // VINDEX_MODEL_VINDEXSESSION_H
