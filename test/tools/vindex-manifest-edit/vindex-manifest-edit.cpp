//===- vindex-manifest-edit.cpp - Craft manifests for tests ---------------===//
//
// Test-only: changes fields of a V-index's manifest.vfb in place, with no
// check of the result, so that tests can show what opening a crafted
// manifest does. It reads and writes through parseManifest and
// serializeManifest, so only the edited fields change.
//
//   vindex-manifest-edit DIR config.FIELD=N ... tensor.NAME.FIELD=V ...
//
// config fields: hidden_size, intermediate_size, num_layers, num_heads,
// num_kv_heads, head_dim, vocab_size. Tensor fields: offset, stored_length,
// length, codec_chunk, layer, transposed (0 or 1), shape (AxB...).
// files.drop=NAME unlists an auxiliary file.
//
//===----------------------------------------------------------------------===//
#include "vindex/Store/Manifest.h"
#include "vindex/Support/AtomicOutput.h"
#include "vindex/Support/Error.h"
#include "vindex/Support/MappedFile.h"
#include "vindex/Support/ToolMain.h"

#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"

using namespace llvm;
using namespace vindex;

static cl::opt<std::string> Dir(cl::Positional, cl::Required,
                                cl::desc("DIR.vindex"), cl::cat(toolOptions()));
static cl::list<std::string> Edits(cl::Positional, cl::OneOrMore,
                                   cl::desc("FIELD=VALUE..."),
                                   cl::cat(toolOptions()));

static Error setConfig(ModelConfig &C, StringRef Field, uint64_t V) {
  uint64_t *F = StringSwitch<uint64_t *>(Field)
                    .Case("hidden_size", &C.HiddenSize)
                    .Case("intermediate_size", &C.IntermediateSize)
                    .Case("num_layers", &C.NumLayers)
                    .Case("num_heads", &C.NumHeads)
                    .Case("num_kv_heads", &C.NumKVHeads)
                    .Case("head_dim", &C.HeadDim)
                    .Case("vocab_size", &C.VocabSize)
                    .Default(nullptr);
  if (!F)
    return makeError("unknown config field '{0}'", Field);
  *F = V;
  return Error::success();
}

static Error setTensor(TensorRecord &T, StringRef Field, StringRef Value) {
  if (Field == "shape") {
    SmallVector<StringRef, 4> Dims;
    Value.split(Dims, 'x');
    T.Dims.clear();
    for (StringRef D : Dims) {
      uint64_t N;
      if (D.getAsInteger(10, N))
        return makeError("bad shape '{0}'", Value);
      T.Dims.push_back(N);
    }
    return Error::success();
  }
  uint64_t V;
  if (Value.getAsInteger(10, V))
    return makeError("bad value '{0}'", Value);
  if (Field == "layer")
    T.Layer = int(V);
  else if (Field == "transposed")
    T.Transposed = V != 0;
  else if (uint64_t *F = StringSwitch<uint64_t *>(Field)
                             .Case("offset", &T.Offset)
                             .Case("stored_length", &T.StoredLength)
                             .Case("length", &T.Length)
                             .Case("codec_chunk", &T.CodecChunk)
                             .Default(nullptr))
    *F = V;
  else
    return makeError("unknown tensor field '{0}'", Field);
  return Error::success();
}

static Error edit(Manifest &M, StringRef Edit) {
  auto [Path, Value] = Edit.split('=');
  if (Path.consume_front("config.")) {
    uint64_t V;
    if (Value.getAsInteger(10, V))
      return makeError("bad value '{0}'", Value);
    return setConfig(M.Config, Path, V);
  }
  if (Path.consume_front("tensor.")) {
    // Tensor names contain dots; the field is the last component.
    auto [Name, Field] = Path.rsplit('.');
    for (TensorRecord &T : M.Tensors)
      if (T.Name == Name)
        return setTensor(T, Field, Value);
    return makeError("no tensor '{0}'", Name);
  }
  if (Path == "files.drop") { // Unlists an auxiliary file (e.g. to make
                              // a V-index as older versions wrote it).
    auto It = llvm::find_if(M.Files,
                            [&](const AuxFileRecord &F) { return F.Name == Value; });
    if (It == M.Files.end())
      return makeError("no file '{0}'", Value);
    M.Files.erase(It);
    return Error::success();
  }
  return makeError("cannot edit '{0}'", Edit);
}

static Error run() {
  SmallString<256> Path(Dir);
  sys::path::append(Path, kManifestFileName);
  Expected<std::unique_ptr<MappedFile>> F = MappedFile::open(Path);
  if (!F)
    return F.takeError();
  Expected<Manifest> M = parseManifest((*F)->bytes(), Path);
  if (!M)
    return M.takeError();
  F->reset(); // unmapped before the file is replaced
  for (StringRef E : Edits)
    if (Error Err = edit(*M, E))
      return Err;
  return writeFileAtomically(Path, serializeManifest(*M));
}

int main(int argc, char **argv) {
  InitLLVM X(argc, argv);
  parseToolCommandLine(argc, argv,
                       "vindex-manifest-edit: change manifest fields "
                       "(tests only)\n");
  return exitWith("vindex-manifest-edit", run());
}
