//===- Show.cpp - SHOW LAYERS, SHOW MODEL, SHOW PATCHES ------------------===//
//
// None needs the engine: SHOW MODEL reads the manifest, SHOW LAYERS the
// down vectors (and the probe's bands), SHOW PATCHES the view's patch
// stack. SHOW RELATIONS, ENTITIES and FEATURES read the labels
// (LabelQueries.cpp).
//
//===----------------------------------------------------------------------===//
#include "FeatureWeights.h"
#include "ResultTable.h"

#include "vindex/Dialect/Larql/LarqlOps.h"
#include "vindex/Exec/Executor.h"
#include "vindex/Store/Labels.h"
#include "vindex/Store/Patch.h"
#include "vindex/Store/TensorView.h"
#include "vindex/Store/Vindex.h"

#include "llvm/ADT/StringExtras.h"

#include <cmath>

using namespace llvm;

namespace vindex::lql {

Error Executor::show(mlir::Operation &Op) {
  StringRef What = cast<larql::ShowOp>(Op).getWhat();
  if (What == "layers")
    return showLayers();
  if (What == "model") {
    showModel();
    return Error::success();
  }
  if (What == "patches") {
    showPatches();
    return Error::success();
  }
  return showLabels(Op);
}

/// SHOW LAYERS: each layer's kind, width and down vectors' norms, and the
/// band the probe gave it.
Error Executor::showLayers() {
  ResultTable R;
  Expected<const FeatureWeights &> W = weights();
  if (!W)
    return W.takeError();
  const FeatureWeights &M = *W;
  R.Statement = "SHOW LAYERS";
  R.Columns = {"layer",          "kind",          "features",
               "mean_down_norm", "max_down_norm", "band"};
  // The band larql-probe computed for the layer; "" if never probed.
  const Labels *Lab = V.labels();
  for (size_t L = 0; L < M.numLayers(); ++L) {
    const WeightMatrix &D = M.layer(L).Down;
    double Sum = 0, Max = 0;
    for (size_t I = 0; I < D.Rows; ++I) {
      double S2 = 0;
      for (size_t J = 0; J < D.Cols; ++J) {
        double X = D.at(I, J);
        S2 += X * X;
      }
      double N = std::sqrt(S2);
      Sum += N;
      Max = std::max(Max, N);
    }
    R.Rows.push_back({int64_t(L),
                      std::string(M.layer(L).Sliding ? "sliding" : "full"),
                      int64_t(D.Rows), D.Rows ? Sum / D.Rows : 0.0, Max,
                      Lab ? bandName(Lab->band(L)).str() : std::string()});
  }
  printResult(R, Format, OS);
  return Error::success();
}

/// SHOW MODEL: the configuration of the view (with the patches so far).
void Executor::showModel() {
  const ModelConfig &C = view().config();
  ResultTable R;
  R.Statement = "SHOW MODEL";
  R.Vertical = true;
  auto Add = [&](StringRef Name, Cell V) {
    R.Columns.push_back(Name.str());
    if (R.Rows.empty())
      R.Rows.emplace_back();
    R.Rows.back().push_back(std::move(V));
  };
  Add("architecture", C.Architecture);
  Add("model_type", C.SourceModelType);
  Add("layers", int64_t(C.NumLayers));
  Add("hidden_size", int64_t(C.HiddenSize));
  Add("intermediate_size", int64_t(C.IntermediateSize));
  Add("heads", int64_t(C.NumHeads));
  Add("kv_heads", int64_t(C.NumKVHeads));
  Add("head_dim", int64_t(C.HeadDim));
  Add("vocab_size", int64_t(C.VocabSize));
  Add("max_positions", int64_t(C.MaxPositions));
  int64_t Sliding = 0;
  for (size_t L = 0; L < C.NumLayers; ++L)
    Sliding += L < C.LayerKinds.size() && C.LayerKinds[L] == LayerKind::Sliding;
  Add("sliding_layers", Sliding);
  Add("sliding_window", int64_t(C.SlidingWindow));
  // Bases are whole numbers in practice: print them so.
  auto Number = [](double X) -> Cell {
    if (X == std::floor(X) && std::fabs(X) < 1e15)
      return int64_t(X);
    return X;
  };
  Add("rope_theta", Number(C.RopeTheta));
  Add("rope_local_theta", Number(C.RopeLocalTheta));
  Add("tied_embeddings", C.TiedEmbeddings);
  Add("vindex", V.directory().str());
  Add("provenance_tool", V.manifest().Provenance.Tool);
  Add("provenance_version", V.manifest().Provenance.Version);
  printResult(R, Format, OS);
}

/// SHOW PATCHES: the view's patch stack, oldest first: the V-index's own
/// patches, then those of this run's edits.
void Executor::showPatches() {
  ResultTable R;
  R.Statement = "SHOW PATCHES";
  R.Columns = {"patch", "name", "origin", "tensors", "rows", "statement"};
  ArrayRef<std::shared_ptr<const Patch>> Stack = View->patches();
  for (size_t I = 0; I < Stack.size(); ++I) {
    const Patch &P = *Stack[I];
    int64_t Rows = 0;
    for (const TensorEdit &E : P.edits())
      Rows += int64_t(E.Rows.size() + E.AppendedRows);
    R.Rows.push_back(
        {int64_t(I + 1), P.origin().Name,
         std::string(I < View->numPersisted() ? "v-index" : "this run"),
         int64_t(P.edits().size()), Rows, P.origin().Statement});
  }
  printResult(R, Format, OS);
}

} // namespace vindex::lql
