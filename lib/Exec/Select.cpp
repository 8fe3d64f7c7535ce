//===- Select.cpp - SELECT FROM features ----------------------------------===//
//
// One row per (layer, feature) of the FFN. Columns are computed on demand
// and cached per row: the norms cost one pass over a feature's vector,
// top_output and top_input one product with the whole vocabulary, so WHERE
// evaluates the cheaper side of AND/OR first and the expensive columns are
// only computed for rows that still need them (docs/lql.md, "features").
//
//===----------------------------------------------------------------------===//
#include "FeatureWeights.h"
#include "Query.h"
#include "ResultTable.h"

#include "vindex/Dialect/Larql/LarqlOps.h"
#include "vindex/Dialect/Larql/Schema.h"
#include "vindex/Exec/Executor.h"
#include "vindex/Formats/Tokenizer.h"
#include "vindex/Model/Engine.h"
#include "vindex/Model/VindexSession.h"
#include "vindex/Store/TensorView.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"

#include <algorithm>
#include <cmath>
#include <numeric>

using namespace llvm;

namespace vindex::lql {

using namespace query;

namespace {

/// How many tokens top_output and top_input list, best first.
constexpr size_t kTopTokens = 3;
/// How many rows NEAREST TO returns without LIMIT.
constexpr int64_t kNearestDefault = 10;

/// What a larql.select asks for.
struct Query {
  std::string From;
  std::vector<std::string> Columns; ///< empty means *
  std::optional<std::string> Nearest;
  std::optional<int64_t> Layer;
  std::unique_ptr<Expr> Where;
  std::vector<OrderKey> OrderBy;
  std::optional<int64_t> Limit;
};

Query toQuery(larql::SelectOp Op) {
  Query Q;
  Q.From = Op.getTable().str();
  if (std::optional<mlir::ArrayAttr> Cols = Op.getColumns())
    for (mlir::Attribute C : *Cols)
      Q.Columns.push_back(cast<mlir::StringAttr>(C).getValue().str());
  if (std::optional<StringRef> N = Op.getNearest())
    Q.Nearest = N->str();
  if (mlir::IntegerAttr L = Op.getLayerAttr())
    Q.Layer = L.getInt();
  if (std::optional<mlir::ArrayAttr> W = Op.getWhere())
    Q.Where = toExpr(*W);
  Q.OrderBy = toOrderKeys(Op.getOrderBy());
  if (mlir::IntegerAttr L = Op.getLimitAttr())
    Q.Limit = L.getInt();
  return Q;
}

struct FeatureRow {
  uint32_t Layer = 0, Feature = 0;
  std::optional<double> GateNorm, UpNorm, DownNorm, Score;
  std::optional<std::string> TopOutput, TopInput;
};

/// 0: layer, feature, score (known); 1: norms (one vector); 2: top tokens
/// (a vocabulary-sized product).
int columnCost(StringRef Col) {
  if (Col == "layer" || Col == "feature" || Col == "score")
    return 0;
  if (Col.ends_with("_norm"))
    return 1;
  return 2;
}

class FeatureTable {
public:
  /// Tok is needed only for the top_output and top_input columns.
  FeatureTable(const FeatureWeights &M, const Tokenizer *Tok)
      : M(M), Tok(Tok) {}
  const FeatureWeights &model() const { return M; }

  Value get(FeatureRow &R, StringRef Col) {
    const FeatureWeights::Layer &W = M.layer(R.Layer);
    if (Col == "layer")
      return double(R.Layer);
    if (Col == "feature")
      return double(R.Feature);
    if (Col == "score")
      return R.Score ? *R.Score : 0.0;
    if (Col == "gate_norm")
      return cached(R.GateNorm, [&] { return norm(W.Gate, R.Feature); });
    if (Col == "up_norm")
      return cached(R.UpNorm, [&] { return norm(W.Up, R.Feature); });
    if (Col == "down_norm")
      return cached(R.DownNorm, [&] { return norm(W.Down, R.Feature); });
    if (Col == "top_output")
      return cached(R.TopOutput, [&] {
        return topTokens(M.lmHead(), W.Down, R.Feature, 1.0);
      });
    // top_input: the embedding as the first layer sees it (times Gemma's
    // scale; a positive scale does not change the ranking).
    return cached(R.TopInput, [&] {
      return topTokens(M.embedding(), W.Gate, R.Feature,
                       M.config().EmbeddingScale);
    });
  }

  Cell cell(FeatureRow &R, StringRef Col) {
    Value V = get(R, Col);
    if (Col == "layer" || Col == "feature")
      return int64_t(std::get<double>(V));
    if (auto *D = std::get_if<double>(&V))
      return *D;
    return std::get<std::string>(V);
  }

  bool eval(const Expr &E, FeatureRow &R) {
    return evalExpr(
        E, [&](StringRef C) { return get(R, C); }, columnCost);
  }

private:
  template <typename T, typename F> T cached(std::optional<T> &Slot, F Fn) {
    if (!Slot)
      Slot = Fn();
    return *Slot;
  }

  void row(const WeightMatrix &W, size_t R, std::vector<float> &Out) {
    Out.resize(W.Cols);
    for (size_t C = 0; C < W.Cols; ++C)
      Out[C] = W.at(R, C);
  }

  /// L2 norm, accumulated in double.
  double norm(const WeightMatrix &W, size_t R) {
    double S = 0;
    for (size_t C = 0; C < W.Cols; ++C) {
      double X = W.at(R, C);
      S += X * X;
    }
    return std::sqrt(S);
  }

  /// The kTopTokens ids t with the largest Scale * (Vocab[t] . W[R]), ties
  /// to the lower id, decoded and joined by " | ".
  std::string topTokens(const WeightMatrix &Vocab, const WeightMatrix &W,
                        size_t R, double Scale) {
    row(W, R, Buf);
    std::vector<float> Scores(Vocab.Rows);
    for (size_t T = 0; T < Vocab.Rows; ++T)
      Scores[T] = float(Scale) * dotRow(Buf.data(), Vocab, T);
    std::vector<int32_t> Ids(Vocab.Rows);
    std::iota(Ids.begin(), Ids.end(), 0);
    size_t N = std::min(kTopTokens, Ids.size());
    std::partial_sort(
        Ids.begin(), Ids.begin() + N, Ids.end(), [&](int32_t A, int32_t B) {
          return Scores[A] > Scores[B] || (Scores[A] == Scores[B] && A < B);
        });
    std::string S;
    ListSeparator LS(" | ");
    for (size_t I = 0; I < N; ++I)
      (S += LS) += Tok->decode({Ids[I]});
    return S;
  }

  const FeatureWeights &M;
  const Tokenizer *Tok;
  std::vector<float> Buf;
};

/// Every (layer, feature) in order that passes WHERE; without ORDER BY the
/// scan order is the result order, so it stops at LIMIT.
void scan(const Query &S, FeatureTable &T, std::vector<FeatureRow> &Rows) {
  bool EarlyStop = S.OrderBy.empty() && S.Limit;
  const FeatureWeights &M = T.model();
  for (size_t L = 0; L < M.numLayers(); ++L) {
    size_t F = M.layer(L).Gate.Rows;
    for (size_t I = 0; I < F; ++I) {
      FeatureRow R;
      R.Layer = uint32_t(L);
      R.Feature = uint32_t(I);
      if (S.Where && !T.eval(*S.Where, R))
        continue;
      Rows.push_back(std::move(R));
      if (EarlyStop && Rows.size() >= uint64_t(*S.Limit))
        return;
    }
  }
}

/// The columns a SELECT prints: those named, else every column of
/// features (score only under NEAREST TO).
std::vector<std::string> selectedColumns(const Query &S) {
  if (!S.Columns.empty())
    return S.Columns;
  std::vector<std::string> Cols;
  for (StringRef C : schema::FeatureColumns)
    if (C != "score" || S.Nearest)
      Cols.push_back(C.str());
  return Cols;
}

/// Whether the query reads a column named by Pred (in its columns, ORDER
/// BY or WHERE).
bool readsColumn(const Query &S, ArrayRef<std::string> Cols,
                 function_ref<bool(StringRef)> Pred) {
  return any_of(Cols, [&](StringRef C) { return Pred(C); }) ||
         any_of(S.OrderBy, [&](const OrderKey &K) { return Pred(K.Column); }) ||
         (S.Where && S.Where->usesAny(Pred));
}

/// NEAREST TO: the entity's last-token residual at the input of the layer
/// against the layer's gate vectors, by dot product, best first, then
/// WHERE.
Error nearestRows(const Query &S, const Model &Engine, const Tokenizer &Tok,
                  const FeatureWeights &W, FeatureTable &T, unsigned Threads,
                  std::vector<FeatureRow> &Rows) {
  size_t NL = Engine.numLayers();
  int64_t L = S.Layer ? *S.Layer : int64_t(NL / 2);
  if (L < 0 || uint64_t(L) >= NL)
    return createStringError(inconvertibleErrorCode(),
                             "layer %lld is out of range (the model has "
                             "%zu layers)",
                             (long long)L, NL);
  std::vector<int32_t> Ids = Tok.encode(*S.Nearest);
  if (Ids.empty())
    return createStringError(inconvertibleErrorCode(),
                             "the entity encodes to no tokens");
  Session Sess(Engine, Threads);
  ForwardOptions Opts;
  Opts.CaptureResiduals = true;
  Opts.StopAfter = size_t(L); // the input of layer L is all we need
  ForwardResult FR = Sess.run(Ids, Opts);
  size_t D = Engine.config().HiddenSize;
  const float *H = FR.Residuals[L].data() + (Ids.size() - 1) * D;
  const WeightMatrix &G = W.layer(L).Gate;
  for (size_t I = 0; I < G.Rows; ++I) {
    FeatureRow R;
    R.Layer = uint32_t(L);
    R.Feature = uint32_t(I);
    R.Score = double(dotRow(H, G, I));
    Rows.push_back(std::move(R));
  }
  std::stable_sort(Rows.begin(), Rows.end(),
                   [](const FeatureRow &A, const FeatureRow &B) {
                     return *A.Score > *B.Score;
                   });
  if (S.Where) {
    std::vector<FeatureRow> Kept;
    for (FeatureRow &R : Rows)
      if (T.eval(*S.Where, R))
        Kept.push_back(std::move(R));
    Rows = std::move(Kept);
  }
  return Error::success();
}

/// ORDER BY; ties fall back to (layer, feature), the scan order.
void orderFeatureRows(const Query &S, FeatureTable &T,
                      std::vector<FeatureRow> &Rows) {
  if (S.OrderBy.empty())
    return;
  std::vector<size_t> Order =
      orderRows(Rows.size(), S.OrderBy, [&](size_t Row, size_t K) {
        return T.get(Rows[Row], S.OrderBy[K].Column);
      });
  std::vector<FeatureRow> Sorted;
  for (size_t I : Order)
    Sorted.push_back(std::move(Rows[I]));
  Rows = std::move(Sorted);
}

} // namespace

Error Executor::select(mlir::Operation &Op) {
  Query S = toQuery(cast<larql::SelectOp>(Op));
  if (S.From != "features")
    return selectLabels(Op);
  std::vector<std::string> Cols = selectedColumns(S);
  auto IsScore = [](StringRef C) { return C == "score"; };
  if (!S.Nearest && readsColumn(S, Cols, IsScore))
    return createStringError(inconvertibleErrorCode(),
                             "column 'score' of features is the score of "
                             "NEAREST TO and needs it");

  // NEAREST TO runs the model; the other columns read the weights only, and
  // the tokenizer only for the top_* columns.
  const Model *Engine = nullptr;
  if (S.Nearest) {
    Expected<const Model &> Loaded = model();
    if (!Loaded)
      return Loaded.takeError();
    Engine = &*Loaded;
  }
  Expected<const FeatureWeights &> W = weights();
  if (!W)
    return W.takeError();
  auto IsTop = [](StringRef C) { return C.starts_with("top_"); };
  const Tokenizer *Tok = nullptr;
  if (S.Nearest || readsColumn(S, Cols, IsTop)) {
    Expected<const Tokenizer &> Loaded = tokenizer();
    if (!Loaded)
      return Loaded.takeError();
    Tok = &*Loaded;
  }
  FeatureTable T(*W, Tok);
  std::vector<FeatureRow> Rows;
  std::optional<int64_t> Limit = S.Limit;
  if (S.Nearest) {
    if (Error E = nearestRows(S, *Engine, *Tok, *W, T, Threads, Rows))
      return E;
    if (!Limit)
      Limit = kNearestDefault;
  } else {
    scan(S, T, Rows);
  }
  orderFeatureRows(S, T, Rows);
  if (Limit && Rows.size() > uint64_t(*Limit))
    Rows.resize(*Limit);

  ResultTable R;
  R.Statement = "SELECT";
  R.Columns = Cols;
  for (FeatureRow &Row : Rows) {
    R.Rows.emplace_back();
    for (const std::string &C : Cols)
      R.Rows.back().push_back(T.cell(Row, C));
  }
  printResult(R, Format, OS);
  return Error::success();
}

Expected<const FeatureWeights &> Executor::weights() {
  Expected<const Model *> M = VS.loadedModel();
  if (!M)
    return make_error<LoadError>(M.takeError());
  if (!FW || FWGeneration != View->generation()) {
    // The engine's matrices when it is loaded (no second copy), else the
    // view's; both show every patch so far.
    if (*M) {
      FW = FeatureWeights::fromModel(**M);
    } else {
      Expected<std::unique_ptr<FeatureWeights>> Loaded =
          FeatureWeights::fromView(*View);
      if (!Loaded)
        return make_error<LoadError>(Loaded.takeError());
      FW = std::move(*Loaded);
    }
    FWGeneration = View->generation();
  }
  return *FW;
}

} // namespace vindex::lql
