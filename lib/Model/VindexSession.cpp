//===- VindexSession.cpp - A V-index with its engine, loaded lazily -------===//
#include "vindex/Model/VindexSession.h"

#include "vindex/Formats/Tokenizer.h"
#include "vindex/Model/Engine.h"
#include "vindex/Store/TensorView.h"
#include "vindex/Store/Vindex.h"
#include "vindex/Support/Error.h"

using namespace llvm;

namespace vindex {

VindexSession::VindexSession(const Vindex &V)
    : V(V), View(std::make_unique<TensorView>(V)) {}

VindexSession::~VindexSession() = default;

Expected<const Model *> VindexSession::loadedModel() {
  // Edits since the weights were bound: rebind them.
  if (M && M->stale())
    if (Error E = M->reload())
      return std::move(E);
  return M.get();
}

Expected<const Model &> VindexSession::model() {
  if (!M) {
    Expected<std::unique_ptr<Model>> Loaded = Model::load(*View);
    if (!Loaded)
      return Loaded.takeError();
    M = std::move(*Loaded);
  } else if (Expected<const Model *> Bound = loadedModel(); !Bound) {
    return Bound.takeError();
  }
  Expected<const Tokenizer &> T = tokenizer();
  if (!T)
    return T.takeError();
  // Ids the tokenizer produces must be rows of the embedding.
  if (T->vocabSize() > M->config().VocabSize)
    return fileError(V.path("tokenizer.json"),
                     "{0} tokens but the model's vocabulary has {1}",
                     T->vocabSize(), M->config().VocabSize);
  return *M;
}

Expected<const Tokenizer &> VindexSession::tokenizer() {
  if (!Tok) {
    Expected<Tokenizer> Loaded = Tokenizer::fromFile(V.path("tokenizer.json"));
    if (!Loaded)
      return Loaded.takeError();
    Tok = std::make_unique<Tokenizer>(std::move(*Loaded));
  }
  return *Tok;
}

} // namespace vindex
