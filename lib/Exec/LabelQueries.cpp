//===- LabelQueries.cpp - The queries that read larql-probe's labels ------===//
//
// SHOW RELATIONS / ENTITIES / FEATURES n, SELECT FROM edges / entities and
// DESCRIBE (docs/lql.md). Each reads the labels the V-index was opened
// with (labels.vfb); on a V-index never probed it is an error of the
// statement that says how to probe it. DESCRIBE's edges are computed by
// lib/Probe/Describe.cpp from the model; here they are only filtered and
// printed.
//
//===----------------------------------------------------------------------===//
#include "Query.h"
#include "ResultTable.h"

#include "vindex/Dialect/Larql/LarqlOps.h"
#include "vindex/Dialect/Larql/Schema.h"
#include "vindex/Exec/Executor.h"
#include "vindex/Formats/Tokenizer.h"
#include "vindex/Model/Engine.h"
#include "vindex/Model/VindexSession.h"
#include "vindex/Probe/Describe.h"
#include "vindex/Store/Labels.h"
#include "vindex/Store/Vindex.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/JSON.h"

#include <map>

using namespace llvm;

namespace vindex::lql {

using namespace query;

namespace {

/// "1-3, 5": ascending distinct layers as ranges.
std::string layerRanges(ArrayRef<uint32_t> Layers) {
  std::string S;
  ListSeparator LS(", ");
  for (size_t I = 0; I < Layers.size();) {
    size_t J = I;
    while (J + 1 < Layers.size() && Layers[J + 1] == Layers[J] + 1)
      ++J;
    S += LS;
    S += std::to_string(Layers[I]);
    if (J > I) {
      S += '-';
      S += std::to_string(Layers[J]);
    }
    I = J + 1;
  }
  return S;
}

/// The tokens of a feature's label, decoded and joined as top_output is in
/// the features table.
std::string tokenList(const Labels &L, ArrayRef<TokenScore> Tokens) {
  std::string S;
  ListSeparator LS(" | ");
  for (const TokenScore &T : Tokens.take_front(3))
    (S += LS) += L.tokenText(T.Token);
  return S;
}

/// Up to N example targets of relation Rel: those its features promoted,
/// the most often named first (ties: first named).
std::string relationExamples(const Labels &L, uint32_t Rel, size_t N) {
  std::vector<std::pair<std::string, unsigned>> Counts;
  for (const FeatureLabel &F : L.Features)
    for (const RelationLabel &R : F.Relations)
      if (R.Relation == Rel)
        for (const std::string &E : R.Examples) {
          auto It =
              find_if(Counts, [&](const auto &C) { return C.first == E; });
          if (It == Counts.end())
            Counts.push_back({E, 1});
          else
            ++It->second;
        }
  std::stable_sort(
      Counts.begin(), Counts.end(),
      [](const auto &A, const auto &B) { return A.second > B.second; });
  std::string S;
  ListSeparator LS(", ");
  for (size_t I = 0; I < Counts.size() && I < N; ++I)
    (S += LS) += Counts[I].first;
  return S;
}

/// The entities a WHERE pins (entity = 'x' or entity IN (...) on its
/// top-level AND chain), if any.
std::optional<std::vector<std::string>> pinnedEntities(const Expr *E) {
  if (!E)
    return std::nullopt;
  if (E->K == Expr::Kind::And) {
    if (auto L = pinnedEntities(E->LHS.get()))
      return L;
    return pinnedEntities(E->RHS.get());
  }
  if (E->K != Expr::Kind::Cmp || E->Column != "entity" ||
      (E->Op != "=" && E->Op != "in"))
    return std::nullopt;
  std::vector<std::string> Out;
  for (const Literal &V : E->Values)
    if (const auto *S = std::get_if<std::string>(&V))
      Out.push_back(*S);
  return Out;
}

/// Keeps the named columns of R (all of them when Cols is empty).
void project(ResultTable &R, ArrayRef<std::string> Cols) {
  if (Cols.empty())
    return;
  std::vector<size_t> Index;
  for (const std::string &C : Cols)
    Index.push_back(size_t(find(R.Columns, C) - R.Columns.begin()));
  for (std::vector<Cell> &Row : R.Rows) {
    std::vector<Cell> Kept;
    for (size_t I : Index)
      Kept.push_back(Row[I]);
    Row = std::move(Kept);
  }
  R.Columns.assign(Cols.begin(), Cols.end());
}

std::vector<Cell> edgeRow(StringRef Entity, const DescribeEdge &E) {
  return {Entity.str(),
          E.Relation,
          E.Target,
          int64_t(E.Layer),
          int64_t(E.Feature),
          E.Score,
          bandName(E.LayerBand).str()};
}

} // namespace

Expected<const Labels &> Executor::labels() {
  if (const Labels *L = V.labels())
    return *L;
  return createStringError(
      inconvertibleErrorCode(),
      "this V-index has no labels: run larql-probe on it first "
      "(larql-probe %s -o PROBED.vindex --facts FACTS.tsv --templates "
      "TEMPLATES.json)",
      V.directory().str().c_str());
}

Error Executor::showLabels(mlir::Operation &Op) {
  auto Show = cast<larql::ShowOp>(Op);
  Expected<const Labels &> LL = labels();
  if (!LL)
    return LL.takeError();
  const Labels &L = *LL;
  StringRef What = Show.getWhat();
  ResultTable R;
  R.Statement = "SHOW " + What.upper();
  ArrayRef<StringLiteral> Columns = *schema::showColumns(What);
  for (StringRef C : Columns)
    R.Columns.push_back(C.str());
  if (What == "relations") {
    std::vector<uint32_t> Counts = L.relationFeatureCounts();
    std::vector<std::vector<uint32_t>> Layers = L.relationLayers();
    for (uint32_t I = 0; I < L.Relations.size(); ++I)
      R.Rows.push_back({L.Relations[I].Name, int64_t(Counts[I]),
                        layerRanges(Layers[I]), relationExamples(L, I, 3),
                        L.Relations[I].Canonical});
  } else if (What == "entities") {
    // The token counts need the tokenizer; the model is not loaded.
    Expected<const Tokenizer &> Tok = tokenizer();
    if (!Tok)
      return Tok.takeError();
    for (uint32_t I = 0; I < L.Entities.size(); ++I)
      R.Rows.push_back(
          {L.Entities[I], int64_t(I),
           int64_t(Tok->encode(L.Entities[I], /*AddSpecial=*/false).size())});
  } else {
    uint32_t Layer = uint32_t(*Show.getLayer());
    if (Layer >= V.config().NumLayers)
      return createStringError(inconvertibleErrorCode(),
                               "layer %u is out of range (the model has %llu "
                               "layers)",
                               Layer, (unsigned long long)V.config().NumLayers);
    // One row per (feature, relation); a feature with token labels only
    // has one row with an empty relation.
    for (const FeatureLabel &F : L.layerFeatures(Layer)) {
      std::string In = tokenList(L, F.InputTokens);
      std::string Out = tokenList(L, F.OutputTokens);
      if (F.Relations.empty())
        R.Rows.push_back({int64_t(F.Layer), int64_t(F.Feature), std::string(),
                          int64_t(0), 0.0, 0.0, In, Out});
      for (const RelationLabel &RL : F.Relations)
        R.Rows.push_back({int64_t(F.Layer), int64_t(F.Feature),
                          L.Relations[RL.Relation].Name, int64_t(RL.Entities),
                          double(RL.MeanAttribution), double(RL.Confidence), In,
                          Out});
    }
  }
  std::unique_ptr<Expr> Where;
  if (std::optional<mlir::ArrayAttr> W = Show.getWhere())
    Where = toExpr(*W);
  std::optional<int64_t> Limit;
  if (mlir::IntegerAttr Lim = Show.getLimitAttr())
    Limit = Lim.getInt();
  filterRows(R, Where.get(), {}, Limit);
  printResult(R, Format, OS);
  return Error::success();
}

Error Executor::selectLabels(mlir::Operation &Op) {
  auto Sel = cast<larql::SelectOp>(Op);
  Expected<const Labels &> LL = labels();
  if (!LL)
    return LL.takeError();
  const Labels &L = *LL;
  std::unique_ptr<Expr> Where;
  if (std::optional<mlir::ArrayAttr> W = Sel.getWhere())
    Where = toExpr(*W);
  std::vector<OrderKey> Keys = toOrderKeys(Sel.getOrderBy());
  std::optional<int64_t> Limit;
  if (mlir::IntegerAttr Lim = Sel.getLimitAttr())
    Limit = Lim.getInt();
  std::vector<std::string> Cols;
  if (std::optional<mlir::ArrayAttr> C = Sel.getColumns())
    for (mlir::Attribute A : *C)
      Cols.push_back(cast<mlir::StringAttr>(A).getValue().str());

  ResultTable R;
  R.Statement = "SELECT";
  StringRef Table = Sel.getTable();
  ArrayRef<StringLiteral> Columns = *schema::columns(Table);
  for (StringRef C : Columns)
    R.Columns.push_back(C.str());
  Expected<const Tokenizer &> Tok = tokenizer();
  if (!Tok)
    return Tok.takeError();
  if (Table == "entities") {
    for (uint32_t I = 0; I < L.Entities.size(); ++I)
      R.Rows.push_back(
          {L.Entities[I], int64_t(I),
           int64_t(Tok->encode(L.Entities[I], /*AddSpecial=*/false).size())});
  } else {
    // Edges are DESCRIBE's, of the entities WHERE pins, else of NEAREST
    // TO's, else of every entity the probe was given.
    std::vector<std::string> Entities;
    if (auto Pinned = pinnedEntities(Where.get()))
      Entities = *Pinned;
    else if (std::optional<StringRef> N = Sel.getNearest())
      Entities = {N->str()};
    else
      Entities = L.Entities;
    Expected<const Model &> M = model();
    if (!M)
      return M.takeError();
    DescribeOptions Opts;
    Opts.Threads = Threads;
    if (mlir::IntegerAttr Layer = Sel.getLayerAttr())
      Opts.Layer = uint32_t(Layer.getInt());
    for (const std::string &E : Entities) {
      Expected<std::vector<DescribeEdge>> Edges =
          describeFromResidual(*M, *Tok, L, E, Opts);
      if (!Edges)
        return Edges.takeError();
      for (const DescribeEdge &Ed : *Edges)
        R.Rows.push_back(edgeRow(E, Ed));
    }
  }
  filterRows(R, Where.get(), Keys, Limit);
  project(R, Cols);
  printResult(R, Format, OS);
  return Error::success();
}

Error Executor::describe(mlir::Operation &Op) {
  auto D = cast<larql::DescribeOp>(Op);
  Expected<const Labels &> LL = labels();
  if (!LL)
    return LL.takeError();
  const Labels &L = *LL;
  Expected<const Model &> M = model();
  if (!M)
    return M.takeError();
  const Tokenizer &Tok = cantFail(VS.tokenizer()); // model() loaded it
  DescribeOptions Opts;
  Opts.Threads = Threads;
  if (std::optional<uint64_t> Layer = D.getLayer()) {
    if (*Layer >= M->numLayers())
      return createStringError(inconvertibleErrorCode(),
                               "layer %llu is out of range (the model has "
                               "%zu layers)",
                               (unsigned long long)*Layer, M->numLayers());
    Opts.Layer = uint32_t(*Layer);
  }
  if (std::optional<StringRef> B = D.getBand())
    Opts.OnlyBand = parseBand(*B);
  bool Embedding = D.getUsingEmbedding();
  StringRef Entity = D.getEntity();
  Expected<std::vector<DescribeEdge>> Edges =
      Embedding ? describeFromEmbedding(*M, Tok, L, Entity, Opts)
                : describeFromResidual(*M, Tok, L, Entity, Opts);
  if (!Edges)
    return Edges.takeError();
  StringRef Method = Embedding ? "embedding" : "residual";

  if (Format == ResultFormat::JSON) {
    json::Array Arr;
    for (const DescribeEdge &E : *Edges)
      Arr.push_back(json::Object{{"relation", E.Relation},
                                 {"target", E.Target},
                                 {"layer", int64_t(E.Layer)},
                                 {"feature", int64_t(E.Feature)},
                                 {"score", E.Score},
                                 {"band", bandName(E.LayerBand)}});
    OS << json::Value(json::Object{{"statement", "DESCRIBE"},
                                   {"entity", Entity},
                                   {"method", Method},
                                   {"edges", std::move(Arr)}})
       << "\n";
    return Error::success();
  }
  if (Format == ResultFormat::CSV) {
    ResultTable R;
    R.Statement = "DESCRIBE";
    for (StringRef C : schema::EdgeColumns)
      R.Columns.push_back(C.str());
    for (const DescribeEdge &E : *Edges)
      R.Rows.push_back(edgeRow(Entity, E));
    printResult(R, Format, OS);
    return Error::success();
  }
  // The table: one block per band, in the order of the layers.
  OS << "DESCRIBE '" << Entity << "'  (" << Method << ", " << Edges->size()
     << (Edges->size() == 1 ? " edge" : " edges") << ")\n";
  for (Band B :
       {Band::Syntax, Band::Knowledge, Band::Output, Band::Unlabelled}) {
    ResultTable R;
    R.Columns = {"relation", "target", "layer", "feature", "score"};
    for (const DescribeEdge &E : *Edges)
      if (E.LayerBand == B)
        R.Rows.push_back({E.Relation, E.Target, int64_t(E.Layer),
                          int64_t(E.Feature), E.Score});
    if (R.Rows.empty())
      continue;
    std::vector<uint32_t> Layers;
    for (uint32_t I = 0; I < L.Layers.size(); ++I)
      if (L.band(I) == B)
        Layers.push_back(I);
    OS << (B == Band::Unlabelled ? StringRef("unlabelled") : bandName(B))
       << " (layers " << layerRanges(Layers) << ")\n";
    printResult(R, Format, OS);
  }
  return Error::success();
}

} // namespace vindex::lql
