//===- VindexSession.cpp - A V-index with its engine, loaded lazily -------===//
#include "vindex/Model/VindexSession.h"

#include "vindex/Formats/Tokenizer.h"
#include "vindex/Model/Engine.h"
#include "vindex/Store/Manifest.h"
#include "vindex/Store/TensorView.h"
#include "vindex/Store/Vindex.h"
#include "vindex/Support/Error.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/MemoryBuffer.h"

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
  return *M;
}

/// The compiled tokenizer decompose wrote (mapped, checked against the
/// manifest's checksum); a V-index made before it existed has only
/// tokenizer.json, which is parsed.
static Expected<Tokenizer> loadTokenizer(const Vindex &V) {
  const auto &Files = V.manifest().Files;
  if (llvm::any_of(Files, [](const AuxFileRecord &F) {
        return F.Name == kCompiledTokenizerFileName;
      })) {
    Expected<std::unique_ptr<MemoryBuffer>> Buf =
        V.readAuxFile(kCompiledTokenizerFileName);
    if (!Buf)
      return Buf.takeError();
    return Tokenizer::fromCompiled(std::move(*Buf),
                                   V.path(kCompiledTokenizerFileName));
  }
  return Tokenizer::fromFile(V.path("tokenizer.json"));
}

Expected<const Tokenizer &> VindexSession::tokenizer() {
  if (!Tok) {
    Expected<Tokenizer> Loaded = loadTokenizer(V);
    if (!Loaded)
      return Loaded.takeError();
    // Ids the tokenizer produces from text must be rows of the embedding;
    // added tokens past it are refused when text spells them (Exec).
    if (Expected<std::vector<int32_t>> Past = Loaded->idsPastEmbedding(
            V.config().VocabSize, V.path("tokenizer.json"));
        !Past)
      return Past.takeError();
    Tok = std::make_unique<Tokenizer>(std::move(*Loaded));
  }
  return *Tok;
}

} // namespace vindex
