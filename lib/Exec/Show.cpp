//===- Show.cpp - SHOW LAYERS and SHOW MODEL ------------------------------===//
#include "ResultTable.h"

#include "vindex/Exec/Executor.h"
#include "vindex/Model/Engine.h"
#include "vindex/Store/Vindex.h"

#include "llvm/ADT/StringExtras.h"

#include <cmath>

using namespace llvm;

namespace vindex::lql {

Error Executor::show(const ShowStmt &S) {
  const ModelConfig &C = M.config();
  ResultTable R;
  if (S.What == "layers") {
    R.Statement = "SHOW LAYERS";
    R.Columns = {"layer", "kind", "features", "mean_down_norm",
                 "max_down_norm"};
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
                        int64_t(D.Rows), D.Rows ? Sum / D.Rows : 0.0, Max});
    }
    printResult(R, Format, OS);
    return Error::success();
  }
  if (S.What == "model") {
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
    Add("layers", int64_t(M.numLayers()));
    Add("hidden_size", int64_t(C.HiddenSize));
    Add("intermediate_size", int64_t(C.IntermediateSize));
    Add("heads", int64_t(C.NumHeads));
    Add("kv_heads", int64_t(C.NumKVHeads));
    Add("head_dim", int64_t(C.HeadDim));
    Add("vocab_size", int64_t(C.VocabSize));
    Add("max_positions", int64_t(C.MaxPositions));
    int64_t Sliding = 0;
    for (size_t L = 0; L < M.numLayers(); ++L)
      Sliding += M.layer(L).Sliding;
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
    Add("vindex", V ? V->directory().str() : std::string());
    Add("provenance_tool", V ? V->manifest().Provenance.Tool : std::string());
    Add("provenance_version",
        V ? V->manifest().Provenance.Version : std::string());
    printResult(R, Format, OS);
    return Error::success();
  }
  return createStringError(inconvertibleErrorCode(),
                           "SHOW %s does not run against a V-index yet (it "
                           "needs labels; SHOW LAYERS and SHOW MODEL run)",
                           StringRef(S.What).upper().c_str());
}

} // namespace vindex::lql
