//===- Query.cpp - WHERE, ORDER BY and LIMIT over rows --------------------===//
#include "Query.h"

#include "llvm/ADT/STLExtras.h"

#include <algorithm>
#include <numeric>

using namespace llvm;

namespace vindex::lql::query {

namespace {

Literal literal(mlir::Attribute A) {
  if (auto I = dyn_cast<mlir::IntegerAttr>(A))
    return I.getInt();
  if (auto F = dyn_cast<mlir::FloatAttr>(A))
    return F.getValueAsDouble();
  return cast<mlir::StringAttr>(A).getValue().str();
}

/// SQL LIKE: '%' any run of characters, '_' one character (a UTF-8 code
/// point); case-sensitive.
bool like(StringRef S, StringRef P) {
  if (P.empty())
    return S.empty();
  if (P.front() == '%') {
    P = P.drop_while([](char C) { return C == '%'; });
    if (P.empty())
      return true;
    for (size_t I = 0; I <= S.size(); ++I)
      if (like(S.drop_front(I), P))
        return true;
    return false;
  }
  if (S.empty())
    return false;
  if (P.front() == '_') {
    size_t N = 1;
    while (N < S.size() && (uint8_t(S[N]) & 0xC0) == 0x80)
      ++N;
    return like(S.drop_front(N), P.drop_front());
  }
  return S.front() == P.front() && like(S.drop_front(), P.drop_front());
}

bool cmp(const Value &V, StringRef Op, const Literal &L) {
  int C;
  if (const auto *D = std::get_if<double>(&V)) {
    double X;
    if (const auto *I = std::get_if<int64_t>(&L))
      X = double(*I);
    else if (const auto *F = std::get_if<double>(&L))
      X = *F;
    else
      return false; // the verifier rejects text against numbers
    C = *D < X ? -1 : *D > X ? 1 : 0;
  } else {
    const auto *S = std::get_if<std::string>(&L);
    if (!S)
      return false;
    C = std::get<std::string>(V).compare(*S);
    C = C < 0 ? -1 : C > 0 ? 1 : 0;
  }
  if (Op == "=")
    return C == 0;
  if (Op == "!=" || Op == "<>")
    return C != 0;
  if (Op == "<")
    return C < 0;
  if (Op == "<=")
    return C <= 0;
  if (Op == ">")
    return C > 0;
  return C >= 0;
}

int exprCost(const Expr &E, CostFn Cost) {
  if (E.K == Expr::Kind::Cmp)
    return Cost(E.Column);
  return std::max(exprCost(*E.LHS, Cost), exprCost(*E.RHS, Cost));
}

} // namespace

bool Expr::uses(StringRef Col) const {
  return usesAny([&](StringRef C) { return C == Col; });
}

bool Expr::usesAny(function_ref<bool(StringRef)> Pred) const {
  return K == Kind::Cmp ? Pred(Column)
                        : LHS->usesAny(Pred) || RHS->usesAny(Pred);
}

std::unique_ptr<Expr> toExpr(mlir::ArrayAttr A) {
  auto E = std::make_unique<Expr>();
  StringRef Kind = cast<mlir::StringAttr>(A[0]).getValue();
  if (Kind == "and" || Kind == "or") {
    E->K = Kind == "and" ? Expr::Kind::And : Expr::Kind::Or;
    E->LHS = toExpr(cast<mlir::ArrayAttr>(A[1]));
    E->RHS = toExpr(cast<mlir::ArrayAttr>(A[2]));
    return E;
  }
  E->Op = Kind.str();
  E->Column = cast<mlir::StringAttr>(A[1]).getValue().str();
  if (Kind == "in")
    for (mlir::Attribute V : cast<mlir::ArrayAttr>(A[2]))
      E->Values.push_back(literal(V));
  else
    E->Values.push_back(literal(A[2]));
  return E;
}

std::vector<OrderKey> toOrderKeys(std::optional<mlir::ArrayAttr> A) {
  std::vector<OrderKey> Keys;
  if (A)
    for (mlir::Attribute K : *A) {
      auto Key = cast<mlir::ArrayAttr>(K);
      Keys.push_back({cast<mlir::StringAttr>(Key[0]).getValue().str(),
                      cast<mlir::StringAttr>(Key[1]).getValue() == "desc"});
    }
  return Keys;
}

bool evalExpr(const Expr &E, ColumnFn Get, CostFn Cost) {
  if (E.K != Expr::Kind::Cmp) {
    const Expr *A = E.LHS.get(), *B = E.RHS.get();
    if (exprCost(*B, Cost) < exprCost(*A, Cost))
      std::swap(A, B);
    bool First = evalExpr(*A, Get, Cost);
    if (E.K == Expr::Kind::And ? !First : First)
      return First;
    return evalExpr(*B, Get, Cost);
  }
  Value V = Get(E.Column);
  if (E.Op == "in")
    return any_of(E.Values, [&](const Literal &L) { return cmp(V, "=", L); });
  if (E.Op == "like") {
    const auto *S = std::get_if<std::string>(&V);
    const auto *P = std::get_if<std::string>(&E.Values.front());
    return S && P && like(*S, *P);
  }
  return cmp(V, E.Op, E.Values.front());
}

std::vector<size_t>
orderRows(size_t Rows, ArrayRef<OrderKey> Keys,
          function_ref<Value(size_t Row, size_t Key)> KeyValue) {
  std::vector<std::vector<Value>> Vals(Rows);
  for (size_t R = 0; R < Rows; ++R)
    for (size_t K = 0; K < Keys.size(); ++K)
      Vals[R].push_back(KeyValue(R, K));
  std::vector<size_t> Order(Rows);
  std::iota(Order.begin(), Order.end(), 0);
  std::stable_sort(Order.begin(), Order.end(), [&](size_t A, size_t B) {
    for (size_t K = 0; K < Keys.size(); ++K) {
      const Value &X = Vals[A][K], &Y = Vals[B][K];
      if (X == Y)
        continue;
      return Keys[K].Descending ? Y < X : X < Y;
    }
    return false;
  });
  return Order;
}

Value toValue(const Cell &C) {
  if (const auto *I = std::get_if<int64_t>(&C))
    return double(*I);
  if (const auto *D = std::get_if<double>(&C))
    return *D;
  if (const auto *B = std::get_if<bool>(&C))
    return double(*B);
  return std::get<std::string>(C);
}

void filterRows(ResultTable &R, const Expr *Where, ArrayRef<OrderKey> Keys,
                std::optional<int64_t> Limit) {
  auto Column = [&](StringRef Name) {
    return size_t(find(R.Columns, Name) - R.Columns.begin());
  };
  if (Where) {
    std::vector<std::vector<Cell>> Kept;
    for (std::vector<Cell> &Row : R.Rows)
      if (evalExpr(
              *Where, [&](StringRef C) { return toValue(Row[Column(C)]); },
              [](StringRef) { return 0; }))
        Kept.push_back(std::move(Row));
    R.Rows = std::move(Kept);
  }
  if (!Keys.empty()) {
    std::vector<size_t> Order =
        orderRows(R.Rows.size(), Keys, [&](size_t Row, size_t K) {
          return toValue(R.Rows[Row][Column(Keys[K].Column)]);
        });
    std::vector<std::vector<Cell>> Sorted;
    for (size_t I : Order)
      Sorted.push_back(std::move(R.Rows[I]));
    R.Rows = std::move(Sorted);
  }
  if (Limit && R.Rows.size() > uint64_t(*Limit))
    R.Rows.resize(*Limit);
}

} // namespace vindex::lql::query
